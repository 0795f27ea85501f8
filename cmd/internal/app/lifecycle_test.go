package app_test

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/triad-dev/triad/cmd/internal/app"
	"github.com/triad-dev/triad/cmd/internal/config/configtest"
	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/repair"
)

// TestFailedStartLeaksNothing: a start that fails part-way (here an
// entity whose configuration is refused once the clients and the read
// path exist) stops what it started: no goroutine is left, and the
// listener it was given is closed.
func TestFailedStartLeaksNothing(t *testing.T) {
	ns := stacktest.New(t)
	cfg := configtest.For(t, ns)
	cfg.Repair.Entities = []repair.EntityConfig{{Name: "broken"}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ignore := goleak.IgnoreCurrent()
	_, err = app.Start(t.Context(), app.Options{Config: cfg, Logger: stacktest.Logger(t), Listener: ln, Version: "test"})
	require.ErrorContains(t, err, "entity broken")
	_, err = net.DialTimeout("tcp", ln.Addr().String(), time.Second)
	require.Error(t, err, "the listener is closed")
	goleak.VerifyNone(t, ignore,
		// Idle keep-alive connections of the HTTP clients end on their own.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		// otter's clean-up goroutine ends when its cache is collected.
		goleak.IgnoreAnyFunction("github.com/maypok86/otter/v2.periodicCleanUp[...]"))
}
