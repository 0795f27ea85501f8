package ingest

import (
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCanonicalJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{`{"b":1,"a":2,"aa":3}`, `{"a": 2, "b": 1, "aa": 3}`},
		{`{"k":1,"k":2}`, `{"k": 2}`},
		{` [ 1 , [ ] , { } ] `, `[1, [], {}]`},
		{`1.50`, `1.50`},
		{`1.5e1`, `15`},
		{`150e-2`, `1.50`},
		{`-0`, `0`},
		{`-0.00`, `0.00`},
		{`0e5`, `0`},
		{`1E+2`, `100`},
		{`-12.5e-3`, `-0.0125`},
		{`0.000`, `0.000`},
		{`"a\/b\u00e9\ud83d\ude00"`, `"a/bé😀"`},
		{`"tab\there \"q\" \\ \u001f \u007f"`, `"tab\there \"q\" \\ \u001f ` + "\x7f" + `"`},
		{`"<&>"`, `"<&>"`},
		{`[true,false,null]`, `[true, false, null]`},
	} {
		got, err := CanonicalJSON(nil, []byte(tc.in))
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, string(got), tc.in)
	}
}

func TestCanonicalJSONRejects(t *testing.T) {
	t.Parallel()
	for in, msg := range map[string]string{
		``:                 "empty",
		`{"a":}`:           "unexpected character",
		`[1,]`:             "unexpected character",
		`01`:               "leading zero",
		`"\u0000"`:         `\u0000`,
		`"\ud800"`:         "unpaired surrogate",
		"\"a\x01\"":        "control character",
		"\"\xff\"":         "invalid UTF-8",
		`1e999`:            "out of range",
		`{"a":1} x`:        "after the value",
		`[[[[[[[[[[[[[[[[`: "end of input",
	} {
		_, err := CanonicalJSON(nil, []byte(in))
		require.ErrorContains(t, err, msg, "input %q", in)
	}
	deep := make([]byte, 0, 200)
	for range 100 {
		deep = append(deep, '[')
	}
	_, err := CanonicalJSON(nil, deep)
	require.ErrorContains(t, err, "nested too deeply")
}

func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.50,"x"]}`, `"\u00e9"`, `-1.5e-3`, `{"k":1,"k":{"z":null}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := CanonicalJSON(nil, in)
		if err != nil {
			return
		}
		// Canonical output is a fixed point.
		again, err := CanonicalJSON(nil, out)
		require.NoError(t, err)
		require.Equal(t, string(out), string(again))
	})
}

// FuzzDecode: any input line is either a valid profile whose canonical
// fields re-decode to the same profile, or a clear error; never a panic.
func FuzzDecode(f *testing.F) {
	g := NewGenerator(1)
	f.Add(g.AppendJSONL(nil, 0), false)
	tsv, _ := g.AppendTSV(nil, 1, &Decoder{})
	f.Add(tsv, true)
	f.Add([]byte("1\t2\t\t1"), true)
	f.Add([]byte(`{"user_id": 1, "version": 2, "deleted": true}`), false)
	f.Fuzz(func(t *testing.T, line []byte, isTSV bool) {
		var d Decoder
		format := FormatJSONL
		if isTSV {
			format = FormatTSV
		}
		p, err := d.Decode(format, line)
		if err != nil {
			return
		}
		require.Positive(t, p.UserID)
		require.Positive(t, p.Version)
		q, err := d.DecodeJSON(p.AppendRecord(nil))
		require.NoError(t, err, "a decoded profile's record decodes")
		require.True(t, p.Equal(q))
		require.Equal(t, p.Digest, q.Digest)
	})
}

func TestLineReader(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 200<<10) // longer than the 64 KiB buffer
	in := "a\r\nbb\n" + long + "\n" + strings.Repeat("y", 3000) + "\nlast"
	lr := NewLineReader(strings.NewReader(in), 250<<10)
	var got []string
	for {
		line, no, err := lr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		require.EqualValues(t, len(got)+1, no)
		got = append(got, string(line))
	}
	require.Equal(t, []string{"a", "bb", long, strings.Repeat("y", 3000), "last"}, got)

	lr = NewLineReader(strings.NewReader("ok\n"+long+"\nnext\n"+strings.Repeat("z", 2000)+"\n"), 1024)
	line, _, err := lr.Next()
	require.NoError(t, err)
	require.Equal(t, "ok", string(line))
	line, no, err := lr.Next()
	require.ErrorIs(t, err, ErrLineTooLong)
	require.EqualValues(t, 2, no)
	require.Len(t, line, 1024, "the first bytes of a long line are kept for the quarantine")
	line, no, err = lr.Next()
	require.NoError(t, err, "reading goes on after a long line")
	require.Equal(t, "next", string(line))
	require.EqualValues(t, 3, no)
	_, _, err = lr.Next()
	require.ErrorIs(t, err, ErrLineTooLong, "a long line within the buffer is caught too")
	_, _, err = lr.Next()
	require.Equal(t, io.EOF, err)
}
