package ingest

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests (these and ingest_test's) if a test
// leaves a goroutine behind: shard writers, derived writers and replayers
// must all stop with their pipeline.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Idle keep-alive connections of the HTTP clients (Elasticsearch).
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}
