package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/triad-dev/triad/ingest"
)

// The change feed: writers PUBLISH every batch Postgres took on one
// channel; every replica's read path SUBSCRIBEs. Pub/sub delivers only to
// connected subscribers, so a subscriber treats any break in its
// subscription as "changes may have been missed" (FeedHandler.Lost) until
// it has resynchronised from Postgres after the next Subscribed.
//
// A message is changes separated by spaces, each "<user_id>:<version>",
// "<user_id>:<version>:d" for a tombstone or "<user_id>:<version>:r" for
// a repair of the cached copy, readable with redis-cli SUBSCRIBE.

// Channel is the change feed's channel (the configured key prefix, not a
// dataset version's: user IDs are the same in every version).
func (s *Store) Channel() string { return s.cfg.KeyPrefix + "triad:profile-changes" }

// Announce implements ingest.Announcer with one PUBLISH.
func (s *Store) Announce(ctx context.Context, changes []ingest.Change) error {
	if len(changes) == 0 {
		return nil
	}
	return s.rdb.Publish(ctx, s.Channel(), AppendChanges(make([]byte, 0, 24*len(changes)), changes)).Err()
}

// AppendChanges appends the message for changes.
func AppendChanges(dst []byte, changes []ingest.Change) []byte {
	for i, c := range changes {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = strconv.AppendInt(dst, c.UserID, 10)
		dst = append(dst, ':')
		dst = strconv.AppendInt(dst, c.Version, 10)
		switch {
		case c.Deleted:
			dst = append(dst, ":d"...)
		case c.Repaired:
			dst = append(dst, ":r"...)
		}
	}
	return dst
}

// ParseChanges parses a change message.
func ParseChanges(msg string) ([]ingest.Change, error) {
	fields := strings.Fields(msg)
	out := make([]ingest.Change, 0, len(fields))
	for _, f := range fields {
		id, rest, ok := strings.Cut(f, ":")
		if !ok {
			return nil, fmt.Errorf("change %q: want <user_id>:<version>[:d|:r]", f)
		}
		ver, del, _ := strings.Cut(rest, ":")
		var c ingest.Change
		var err error
		if c.UserID, err = strconv.ParseInt(id, 10, 64); err != nil || c.UserID <= 0 {
			return nil, fmt.Errorf("change %q: bad user id", f)
		}
		if c.Version, err = strconv.ParseInt(ver, 10, 64); err != nil || c.Version <= 0 {
			return nil, fmt.Errorf("change %q: bad version", f)
		}
		switch del {
		case "":
		case "d":
			c.Deleted = true
		case "r":
			c.Repaired = true
		default:
			return nil, fmt.Errorf("change %q: unknown flag %q", f, del)
		}
		out = append(out, c)
	}
	return out, nil
}

// FeedHandler receives the change feed. Calls come from one goroutine.
type FeedHandler interface {
	// Subscribed: the subscription is in place; changes published from now
	// on are delivered.
	Subscribed()
	// Lost: the subscription broke; changes may be missed until the next
	// Subscribed.
	Lost(err error)
	// Changes delivers one message's changes.
	Changes([]ingest.Change)
}

// Follow delivers the change feed to h until ctx ends, resubscribing after
// every break. It pings an idle subscription so a dead connection is
// noticed within about two idle intervals.
func (s *Store) Follow(ctx context.Context, h FeedHandler, idle time.Duration) {
	ps := s.rdb.Subscribe(ctx, s.Channel())
	defer ps.Close()
	subscribed := false
	lost := func(err error) {
		if subscribed {
			subscribed = false
			h.Lost(err)
		}
	}
	backoff := 100 * time.Millisecond
	pinged := false
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, idle)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && subscribed {
				if pinged {
					lost(fmt.Errorf("no answer to ping within %s", idle))
					pinged = false
					_ = ps.Close() // the next Receive reconnects
					ps = s.rdb.Subscribe(ctx, s.Channel())
					continue
				}
				pinged = ps.Ping(ctx) == nil
				continue
			}
			if ctx.Err() != nil {
				return
			}
			lost(err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" && !subscribed {
				subscribed = true
				backoff = 100 * time.Millisecond
				h.Subscribed()
			}
		case *goredis.Message:
			changes, err := ParseChanges(m.Payload)
			if err != nil {
				// A malformed message means a change was lost: resync.
				lost(fmt.Errorf("change feed message: %w", err))
				_ = ps.Close()
				ps = s.rdb.Subscribe(ctx, s.Channel())
				continue
			}
			h.Changes(changes)
		}
	}
}
