// Package stack brings up the local development stack: real Postgres, Redis,
// etcd and Elasticsearch 8 servers on 127.0.0.1, either through docker compose
// (when a Docker engine answers) or from local binaries that it installs when
// they are missing. It is used by `triad stack`, by `make test`, and by tests
// that need a private server instance they may stop and break.
package stack

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Mode selects how the stack runs its servers.
const (
	ModeAuto   = "auto"
	ModeLocal  = "local"
	ModeDocker = "docker"
)

// Config describes where the stack keeps its state and which ports it binds.
// The defaults avoid the standard ports (5432, 6379, 2379, 9200) so the stack
// never clashes with servers a user already runs.
type Config struct {
	// Dir holds every server's data, logs and pid files. It must be reachable by
	// the unprivileged user the servers run as when triad runs as root.
	Dir  string `yaml:"dir"`
	Mode string `yaml:"mode"`
	// Host is the address every server binds to.
	Host string `yaml:"host"`

	PostgresPort    int    `yaml:"postgres_port"`
	PostgresBinDir  string `yaml:"postgres_bin_dir"`
	PostgresDB      string `yaml:"postgres_database"`
	PostgresUser    string `yaml:"postgres_user"`
	RedisPort       int    `yaml:"redis_port"`
	EtcdPort        int    `yaml:"etcd_port"`
	EtcdPeerPort    int    `yaml:"etcd_peer_port"`
	ESPort          int    `yaml:"elasticsearch_port"`
	ESTransportPort int    `yaml:"elasticsearch_transport_port"`
	ESVersion       string `yaml:"elasticsearch_version"`
	ESHeap          string `yaml:"elasticsearch_heap"`
	// JavaHome is the JDK Elasticsearch runs on; empty means detect a JDK 17.
	JavaHome string `yaml:"java_home"`
	// MavenRepo caches the Elasticsearch download outside any checkout.
	MavenRepo string `yaml:"maven_repo"`
	MavenURL  string `yaml:"maven_url"`
	// User is the unprivileged account servers run as when triad runs as root.
	User        string `yaml:"user"`
	ComposeFile string `yaml:"compose_file"`

	// Profile is single (one server of each) or cluster: one Postgres, a
	// Redis Cluster of 3 masters and 3 replicas, 3 etcd members and
	// ClusterESNodes Elasticsearch nodes (3 by default: two master-eligible
	// nodes keep only one in the voting configuration, and losing that
	// one stops the cluster), from the same packages, in
	// ClusterDir, on ports counted from ClusterPortBase (see
	// ClusterEndpoints).
	Profile         string `yaml:"profile"`
	ClusterDir      string `yaml:"cluster_dir"`
	ClusterPortBase int    `yaml:"cluster_port_base"`
	ClusterESNodes  int    `yaml:"cluster_elasticsearch_nodes"`
	ClusterESHeap   string `yaml:"cluster_elasticsearch_heap"`
}

// Profiles of the stack.
const (
	ProfileSingle  = "single"
	ProfileCluster = "cluster"
)

// DefaultConfig returns the local stack's defaults.
func DefaultConfig() Config {
	home, _ := os.UserHomeDir()
	return Config{
		Dir:             "/var/tmp/triad-stack/default",
		Mode:            ModeAuto,
		Host:            "127.0.0.1",
		PostgresPort:    15432,
		PostgresDB:      "triad",
		PostgresUser:    "triad",
		RedisPort:       16379,
		EtcdPort:        12379,
		EtcdPeerPort:    12380,
		ESPort:          19200,
		ESTransportPort: 19300,
		ESVersion:       ElasticsearchVersion,
		ESHeap:          "512m",
		MavenRepo:       filepath.Join(home, ".m2", "repository"),
		MavenURL:        "https://repo1.maven.org/maven2",
		User:            "triad",
		ComposeFile:     "docker-compose.yml",
		Profile:         ProfileSingle,
		ClusterDir:      "/var/tmp/triad-stack/cluster",
		ClusterPortBase: 20000,
		ClusterESNodes:  3,
		ClusterESHeap:   "384m",
	}
}

