package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"

	"github.com/triad-dev/triad/trace"
)

// startTraces starts the OTLP receivers when trace.enabled, and the export
// of triad's own spans when trace.self.endpoint is set ("self": to this
// replica's own OTLP/HTTP receiver).
func (a *App) startTraces(ctx context.Context) error {
	c := a.cfg.Trace
	if c.Enabled {
		if err := a.startOTLP(c, a.cfg.Auth.OTLPToken.Reveal()); err != nil {
			return err
		}
	}
	ep := c.Self.Endpoint
	if ep == "" {
		return nil
	}
	if ep == "self" {
		ep = "http://" + a.OTLPHTTPAddr + "/v1/traces"
	}
	// Stopped before the receivers' batcher (teardowns run in reverse),
	// though after the receivers themselves: spans still buffered then
	// are dropped.
	shutdown, err := trace.StartSelf(ctx, ep, c.Self.SampleRatio, "triad", a.version)
	if err != nil {
		return err
	}
	a.onStop("own spans", shutdown)
	a.log.Info("own spans exported", "endpoint", ep)
	return nil
}

// startOTLP starts the OTLP receivers (HTTP and gRPC) and the batcher
// behind them. Shutdown order:
//  1. the run group stops the receivers (HTTP drains, gRPC stops
//     gracefully, both under the server's shutdown timeout);
//  2. the "otlp batcher" teardown then writes what they accepted.
func (a *App) startOTLP(c trace.Config, otlpToken string) error {
	log, m := a.log, a.traceMetrics
	batcher := trace.NewBatcher(a.traceStore, c, log, m)
	bctx, bcancel := context.WithCancel(context.Background())
	bdone := make(chan struct{})
	go func() { defer close(bdone); _ = batcher.Run(bctx) }()
	a.onStop("otlp batcher", func(ctx context.Context) error {
		bcancel()
		select {
		case <-bdone:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	rcv := trace.NewReceiver(batcher, c, otlpToken, log, m)
	if c.HTTPAddr != "" {
		ln, err := net.Listen("tcp", c.HTTPAddr)
		if err != nil {
			return fmt.Errorf("otlp http: listen %s: %w", c.HTTPAddr, err)
		}
		a.OTLPHTTPAddr = ln.Addr().String()
		a.onStop("otlp http listener", func(context.Context) error { _ = ln.Close(); return nil })
		// The receiver bounds each body by trace.body_timeout itself; the
		// server's own timeouts end connections that send nothing more.
		hs := &http.Server{Handler: rcv.Handler(), ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
			ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 2 * c.BodyTimeout, WriteTimeout: 30 * time.Second,
			IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
		a.group.Add(func() error {
			if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("otlp http: %w", err)
			}
			return nil
		}, func(error) {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = hs.Shutdown(sctx)
		})
	}
	if c.GRPCAddr != "" {
		ln, err := net.Listen("tcp", c.GRPCAddr)
		if err != nil {
			return fmt.Errorf("otlp grpc: listen %s: %w", c.GRPCAddr, err)
		}
		a.OTLPGRPCAddr = ln.Addr().String()
		a.onStop("otlp grpc listener", func(context.Context) error { _ = ln.Close(); return nil })
		gs := grpc.NewServer(rcv.GRPCServerOptions()...)
		rcv.RegisterGRPC(gs)
		a.group.Add(func() error { return gs.Serve(ln) }, func(error) {
			done := make(chan struct{})
			go func() { gs.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				gs.Stop()
			}
		})
	}
	log.Info("otlp receivers listening", "http", a.OTLPHTTPAddr, "grpc", a.OTLPGRPCAddr)
	return nil
}
