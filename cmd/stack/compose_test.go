package stack

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// TestComposeMatchesLocalStack keeps docker-compose.yml in step with the
// local stack: same Elasticsearch version, same default ports, loopback only,
// security off, a healthcheck on every service. (No Docker engine runs on the
// development machines, so `docker compose config` cannot check it there.)
func TestComposeMatchesLocalStack(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose.yml")
	require.NoError(t, err)
	var f struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Ports       []string          `yaml:"ports"`
			Environment map[string]string `yaml:"environment"`
			Healthcheck map[string]any    `yaml:"healthcheck"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(b, &f))
	c := DefaultConfig()
	ports := map[string]string{
		"postgres":      fmt.Sprintf("127.0.0.1:${TRIAD_STACK_POSTGRES_PORT:-%d}:", c.PostgresPort),
		"redis":         fmt.Sprintf("127.0.0.1:${TRIAD_STACK_REDIS_PORT:-%d}:", c.RedisPort),
		"etcd":          fmt.Sprintf("127.0.0.1:${TRIAD_STACK_ETCD_PORT:-%d}:", c.EtcdPort),
		"elasticsearch": fmt.Sprintf("127.0.0.1:${TRIAD_STACK_ELASTICSEARCH_PORT:-%d}:", c.ESPort),
	}
	require.Len(t, f.Services, len(Names))
	for _, name := range Names {
		s, ok := f.Services[name]
		require.True(t, ok, "service %s", name)
		require.NotEmpty(t, s.Healthcheck, "%s healthcheck", name)
		require.Len(t, s.Ports, 1, name)
		require.True(t, strings.HasPrefix(s.Ports[0], ports[name]), "%s port %s, want prefix %s", name, s.Ports[0], ports[name])
		_, tag, ok := strings.Cut(s.Image, ":")
		require.True(t, ok && tag != "" && tag != "latest", "%s image %s must be pinned", name, s.Image)
	}
	require.Equal(t, "docker.elastic.co/elasticsearch/elasticsearch:"+ElasticsearchVersion, f.Services["elasticsearch"].Image)
	require.Equal(t, "false", f.Services["elasticsearch"].Environment["xpack.security.enabled"])
	require.Equal(t, "single-node", f.Services["elasticsearch"].Environment["discovery.type"])
}

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	require.NoError(t, good.Validate())
	for name, tc := range map[string]struct {
		mod  func(*Config)
		want string
	}{
		"relative dir": {func(c *Config) { c.Dir = "stack" }, "stack.dir: must be an absolute path"},
		"bad mode":     {func(c *Config) { c.Mode = "k8s" }, "stack.mode: must be auto, local or docker"},
		"port range":   {func(c *Config) { c.ESPort = 0 }, "stack.elasticsearch_port: must be 1-65535"},
		"port clash":   {func(c *Config) { c.EtcdPeerPort = c.EtcdPort }, "stack.etcd_peer_port: port 12379 already used by stack.etcd_port"},
	} {
		t.Run(name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			require.ErrorContains(t, c.Validate(), tc.want)
		})
	}
}