// ElasticsearchVersion is the pinned server version; it matches the
// go-elasticsearch v8.19 client and runs on JDK 17.
const ElasticsearchVersion = "8.19.4"

// Validate reports the first invalid field, naming its key.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" || !filepath.IsAbs(c.Dir) {
		errs = append(errs, fmt.Errorf("stack.dir: must be an absolute path, got %q", c.Dir))
	}
	switch c.Mode {
	case ModeAuto, ModeLocal, ModeDocker:
	default:
		errs = append(errs, fmt.Errorf("stack.mode: must be auto, local or docker, got %q", c.Mode))
	}
	if c.Host == "" {
		errs = append(errs, errors.New("stack.host: must not be empty"))
	}
	ports := map[string]int{
		"stack.postgres_port": c.PostgresPort, "stack.redis_port": c.RedisPort,
		"stack.etcd_port": c.EtcdPort, "stack.etcd_peer_port": c.EtcdPeerPort,
		"stack.elasticsearch_port": c.ESPort, "stack.elasticsearch_transport_port": c.ESTransportPort,
	}
	seen := map[int]string{}
	for _, k := range []string{"stack.postgres_port", "stack.redis_port", "stack.etcd_port", "stack.etcd_peer_port", "stack.elasticsearch_port", "stack.elasticsearch_transport_port"} {
		p := ports[k]
		if p < 1 || p > 65535 {
			errs = append(errs, fmt.Errorf("%s: must be 1-65535, got %d", k, p))
			continue
		}
		if other, dup := seen[p]; dup {
			errs = append(errs, fmt.Errorf("%s: port %d already used by %s", k, p, other))
		}
		seen[p] = k
	}
	if c.ESVersion == "" {
		errs = append(errs, errors.New("stack.elasticsearch_version: must not be empty"))
	}
	switch c.Profile {
	case ProfileSingle:
	case ProfileCluster:
		if c.ClusterDir == "" || !filepath.IsAbs(c.ClusterDir) {
			errs = append(errs, fmt.Errorf("stack.cluster_dir: must be an absolute path, got %q", c.ClusterDir))
		}
		if c.ClusterPortBase < 1024 || c.ClusterPortBase > 65535-17006 {
			errs = append(errs, fmt.Errorf("stack.cluster_port_base: must be 1024-%d (ports up to base+17006, the Redis cluster bus, are used), got %d", 65535-17006, c.ClusterPortBase))
		}
		if c.ClusterESNodes < 2 || c.ClusterESNodes > 3 {
			errs = append(errs, fmt.Errorf("stack.cluster_elasticsearch_nodes: must be 2 or 3, got %d", c.ClusterESNodes))
		}
	default:
		errs = append(errs, fmt.Errorf("stack.profile: must be single or cluster, got %q", c.Profile))
	}
	return errors.Join(errs...)
}

// Endpoints are the addresses clients use to reach the stack's servers.
type Endpoints struct {
	PostgresURL      string `json:"postgres_url"`
	RedisAddr        string `json:"redis_addr"`
	EtcdEndpoint     string `json:"etcd_endpoint"`
	ElasticsearchURL string `json:"elasticsearch_url"`
}

// Endpoints returns where the configured stack's servers listen.
func (c Config) Endpoints() Endpoints {
	return Endpoints{
		PostgresURL:      fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", c.PostgresUser, c.Host, c.PostgresPort, c.PostgresDB),
		RedisAddr:        fmt.Sprintf("%s:%d", c.Host, c.RedisPort),
		EtcdEndpoint:     fmt.Sprintf("http://%s:%d", c.Host, c.EtcdPort),
		ElasticsearchURL: fmt.Sprintf("http://%s:%d", c.Host, c.ESPort),
	}
}
