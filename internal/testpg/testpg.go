// Package testpg runs a throwaway PostgreSQL cluster for the tests of one test binary: Debian's
// postgresql package (initdb and postgres from /usr/lib/postgresql/*/bin), a cluster in a temporary
// directory owned by an unprivileged user (nobody, when the tests run as root: PostgreSQL refuses to
// run as root), listening on its unix socket in that directory and on a free loopback port. The
// cluster starts with the first NewDB and is stopped by Stop (call it from TestMain, after m.Run);
// every test gets a database of its own. A test that stops and restarts the database starts a
// cluster of its own with New (Down, Up).
//
// A machine without PostgreSQL fails the test with a message saying how to install it, unless the
// tests run with -short.
package testpg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// superuser is the cluster's superuser, whom every test connects as (trust authentication: the
// cluster is reachable only from this machine, for the life of one test binary).
const superuser = "gear"

// Cluster is a running PostgreSQL server.
type Cluster struct {
	dir  string // temporary directory: data/, the unix socket, the server's log
	bin  string // the directory of initdb, postgres and pg_ctl
	port int
	cmd  *exec.Cmd
	cred *syscall.Credential // the unprivileged user the server runs as, when the tests run as root
	done chan struct{}       // closed when the server has exited

	mu    sync.Mutex // serializes CREATE DATABASE
	admin *pgconn.PgConn
	n     atomic.Int64
}

var (
	once     sync.Once
	shared   *Cluster
	startErr error
)

// NewDB creates an empty database on the test binary's cluster, starting the cluster if it is not
// running yet, and returns its URL (over the unix socket). Without PostgreSQL installed the test
// fails, or under -short is skipped.
func NewDB(tb testing.TB) string {
	tb.Helper()
	c := Shared(tb)
	u, err := c.CreateDB()
	if err != nil {
		tb.Fatalf("testpg: %v", err)
	}
	return u
}

// New starts a cluster of the test's own, stopped and removed when the test ends: for a test that
// stops the database and starts it again (Down, Up), which would break the other tests of a
// shared one. Without PostgreSQL installed the test fails, or under -short is skipped.
func New(tb testing.TB) *Cluster {
	tb.Helper()
	c, err := Start()
	if errors.Is(err, errNotInstalled) && testing.Short() {
		tb.Skipf("testpg: %v (skipped under -short)", err)
	}
	if err != nil {
		tb.Fatalf("testpg: %v", err)
	}
	tb.Cleanup(c.Stop)
	return c
}

// Shared returns the test binary's cluster, started by the first call.
func Shared(tb testing.TB) *Cluster {
	tb.Helper()
	once.Do(func() { shared, startErr = Start() })
	if errors.Is(startErr, errNotInstalled) && testing.Short() {
		tb.Skipf("testpg: %v (skipped under -short)", startErr)
	}
	if startErr != nil {
		tb.Fatalf("testpg: %v", startErr)
	}
	return shared
}

// Stop stops the shared cluster, if one was started, and removes its directory.
func Stop() {
	if shared != nil {
		shared.Stop()
	}
}

var errNotInstalled = errors.New("PostgreSQL is not installed: no initdb in /usr/lib/postgresql/*/bin (run scripts/install-test-deps.sh, which installs Debian's postgresql package)")

// binDir finds the newest installed PostgreSQL's programs.
func binDir() (string, error) {
	if d := os.Getenv("GEAR_TESTPG_BIN"); d != "" { // another PostgreSQL's programs
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			return "", fmt.Errorf("%w (GEAR_TESTPG_BIN=%s: %v)", errNotInstalled, d, err)
		}
		return d, nil
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) == 0 {
		return "", errNotInstalled
	}
	sort.Slice(found, func(i, j int) bool { // by major version, numerically: 9 < 15 < 16
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(found[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(found[j]))))
		return vi < vj
	})
	return filepath.Dir(found[len(found)-1]), nil
}

// Start starts a new cluster. The caller stops it.
func Start() (*Cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gear-testpg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root, and no user nobody to run PostgreSQL as: %w", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, int(uid), int(gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := c.command("initdb", "-D", data, "-U", superuser, "-A", "trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	// The port is free when chosen, but another process may take it before the server binds it:
	// then the server exits at once, and a new port is tried.
	for try := 0; ; try++ {
		if err = c.start(data); err == nil {
			return c, nil
		}
		if try == 4 {
			os.RemoveAll(dir)
			return nil, err
		}
	}
}

