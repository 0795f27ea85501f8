package clients

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/internal/secret"
)

// writePair writes a self-signed certificate and its key as PEM files.
func writePair(t *testing.T, dir string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "triad-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return certPath, keyPath
}

func TestTLSBuild(t *testing.T) {
	dir := t.TempDir()
	cert, key := writePair(t, dir)

	off, err := TLS{}.Build()
	require.NoError(t, err)
	require.Nil(t, off)

	tc, err := TLS{Enabled: true, CAFile: cert, CertFile: cert, KeyFile: key, ServerName: "db.internal"}.Build()
	require.NoError(t, err)
	require.NotNil(t, tc.RootCAs)
	require.Len(t, tc.Certificates, 1)
	require.Equal(t, "db.internal", tc.ServerName)

	require.ErrorContains(t, TLS{Enabled: true, CertFile: cert}.Validate("redis"), "redis.tls: cert_file and key_file must be set together")
	require.ErrorContains(t, TLS{Enabled: true, CAFile: filepath.Join(dir, "nope.pem")}.Validate("etcd"), "etcd.tls.ca_file")
	_, err = TLS{Enabled: true, CAFile: key}.Build()
	require.ErrorContains(t, err, "no PEM certificates")
}

// TestClientsCarryCredentialsAndTLS builds every client with credentials and
// TLS on; nothing connects, and no error or printed config shows a password.
func TestClientsCarryCredentialsAndTLS(t *testing.T) {
	cert, key := writePair(t, t.TempDir())
	tlsOn := TLS{Enabled: true, CAFile: cert, CertFile: cert, KeyFile: key}
	creds := Credentials{Username: "triad", Password: secret.Value("hunter2")}

	pg := DefaultPostgres()
	pg.Credentials, pg.TLS, pg.SSLMode = creds, tlsOn, "verify-full"
	pool, err := NewPostgres(pg)
	require.NoError(t, err)
	defer pool.Close()
	require.Equal(t, "hunter2", pool.Config().ConnConfig.Password)
	require.NotNil(t, pool.Config().ConnConfig.TLSConfig)
	require.NotContains(t, pool.Config().ConnString(), "hunter2")

	r := DefaultRedis()
	r.Credentials, r.TLS = creds, tlsOn
	rdb, err := NewRedis(r)
	require.NoError(t, err)
	defer rdb.Close()
	require.NotNil(t, rdb.(*redis.Client).Options().TLSConfig)
	require.Equal(t, "triad", rdb.(*redis.Client).Options().Username)
	// A cluster's seed nodes: the cluster client, with the same settings.
	r.Addrs = []string{"127.0.0.1:1", "127.0.0.1:2"}
	crdb, err := NewRedis(r)
	require.NoError(t, err)
	defer crdb.Close()
	require.NotNil(t, crdb.(*redis.ClusterClient).Options().TLSConfig)
	require.Equal(t, "triad", crdb.(*redis.ClusterClient).Options().Username)
	require.Equal(t, "127.0.0.1:1,127.0.0.1:2", RedisAddr(crdb))

	es := DefaultElasticsearch()
	es.Addresses = []string{"https://127.0.0.1:1"}
	es.Credentials, es.TLS = creds, tlsOn
	_, err = NewElasticsearch(es)
	require.NoError(t, err)

	e := DefaultEtcd()
	e.TLS = tlsOn
	cli, err := NewEtcd(e)
	require.NoError(t, err)
	require.NoError(t, cli.Close())
}
