package leader

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/triad-dev/triad/repair/sweep"
)

// Claims hands out units of work (sweep ranges, a sweep's finish) to one
// replica at a time: a claim is an etcd key created only if absent and
// bound to this replica's lease, so it disappears when the replica dies
// (or loses etcd past the TTL) and another replica may claim the work.
// Safe for concurrent use.
type Claims struct {
	cli    *clientv3.Client
	prefix string
	id     string
	ttl    time.Duration

	mu      sync.Mutex
	session *concurrency.Session
}

var _ sweep.Claims = (*Claims)(nil)

// NewClaims returns claims under <etcdPrefix>claims/ held as id, with
// leases of ttl.
func NewClaims(cli *clientv3.Client, etcdPrefix, id string, ttl time.Duration) *Claims {
	return &Claims{cli: cli, prefix: etcdPrefix + "claims/", id: id, ttl: ttl}
}

// live returns the current session, opening a new one after the last
// expired (claims held under the old one are gone with it).
func (c *Claims) live(ctx context.Context) (*concurrency.Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.session != nil {
		select {
		case <-c.session.Done():
			c.session = nil
		default:
			return c.session, nil
		}
	}
	s, err := concurrency.NewSession(c.cli, concurrency.WithTTL(max(1, int(c.ttl.Seconds()))), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return nil, fmt.Errorf("etcd session: %w", err)
	}
	c.session = s
	return s, nil
}

// Claim implements sweep.Claims.
func (c *Claims) Claim(ctx context.Context, key string) (sweep.Claim, bool, error) {
	s, err := c.live(ctx)
	if err != nil {
		return nil, false, err
	}
	k := c.prefix + key
	resp, err := c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, c.id, clientv3.WithLease(s.Lease()))).
		Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		return nil, false, fmt.Errorf("claim %s: %w", key, err)
	}
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 || string(kvs[0].Value) != c.id || clientv3.LeaseID(kvs[0].Lease) != s.Lease() {
			return nil, false, nil // another live replica holds it
		}
	}
	return &claim{c: c, key: k, s: s}, true, nil
}

// Holder implements sweep.Claims.
func (c *Claims) Holder(ctx context.Context, key string) (string, error) {
	resp, err := c.cli.Get(ctx, c.prefix+key)
	if err != nil {
		return "", err
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

// Holders returns the holder of every live claim whose key starts with
// prefix, by key (without the claims prefix).
func (c *Claims) Holders(ctx context.Context, prefix string) (map[string]string, error) {
	resp, err := c.cli.Get(ctx, c.prefix+prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out[strings.TrimPrefix(string(kv.Key), c.prefix)] = string(kv.Value)
	}
	return out, nil
}

// Close revokes this replica's lease: its claims go at once.
func (c *Claims) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.session == nil {
		return nil
	}
	err := c.session.Close()
	c.session = nil
	// After an etcd outage longer than the TTL the lease is gone already:
	// the claims went with it, which is what Close wanted.
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return nil
	}
	return err
}

type claim struct {
	c   *Claims
	key string
	s   *concurrency.Session
}

func (cl *claim) Lost() <-chan struct{} { return cl.s.Done() }

func (cl *claim) Release(ctx context.Context) error {
	// Delete only our own key (a lost claim may have been re-claimed).
	_, err := cl.c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(cl.key), "=", cl.s.Lease())).
		Then(clientv3.OpDelete(cl.key)).Commit()
	return err
}