// command runs one of PostgreSQL's programs as the cluster's user.
func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGTZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	return cmd
}

func (c *Cluster) start(data string) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	c.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	return c.launch(data)
}

// launch runs the server on c.port and waits until it accepts connections.
func (c *Cluster) launch(data string) error {
	logf, err := os.OpenFile(filepath.Join(c.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	// postgres runs as a child of the test binary, not daemonized by pg_ctl: if the binary dies
	// (a timeout, kill -9) the kernel sends the server SIGQUIT, PostgreSQL's immediate shutdown,
	// instead of leaving it running.
	c.cmd = c.command("postgres", "-D", data, "-p", strconv.Itoa(c.port), "-k", c.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200", "-c", "shared_buffers=64MB",
		"-c", "logging_collector=off", "-c", "log_min_messages=warning")
	c.cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	c.done = make(chan struct{})
	go func() { c.cmd.Wait(); close(c.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgconn.Connect(ctx, c.url("postgres"))
		cancel()
		if err == nil {
			c.mu.Lock()
			c.admin = conn
			c.mu.Unlock()
			return nil
		}
		select {
		case <-c.done:
			log, _ := os.ReadFile(filepath.Join(c.dir, "postgres.log"))
			return fmt.Errorf("postgres exited at start: %s", log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.Stop()
			return fmt.Errorf("postgres did not accept connections within a minute: %v", err)
		}
	}
}

// url is the URL of database db over the unix socket.
func (c *Cluster) url(db string) string {
	q := url.Values{"host": {c.dir}, "port": {strconv.Itoa(c.port)}, "sslmode": {"disable"}}
	return (&url.URL{Scheme: "postgres", User: url.User(superuser), Path: "/" + db, RawQuery: q.Encode()}).String()
}

// TCPURL is the URL of database db over TCP on the loopback address (for tests that put a proxy
// between a server and the database).
func (c *Cluster) TCPURL(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", superuser, c.port, db)
}

// Dir is the cluster's temporary directory (its unix socket is there).
func (c *Cluster) Dir() string { return c.dir }

// Port is the cluster's port: its TCP port on 127.0.0.1, and the number in its socket's name.
func (c *Cluster) Port() int { return c.port }

// CreateDB creates an empty database and returns its URL.
func (c *Cluster) CreateDB() (string, error) {
	name := fmt.Sprintf("gear_test_%d", c.n.Add(1))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.admin == nil {
		return "", errors.New("the server is down")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.admin.Exec(ctx, "CREATE DATABASE "+name).ReadAll(); err != nil {
		return "", fmt.Errorf("CREATE DATABASE %s: %w", name, err)
	}
	return c.url(name), nil
}

// Down stops the server with pg_ctl stop -m mode ("fast": every session is ended and the server
// exits after a shutdown checkpoint; "immediate": as if it crashed), keeping its data directory and
// port for Up.
func (c *Cluster) Down(mode string) error {
	c.mu.Lock()
	if c.admin != nil {
		c.admin.Close(context.Background())
		c.admin = nil
	}
	c.mu.Unlock()
	select {
	case <-c.done:
		return errors.New("testpg: the server is not running")
	default:
	}
	if out, err := c.command("pg_ctl", "stop", "-D", filepath.Join(c.dir, "data"), "-m", mode, "-w").CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl stop -m %s: %v\n%s", mode, err, out)
	}
	select {
	case <-c.done:
		return nil
	case <-time.After(time.Minute):
		return errors.New("testpg: postgres did not exit within a minute of pg_ctl stop")
	}
}

// Up starts the server again after Down, on the same data directory and port, and waits until it
// accepts connections.
func (c *Cluster) Up() error {
	select {
	case <-c.done:
	default:
		return errors.New("testpg: the server is running")
	}
	return c.launch(filepath.Join(c.dir, "data"))
}

// Stop stops the server at once (pg_ctl stop -m immediate: nothing of a throwaway cluster needs
// a clean shutdown) and removes the cluster's directory.
func (c *Cluster) Stop() {
	c.mu.Lock()
	if c.admin != nil {
		c.admin.Close(context.Background())
		c.admin = nil
	}
	c.mu.Unlock()
	if c.done != nil {
		select {
		case <-c.done:
		default:
			if err := c.command("pg_ctl", "stop", "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w").Run(); err != nil {
				c.cmd.Process.Kill()
			}
			<-c.done
		}
	}
	os.RemoveAll(c.dir)
}
