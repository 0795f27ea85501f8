package redis

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/ingest"
)

func TestChangesRoundTrip(t *testing.T) {
	in := []ingest.Change{{UserID: 1, Version: 2}, {UserID: 9223372036854775807, Version: 9223372036854775807, Deleted: true}, {UserID: 3, Version: 1},
		{UserID: 4, Version: 5, Repaired: true}}
	msg := AppendChanges(nil, in)
	require.Equal(t, "1:2 9223372036854775807:9223372036854775807:d 3:1 4:5:r", string(msg))
	out, err := ParseChanges(string(msg))
	require.NoError(t, err)
	require.Equal(t, in, out)

	for _, bad := range []string{"1", "x:1", "1:x", "0:1", "1:0", "-1:2", "1:2:x", "1:2:d:d"} {
		_, err := ParseChanges(bad)
		require.Error(t, err, bad)
	}
}

func FuzzParseChanges(f *testing.F) {
	f.Add("1:2 3:4:d 5:6:r")
	f.Add("")
	f.Add("9223372036854775807:1")
	f.Fuzz(func(t *testing.T, msg string) {
		changes, err := ParseChanges(msg)
		if err != nil {
			return
		}
		again, err := ParseChanges(string(AppendChanges(nil, changes)))
		if err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", msg, err)
		}
		if len(again) != len(changes) {
			t.Fatalf("round trip of %q changed the count", msg)
		}
		for i := range changes {
			if again[i] != changes[i] || changes[i].UserID <= 0 || changes[i].Version <= 0 {
				t.Fatalf("round trip of %q: %+v vs %+v", msg, changes[i], again[i])
			}
		}
	})
}
