package app

import (
	"context"
	"log/slog"
	"strconv"
	"sync"

	"github.com/triad-dev/triad/ingest"
	redisstore "github.com/triad-dev/triad/ingest/redis"
	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/repair/alert"
	"github.com/triad-dev/triad/repair/sweep"
)

// dataLosses remembers each store's last detected loss of data for the
// store_data_loss alert rule. The watch and the rules both run on the
// leader, so memory is where they meet.
type dataLosses struct {
	mu sync.Mutex
	m  map[string]alert.DataLoss
}

func (d *dataLosses) record(store string, l alert.DataLoss) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = map[string]alert.DataLoss{}
	}
	d.m[store] = l
}

func (d *dataLosses) snapshot() map[string]alert.DataLoss {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]alert.DataLoss, len(d.m))
	for k, v := range d.m {
		out[k] = v
	}
	return out
}

// redisLossWatch is the leader job that looks at Redis (every
// cfg.RedisWatch) and, when it lost data, records the loss for alerting
// and acts as cfg.OnRedisLoss says: re-warm every live profile through the
// catch-up log, or start a repairing sweep of profiles.
func redisLossWatch(w *redisstore.Watch, cfg ingest.Config, pipe func() *ingest.Pipeline,
	sweeps *sweep.Worker, losses *dataLosses, log *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		lctx, cancel := context.WithTimeout(ctx, cfg.RedisWatch)
		loss, err := w.Look(lctx)
		cancel()
		if err != nil {
			log.Warn("redis watch: no look", "err", err)
			return nil
		}
		if loss == nil {
			return nil
		}
		acted := true
		defer func() {
			if !acted {
				w.Retry() // reported again at the next look, and acted on then
				return
			}
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.RedisWatch)
			defer cancel()
			if err := w.Settle(sctx); err != nil {
				log.Warn("redis watch: the loss is reported but its baseline not saved; the next leader reports it again", "err", err)
			}
		}()
		detail := loss.String()
		switch cfg.OnRedisLoss {
		case "rewarm":
			if p := pipe(); p != nil {
				n, err := p.Rewarm(ctx, "redis", "re-warm after Redis lost data: "+loss.Reason)
				if err != nil {
					log.Error("redis lost data; re-warm not started, tried again at the next look", "reason", loss.Reason, "err", err)
					detail += "; the re-warm could not be started (tried again at the next look): " + err.Error()
					acted = false
				} else {
					detail += "; re-warming " + itoa(n) + " profiles through the catch-up log"
				}
			}
		case "sweep":
			rec, err := sweeps.Start(ctx, sweep.Record{Entity: "profile", Mode: sweep.ModeAuto, Repair: true,
				Trigger: repair.TriggerSchedule, Actor: "redis-loss"})
			if err != nil {
				detail += "; the sweep could not be started (tried again at the next look): " + err.Error()
				acted = false
			} else {
				detail += "; repairing sweep " + itoa(rec.ID) + " started"
			}
		}
		log.Warn("redis lost data", "reason", loss.Reason, "keys", loss.Keys, "action", cfg.OnRedisLoss, "detail", detail)
		losses.record("redis", alert.DataLoss{At: loss.At, Detail: detail})
		return nil
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
