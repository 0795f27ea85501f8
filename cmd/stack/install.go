package stack

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// aptMu serialises package installs: dpkg takes a global lock.
var aptMu sync.Mutex

// aptInstall installs Debian packages without letting their maintainer
// scripts start system-wide server instances (policy-rc.d answers 101,
// "action forbidden"), so the only servers running are the stack's own.
func aptInstall(ctx context.Context, log *slog.Logger, pkgs ...string) error {
	aptMu.Lock()
	defer aptMu.Unlock()
	if os.Geteuid() != 0 {
		return fmt.Errorf("packages %s are missing and installing them needs root: run `sudo apt-get install %s`", strings.Join(pkgs, " "), strings.Join(pkgs, " "))
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("packages %s are missing and apt-get is not available: install them yourself", strings.Join(pkgs, " "))
	}
	const policy = "/usr/sbin/policy-rc.d"
	if _, err := os.Stat(policy); os.IsNotExist(err) {
		if err := os.WriteFile(policy, []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", policy, err)
		}
		defer os.Remove(policy)
	}
	install := func() ([]byte, error) {
		args := append([]string{"install", "-y", "-q", "--no-install-recommends"}, pkgs...)
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	log.Info("installing packages", "packages", pkgs)
	if _, err := install(); err != nil {
		// The package lists may be missing or stale on a fresh machine.
		if uout, uerr := exec.CommandContext(ctx, "apt-get", "update", "-q").CombinedOutput(); uerr != nil {
			return fmt.Errorf("apt-get update: %v: %s", uerr, lastLines(string(uout), 10))
		}
		if out, err := install(); err != nil {
			return fmt.Errorf("apt-get install %s: %v: %s", strings.Join(pkgs, " "), err, lastLines(string(out), 10))
		}
	}
	return nil
}

// ensureBinary returns the path of bin, installing pkg when it is missing.
func ensureBinary(ctx context.Context, log *slog.Logger, bin, pkg string) (string, error) {
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	if err := aptInstall(ctx, log, pkg); err != nil {
		return "", err
	}
	p, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("%s not found after installing %s", bin, pkg)
	}
	return p, nil
}

// postgresBinDir finds the newest /usr/lib/postgresql/*/bin with initdb,
// installing Debian's postgresql package when there is none.
func postgresBinDir(ctx context.Context, log *slog.Logger, configured string) (string, error) {
	if configured != "" {
		if _, err := os.Stat(filepath.Join(configured, "initdb")); err != nil {
			return "", fmt.Errorf("stack.postgres_bin_dir: %w", err)
		}
		return configured, nil
	}
	find := func() string {
		dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
		sort.Slice(dirs, func(i, j int) bool { return versionLess(dirs[i], dirs[j]) })
		if len(dirs) == 0 {
			return ""
		}
		return filepath.Dir(dirs[len(dirs)-1])
	}
	if d := find(); d != "" {
		return d, nil
	}
	if err := aptInstall(ctx, log, "postgresql"); err != nil {
		return "", err
	}
	if d := find(); d != "" {
		return d, nil
	}
	return "", fmt.Errorf("no /usr/lib/postgresql/*/bin/initdb after installing postgresql")
}

// versionLess orders paths containing a major version number (…/15/bin/…).
func versionLess(a, b string) bool {
	num := func(p string) int {
		n := 0
		for _, part := range strings.Split(p, "/") {
			if _, err := fmt.Sscanf(part, "%d", &n); err == nil && fmt.Sprint(n) == part {
				return n
			}
		}
		return 0
	}
	return num(a) < num(b)
}

// javaHome returns a JDK 17 home for Elasticsearch.
func javaHome(ctx context.Context, log *slog.Logger, configured string) (string, error) {
	if configured != "" {
		if _, err := os.Stat(filepath.Join(configured, "bin", "java")); err != nil {
			return "", fmt.Errorf("stack.java_home: %w", err)
		}
		return configured, nil
	}
	find := func() string {
		for _, pattern := range []string{"/usr/lib/jvm/java-17-openjdk-*", "/usr/lib/jvm/*17*"} {
			m, _ := filepath.Glob(pattern)
			for _, d := range m {
				if _, err := os.Stat(filepath.Join(d, "bin", "java")); err == nil {
					return d
				}
			}
		}
		return ""
	}
	if d := find(); d != "" {
		return d, nil
	}
	if err := aptInstall(ctx, log, "openjdk-17-jre-headless"); err != nil {
		return "", err
	}
	if d := find(); d != "" {
		return d, nil
	}
	return "", fmt.Errorf("no JDK 17 under /usr/lib/jvm: set stack.java_home")
}

// esZip returns the path of the Elasticsearch integ-test zip in the Maven
// repository, downloading it (checked against Maven Central's SHA-1) if absent.
// The repository lives outside any checkout, so fresh clones reuse it.
func esZip(ctx context.Context, log *slog.Logger, c Config) (string, error) {
	rel := fmt.Sprintf("org/elasticsearch/distribution/integ-test-zip/elasticsearch/%[1]s/elasticsearch-%[1]s.zip", c.ESVersion)
	local := filepath.Join(c.MavenRepo, filepath.FromSlash(rel))
	if _, err := os.Stat(local); err == nil {
		return local, nil
	}
	url := strings.TrimRight(c.MavenURL, "/") + "/" + rel
	log.Info("downloading elasticsearch", "url", url)
	want, err := httpGet(ctx, url+".sha1")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(local), ".download-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("download %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("download %s: %s", url, resp.Status)
	}
	h := sha1.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), resp.Body); err != nil {
		return "", fmt.Errorf("download %s: %w", url, err)
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.Fields(string(want))[0] {
		return "", fmt.Errorf("download %s: sha1 %s, Maven Central says %s", url, got, bytes.TrimSpace(want))
	}
	if err := os.Rename(tmp.Name(), local); err != nil {
		return "", err
	}
	return local, nil
}

func httpGet(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || len(bytes.Fields(b)) == 0 {
		return nil, fmt.Errorf("get %s: empty or unreadable body: %v", url, err)
	}
	return b, nil
}

// unzip extracts the archive at src into dst, keeping file modes.
func unzip(src, dst string) error {
	r, err := zip.OpenReader(src)
	if err != nil {
		return fmt.Errorf("open %s: %w", src, err)
	}
	defer r.Close()
	for _, f := range r.File {
		target := filepath.Join(dst, f.Name)
		if !strings.HasPrefix(target, filepath.Clean(dst)+string(os.PathSeparator)) {
			return fmt.Errorf("unzip %s: entry %q escapes the target", src, f.Name)
		}
		if f.FileInfo().IsDir() {
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		if err := extractFile(f, target); err != nil {
			return fmt.Errorf("unzip %s: %w", f.Name, err)
		}
	}
	return nil
}

func extractFile(f *zip.File, target string) error {
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	mode := f.Mode().Perm()
	if mode == 0 {
		mode = 0o644
	}
	out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, rc); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
