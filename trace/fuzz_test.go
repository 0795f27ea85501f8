package trace_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/triad-dev/triad/trace"
)

// discard accepts spans without storing them, but refuses (so the fuzz
// sees a 503) any span whose encoded attributes, events or links are not
// valid JSON: whatever a sender sends, triad never stores broken JSON.
type discard struct{}

func (discard) Submit(_ context.Context, spans []trace.Span) error {
	for _, s := range spans {
		if s.Detail == nil {
			continue
		}
		for _, raw := range [][]byte{s.Stored.Attributes, s.Stored.Events, s.Stored.Links} {
			if len(raw) > 0 && !json.Valid(raw) {
				return fmt.Errorf("span %s: invalid JSON %q", s.SpanID, raw)
			}
		}
	}
	return nil
}

// FuzzExport feeds arbitrary bodies to the OTLP/HTTP receiver as protobuf
// and as JSON: every answer is 200 or 400 (never a panic or a 500), and a
// 200 carries a decodable export response.
func FuzzExport(f *testing.F) {
	td := request(3, "svc")
	pb, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	js, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalJSON()
	f.Add(pb)
	f.Add(js)
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"00000000000000000000000000000000","spanId":"0102030405060708"}]}]}]}`))
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00})
	rcv := trace.NewReceiver(discard{}, trace.DefaultConfig(), "", discardLogger(), trace.NewMetrics(nil)).Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, ct := range []string{"application/x-protobuf", "application/json"} {
			req := httptest.NewRequest(http.MethodPost, "/v1/traces", bytes.NewReader(body))
			req.Header.Set("Content-Type", ct)
			rec := httptest.NewRecorder()
			rcv.ServeHTTP(rec, req)
			switch rec.Code {
			case http.StatusOK:
				out := ptraceotlp.NewExportResponse()
				var err error
				if ct == "application/json" {
					err = out.UnmarshalJSON(rec.Body.Bytes())
				} else {
					err = out.UnmarshalProto(rec.Body.Bytes())
				}
				if err != nil {
					t.Fatalf("%s: 200 with an undecodable answer: %v", ct, err)
				}
			case http.StatusBadRequest:
			default:
				t.Fatalf("%s: status %d for %q", ct, rec.Code, body)
			}
		}
	})
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
