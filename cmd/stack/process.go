package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// runAs describes the account a server process runs as. When triad runs as
// root, servers run as an unprivileged user (Postgres and Elasticsearch refuse
// root); otherwise they run as the current user.
type runAs struct {
	uid, gid uint32
	name     string
	home     string
	asRoot   bool // the current process is root and drops privileges
}

func resolveUser(ctx context.Context, name string) (runAs, error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return runAs{}, fmt.Errorf("current user: %w", err)
		}
		return runAs{uid: uint32(os.Getuid()), gid: uint32(os.Getgid()), name: u.Username, home: u.HomeDir}, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		// Create a system account with no login shell and no home directory.
		out, cerr := exec.CommandContext(ctx, "useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput()
		if cerr != nil && !strings.Contains(string(out), "already exists") {
			return runAs{}, fmt.Errorf("create user %s: %v: %s", name, cerr, bytes.TrimSpace(out))
		}
		if u, err = user.Lookup(name); err != nil {
			return runAs{}, fmt.Errorf("lookup user %s: %w", name, err)
		}
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return runAs{uid: uint32(uid), gid: uint32(gid), name: name, home: "/var/tmp", asRoot: true}, nil
}

// command builds a command that runs as the stack user in its own session, so
// a server it starts survives the triad process that started it. It is not
// bound to a context: killing a server is stop's job, not a cancelled caller's.
func (r runAs) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if r.asRoot {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: r.uid, Gid: r.gid}
	}
	cmd.Env = append(os.Environ(), "HOME="+r.home, "USER="+r.name, "LOGNAME="+r.name)
	return cmd
}

// run runs a short-lived command as the stack user and returns its combined
// output in the error when it fails.
func (r runAs) run(ctx context.Context, name string, args ...string) error {
	cmd := r.command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%s: %v: %s", name, err, lastLines(out.String(), 15))
		}
		return nil
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s: %w", name, ctx.Err())
	}
}

// mkdir creates dir (and parents) owned by the stack user.
func (r runAs) mkdir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if r.asRoot {
		return os.Chown(dir, int(r.uid), int(r.gid))
	}
	return nil
}

// chownTree gives the stack user a whole tree.
func (r runAs) chownTree(dir string) error {
	if !r.asRoot {
		return nil
	}
	out, err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", r.uid, r.gid), dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("chown %s: %v: %s", dir, err, bytes.TrimSpace(out))
	}
	return nil
}

// startDetached starts cmd with its output appended to logPath and records
// its pid in pidPath. The process is not waited for: it outlives the caller.
func startDetached(cmd *exec.Cmd, logPath, pidPath string) error {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := os.WriteFile(pidPath, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return err
	}
	// Reap the child if it exits while we are still running, so liveness
	// checks by pid do not see a zombie.
	go func() { _ = cmd.Wait() }()
	return nil
}

// readPid returns the pid recorded in path, or 0.
func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// alive reports whether pid names a running, non-zombie process.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // no procfs: trust kill(0)
	}
	// Field 3 is the state; it follows the ")" that ends the command name.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// terminate sends sig to pid, waits up to grace, then SIGKILLs it.
func terminate(ctx context.Context, pid int, sig syscall.Signal, grace time.Duration) {
	if !alive(pid) {
		return
	}
	_ = syscall.Kill(pid, sig)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) && alive(pid) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	if alive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		for i := 0; i < 50 && alive(pid); i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// portFree reports whether nothing listens on host:port.
func portFree(host string, port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), 300*time.Millisecond)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

// FreePort asks the kernel for an unused TCP port on 127.0.0.1.
func FreePort() (int, error) {
	ports, err := FreePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// FreePorts returns n distinct free ports on 127.0.0.1. Every listener is
// held until all n are chosen: ports picked one after another could repeat
// (the kernel may hand a just-closed port out again).
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log at %s: %v)", path, err)
	}
	return lastLines(string(b), n)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// errExited marks a probe failure that waiting will not fix.
var errExited = errors.New("the server process exited")

// poll calls probe every interval until it succeeds, fails with errExited,
// ctx ends or timeout passes; it returns the last probe error.
func poll(ctx context.Context, timeout, interval time.Duration, probe func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		last = probe(pctx)
		pcancel()
		if last == nil {
			return nil
		}
		if errors.Is(last, errExited) {
			return last
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not answering after %s: %w", timeout, last)
		case <-time.After(interval):
		}
	}
}
