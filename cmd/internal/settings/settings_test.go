package settings

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type creds struct {
	User     string `yaml:"user"`
	Password string `yaml:"password" secret:"true"`
}

type sample struct {
	DB struct {
		Host    string        `yaml:"host"`
		Port    int           `yaml:"port"`
		Timeout time.Duration `yaml:"timeout"`
		creds   `yaml:",inline"`
	} `yaml:"db"`
	Peers []string          `yaml:"peers"`
	Tags  map[string]string `yaml:"tags"`
}

func TestLayers(t *testing.T) {
	var s sample
	s.DB.Host, s.DB.Port = "default", 1
	// A file with keys this struct does not hold: strict refuses them, a
	// partial reader (stacktest's) takes what it knows.
	file := []byte("db:\n  port: 2\nserver:\n  listen: x\n")
	require.ErrorContains(t, DecodeYAML(file, &s, true), "field server not found")
	require.NoError(t, DecodeYAML(file, &s, false))
	require.Equal(t, 2, s.DB.Port)
	require.Empty(t, Secrets(&s))
	require.NoError(t, DecodeYAML([]byte("db:\n  password: hunter2\n"), &s, false))
	require.Equal(t, []string{"db.password"}, Secrets(&s))

	env := EnvMap([]string{"TRIAD_DB_HOST=envhost", "TRIAD_DB_TIMEOUT=3s", "TRIAD_PEERS=a:1, b:2", "TRIAD_TAGS=x=1,y=2", "OTHER=1"})
	require.NoError(t, ApplyEnv(&s, env))
	require.Equal(t, "envhost", s.DB.Host)
	require.Equal(t, 3*time.Second, s.DB.Timeout)
	require.Equal(t, []string{"a:1", "b:2"}, s.Peers)
	require.Equal(t, map[string]string{"x": "1", "y": "2"}, s.Tags)
	err := ApplyEnv(&s, map[string]string{"TRIAD_DB_PORT": "s3cret-ish"})
	require.EqualError(t, err, "TRIAD_DB_PORT (db.port): invalid integer", "the value is never echoed")

	require.NoError(t, Set(&s, "db.port", "7"))
	require.Equal(t, 7, s.DB.Port)
	require.EqualError(t, Set(&s, "db.nope", "1"), "unknown key")
	require.ErrorContains(t, Set(&s, "db.password", "x"), "TRIAD_DB_PASSWORD")
	require.Equal(t, "TRIAD_DB_PASSWORD", EnvName("db.password"))
}
