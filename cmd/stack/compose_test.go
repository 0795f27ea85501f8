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
			Profiles    []string          `yaml:"profiles"`
			NetworkMode string            `yaml:"network_mode"`
			Command     any               `yaml:"command"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(b, &f))
	single := 0
	for _, s := range f.Services {
		if len(s.Profiles) == 0 {
			single++
		}
	}
	require.Equal(t, len(Names), single, "the single stack's services carry no profile")
	c := DefaultConfig()
	ports := map[string]string{
		"postgres":      fmt.Sprintf("127.0.0.1:${TRIAD_STACK_POSTGRES_PORT:-%d}:", c.PostgresPort),
		"redis":         fmt.Sprintf("127.0.0.1:${TRIAD_STACK_REDIS_PORT:-%d}:", c.RedisPort),
		"etcd":          fmt.Sprintf("127.0.0.1:${TRIAD_STACK_ETCD_PORT:-%d}:", c.EtcdPort),
		"elasticsearch": fmt.Sprintf("127.0.0.1:${TRIAD_STACK_ELASTICSEARCH_PORT:-%d}:", c.ESPort),
	}
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

	// The cluster profile: the members cmd/stack/cluster.go starts, on the
	// same ports (the default port base), host networking on 127.0.0.1.
	c.Profile = ProfileCluster
	ep := c.ClusterEndpoints()
	want := map[string]string{"postgres-cluster": fmt.Sprint(c.member(0).PostgresPort)}
	for i, a := range ep.RedisAddrs {
		want[fmt.Sprintf("redis-%d", i+1)] = a
	}
	for i, e := range ep.EtcdEndpoints {
		want[fmt.Sprintf("etcd-%d", i+1)] = e
	}
	for i := range ep.ElasticsearchURLs {
		want[fmt.Sprintf("elasticsearch-%d", i+1)] = fmt.Sprint(c.member(i).ESPort)
	}
	require.Len(t, f.Services, len(Names)+len(want))
	for name, port := range want {
		s, ok := f.Services[name]
		require.True(t, ok, "cluster service %s", name)
		require.Equal(t, []string{ProfileCluster}, s.Profiles, name)
		require.Equal(t, "host", s.NetworkMode, name)
		require.NotEmpty(t, s.Healthcheck, name)
		_, tag, ok := strings.Cut(s.Image, ":")
		require.True(t, ok && tag != "" && tag != "latest", "%s image %s must be pinned", name, s.Image)
		all := fmt.Sprint(s.Command) + fmt.Sprint(s.Environment)
		_, p, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(port, "http://"), "127.0.0.1"), ":")
		if p == "" {
			p = port
		}
		require.Contains(t, all, p, "%s listens on %s", name, p)
		require.Contains(t, all, "127.0.0.1", "%s binds loopback", name)
	}
	require.Equal(t, "docker.elastic.co/elasticsearch/elasticsearch:"+ElasticsearchVersion, f.Services["elasticsearch-1"].Image)
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
