package alert

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// standardVerifier is the Python venv `make test` builds with the
// Standard Webhooks reference library (testdata/standardwebhooks).
var standardVerifier = filepath.Join("testdata", "standardwebhooks", ".venv", "bin", "python")

// verifyStandard runs the published library on a delivery triad sent:
// nil when it verifies with secret, its reason when not.
func verifyStandard(t *testing.T, secret string, h http.Header, body []byte) error {
	t.Helper()
	headers := map[string]string{}
	for k := range h {
		headers[k] = h.Get(k)
	}
	in, err := json.Marshal(map[string]any{"secret": secret, "headers": headers, "body": base64.StdEncoding.EncodeToString(body)})
	require.NoError(t, err)
	cmd := exec.Command(standardVerifier, filepath.Join("testdata", "standardwebhooks", "verify.py"))
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
		return &verifyError{string(bytes.TrimSpace(out))}
	}
	require.NoError(t, err, "the Standard Webhooks library ran: %s", out)
	return nil
}

type verifyError struct{ msg string }

func (e *verifyError) Error() string { return e.msg }

// TestStandardWebhooksVerify: deliveries verify with the Standard Webhooks
// reference library (Python, from PyPI), not only with triad's own code:
// a generated secret, an operator's own secret (keyed with its bytes,
// handed out as whsec_…), both secrets while a rotation's grace lasts,
// only the new one after it; a changed body or a wrong secret does not.
func TestStandardWebhooksVerify(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the Python library `make test` installs")
	}
	_, err := os.Stat(standardVerifier)
	require.NoError(t, err, "the verifier's venv is missing: `make test` builds it (make webhook-verifier)")
	var got struct {
		h    http.Header
		body []byte
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.h, got.body = r.Header.Clone(), readAll(t, r)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s := NewSender(NewGuard(nil, nil), 5*time.Second, "triad/test")
	send := func(w Webhook, id int64) {
		t.Helper()
		_, err := s.Send(t.Context(), w, Delivery{ID: id, Status: "firing", Payload: []byte(`{"status":"firing","alerts":[{"rule":"DriftFound"}]}`)})
		require.NoError(t, err)
		require.Equal(t, got.h.Get(DeliveryHeader), got.h.Get(StandardIDHeader), "webhook-id is the delivery's id, the same on every retry")
	}

	generated := NewSecret()
	w := Webhook{URL: srv.URL + "/hook", Secret: generated}
	send(w, 1)
	require.NoError(t, verifyStandard(t, generated, got.h, got.body), "a generated secret is already in the library's form")
	require.NoError(t, Verify(generated, got.h.Get(SignatureHeader), got.body, time.Now(), time.Minute), "and triad's own header verifies too")
	tampered := append(bytes.Clone(got.body[:len(got.body)-1]), ' ', '}')
	require.Error(t, verifyStandard(t, generated, got.h, tampered), "a changed body does not verify")
	require.Error(t, verifyStandard(t, NewSecret(), got.h, got.body), "nor another secret")

	own := "an operator's own secret, not base64!"
	send(Webhook{URL: srv.URL + "/hook", Secret: own}, 2)
	require.NoError(t, verifyStandard(t, StandardSecret(own), got.h, got.body), "an operator's secret, handed out as whsec_…")

	// A rotation: both secrets sign during the grace, the new one after.
	rotated, until := NewSecret(), time.Now().Add(time.Hour)
	w = Webhook{URL: srv.URL + "/hook", Secret: rotated, PreviousSecret: generated, PreviousUntil: &until}
	send(w, 3)
	require.NoError(t, verifyStandard(t, generated, got.h, got.body), "the old secret still verifies during the grace")
	require.NoError(t, verifyStandard(t, rotated, got.h, got.body), "the new one already does")
	require.NoError(t, Verify(generated, got.h.Get(SignatureHeader), got.body, time.Now(), time.Minute))
	require.NoError(t, Verify(rotated, got.h.Get(SignatureHeader), got.body, time.Now(), time.Minute))
	past := time.Now().Add(-time.Second)
	w.PreviousUntil = &past
	send(w, 4)
	require.Error(t, verifyStandard(t, generated, got.h, got.body), "the old secret no longer signs after the grace")
	require.NoError(t, verifyStandard(t, rotated, got.h, got.body))
}
