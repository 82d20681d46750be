package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gearhq/gear/client"
	"github.com/gearhq/gear/gearmandqueue"
	"github.com/gearhq/gear/httpproto"
	"github.com/gearhq/gear/server"
	"github.com/gearhq/gear/store"
)

// gearmand 1.1's options that Gear has no option of its own for. Each is understood: implemented
// (Gear does the same thing), mapped (Gear has its own way, and says so in the log at start), or
// refused with a one-line reason. None is "not defined".
type gearmandFlags struct {
	daemon            bool
	user              string
	syslog            bool
	coredump          bool
	fileDescriptors   int
	hashtableBuckets  int
	keepaliveInterval int
	keepaliveCount    int
	protocol          string
	httpPort          int
	version           bool
	ssl               bool
	sslCAFile         string
	sslCertificate    string
	sslKey            string
	// The queue plugins' options (-q libsqlite3, libpq, mysql, redis, libmemcached).
	plugin map[string]*string
}

// pluginOptions are the queue plugins' options of gearmand 1.1.20, by plugin.
var pluginOptions = map[string][]string{
	"libsqlite3":   {"libsqlite3-db", "libsqlite3-table", "store-queue-on-shutdown"},
	"libpq":        {"libpq-conninfo", "libpq-table"},
	"mysql":        {"mysql-host", "mysql-port", "mysql-user", "mysql-password", "mysql-db", "mysql-table"},
	"redis":        {"redis-server", "redis-port", "redis-password", "redis-prefix"},
	"libmemcached": {"libmemcached-servers", "libmemcached-prefix"},
}

func (g *gearmandFlags) register(fs *flag.FlagSet) {
	boolean := func(p *bool, long, short, help string) {
		fs.BoolVar(p, long, false, help)
		if short != "" {
			fs.BoolVar(p, short, false, "short for --"+long)
		}
	}
	boolean(&g.daemon, "daemon", "d", "detach and run in the background; the parent exits once the server listens and its pid file is written")
	fs.StringVar(&g.user, "user", "", "switch to this user once the ports are bound and the data directory is open (which it then owns)")
	fs.StringVar(&g.user, "u", "", "short for --user")
	boolean(&g.syslog, "syslog", "", "log to the system log (as well as to --log-file unless it is none)")
	boolean(&g.coredump, "coredump", "", "dump core on a crash (RLIMIT_CORE raised, Go's crash traceback)")
	fs.IntVar(&g.fileDescriptors, "file-descriptors", 0, "raise the limit of open files to this (0: the hard limit)")
	fs.IntVar(&g.fileDescriptors, "f", 0, "short for --file-descriptors")
	fs.IntVar(&g.hashtableBuckets, "hashtable-buckets", 991, "accepted for gearmand compatibility: Gear's indexes size themselves")
	fs.IntVar(&g.keepaliveInterval, "keepalive-interval", -1, "seconds between keepalive probes (-1: the system's)")
	fs.IntVar(&g.keepaliveCount, "keepalive-count", -1, "unanswered keepalive probes that end a connection (-1: the system's)")
	fs.StringVar(&g.protocol, "protocol", "", "gearmand's protocol module: http serves gearmand's HTTP protocol on --http-port (POST /FUNCTION runs a job)")
	fs.StringVar(&g.protocol, "r", "", "short for --protocol")
	fs.IntVar(&g.httpPort, "http-port", 8080, "port of --protocol http")
	boolean(&g.version, "version", "V", "print the version and exit")
	boolean(&g.ssl, "ssl", "", "gearmand's TLS: with --ssl-certificate and --ssl-key (or GEARMAND_SERVER_PEM, GEARMAND_SERVER_KEY), the same as --tls-cert and --tls-key")
	fs.StringVar(&g.sslCAFile, "ssl-ca-file", "", "with --ssl, the same as --tls-ca (or GEARMAND_CA_CERTIFICATE): client certificates this CA verifies are required")
	fs.StringVar(&g.sslCertificate, "ssl-certificate", "", "with --ssl, the same as --tls-cert")
	fs.StringVar(&g.sslKey, "ssl-key", "", "with --ssl, the same as --tls-key")
	g.plugin = map[string]*string{}
	for plugin, names := range pluginOptions {
		for _, name := range names {
			v := new(string)
			g.plugin[name] = v
			if name == "store-queue-on-shutdown" {
				fs.Var(boolString{v}, name, "gearmand's "+plugin+" queue option: Gear stores every background job when it arrives")
				continue
			}
			fs.StringVar(v, name, "", "gearmand's "+plugin+" queue option (see -q)")
		}
	}
}

// boolString is a boolean flag kept as text, for a plugin option that takes no value.
type boolString struct{ p *string }

func (b boolString) String() string {
	if b.p == nil {
		return ""
	}
	return *b.p
}
func (b boolString) Set(v string) error { *b.p = v; return nil }
func (b boolString) IsBoolFlag() bool   { return true }

// check refuses what Gear cannot do, with the reason, and returns a line for the log for each
// option Gear maps to its own way. set holds the names given (flags and config file).
func (g *gearmandFlags) check(queueType string, set map[string]bool) (notes []string, err error) {
	if g.protocol != "" && g.protocol != "http" {
		return nil, fmt.Errorf("--protocol %q: gearmand's only protocol module is http", g.protocol)
	}
	if g.httpPort <= 0 || g.httpPort > 65535 {
		return nil, fmt.Errorf("--http-port %d is not a port", g.httpPort)
	}
	if set["threads"] || set["t"] {
		notes = append(notes, "--threads is mapped to --io-loops: Gear sizes its event loops itself (one per 4 CPUs by default)")
	}
	if set["round-robin"] || set["R"] {
		notes = append(notes, "--round-robin is what Gear always does: it rotates among a worker's functions")
	}
	if set["backlog"] || set["b"] {
		notes = append(notes, "--backlog is ignored: Go listens with the kernel's maximum backlog (net.core.somaxconn)")
	}
	if set["http-port"] && g.protocol == "" {
		notes = append(notes, "--http-port is ignored: it applies to --protocol http only")
	}
	if set["hashtable-buckets"] {
		notes = append(notes, "--hashtable-buckets is ignored: Gear's job indexes grow and shrink by themselves")
	}
	switch queueType {
	case "", "builtin":
	case "libsqlite3", "libpq":
		if queueType == "libsqlite3" && *g.plugin["libsqlite3-db"] == "" {
			return nil, errors.New("-q libsqlite3 needs --libsqlite3-db=FILE, gearmand's queue to take over")
		}
		if set["store-queue-on-shutdown"] {
			notes = append(notes, "--store-queue-on-shutdown is what Gear always does, better: every background job is stored when it arrives")
		}
		return notes, nil // its jobs are imported at start (importGearmandQueue)
	case "mysql", "redis", "libmemcached":
		return nil, fmt.Errorf("-q %s: importing gearmand's %s queue is not in Gear yet (libsqlite3 and libpq are); drain the queue with gearmand first (stop new submits, let its workers finish), or copy its rows into an SQLite file in gearmand's schema and start once with -q libsqlite3 (README: Replacing gearmand)", queueType, queueType)
	default:
		return nil, fmt.Errorf("queue type %q is not supported: Gear keeps background jobs in its own durable store (--store pebble) or in memory (--store memory)", queueType)
	}
	var stray []string
	for name := range g.plugin {
		if set[name] {
			stray = append(stray, "--"+name)
		}
	}
	if len(stray) > 0 {
		sort.Strings(stray)
		notes = append(notes, strings.Join(stray, ", ")+" ignored: no -q queue plugin uses them")
	}
	return notes, nil
}

// gearmandVersionCompat is the gearmand version whose options and protocol Gear takes; scripts
// that parse `gearmand --version` find it first.
const gearmandVersionCompat = "1.1.20"

// friendlyFlagError rewrites the flag package's errors in the words of a GNU-style command line.
func friendlyFlagError(err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		name = strings.TrimLeft(name, "-")
		dashes := "--"
		if len(name) == 1 {
			dashes = "-"
		}
		return fmt.Errorf("unknown option %s%s (--help lists the options)", dashes, name)
	}
	if rest, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		name := strings.TrimLeft(rest, "-")
		if len(name) == 1 {
			return fmt.Errorf("option -%s needs a value", name)
		}
		return fmt.Errorf("option --%s needs a value", name)
	}
	if rest, ok := strings.CutPrefix(msg, "invalid value "); ok {
		return fmt.Errorf("invalid value %s", rest)
	}
	return err
}

// printHelp lists the options as gearmand does: "-x [ --long ] arg" becomes "-x, --long VALUE".
func (f *serverFlags) printHelp(w io.Writer) {
	shorts := map[string]string{} // long name -> its one-letter alias
	f.fs.VisitAll(func(fl *flag.Flag) {
		if long, ok := strings.CutPrefix(fl.Usage, "short for --"); ok {
			shorts[long] = fl.Name
		}
	})
	fmt.Fprintf(w, "usage: %s [OPTIONS]\n\nOptions (gearmand 1.1's, and Gear's own):\n", f.fs.Name())
	f.fs.VisitAll(func(fl *flag.Flag) {
		if strings.HasPrefix(fl.Usage, "short for --") || len(fl.Name) == 1 && fl.Name != "v" {
			return
		}
		name := "--" + fl.Name
		if s := shorts[fl.Name]; s != "" {
			name = "-" + s + ", " + name
		} else if len(fl.Name) == 1 {
			name = "-" + fl.Name
		}
		if b, ok := fl.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
			name += " VALUE"
		}
		line := "  " + name
		if def := fl.DefValue; def != "" && def != "false" && def != "0" {
			line += " (default " + def + ")"
		}
		fmt.Fprintf(w, "%s\n      %s\n", line, fl.Usage)
	})
}

// gearmandHTTP is gearmand's HTTP protocol served beside the server: its listeners (one per
// --listen host, on --http-port) and the client that takes its jobs to the server.
type gearmandHTTP struct {
	web    *http.Server
	client *client.Client
}

// serveGearmandHTTP serves gearmand's HTTP protocol (--protocol http) on port of every host the
// server listens on; jobs reach the server through its own first address.
func serveGearmandHTTP(srv *server.Server, opts server.Options, port int, log *slog.Logger) (*gearmandHTTP, error) {
	addrs := srv.Addrs()
	if len(addrs) == 0 {
		return nil, errors.New("--protocol http: the server listens nowhere")
	}
	target := addrs[0].(*net.TCPAddr)
	if target.IP.IsUnspecified() {
		target = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: target.Port}
	}
	c, err := client.New(client.Options{Servers: []string{target.String()}})
	if err != nil {
		return nil, err
	}
	g := &gearmandHTTP{client: c, web: &http.Server{
		Handler: &httpproto.Handler{Client: c, MaxBody: int64(opts.MaxPacketSize),
			Server: "Gear/" + server.Version, Log: log},
		ReadHeaderTimeout: 30 * time.Second,
	}}
	var lns []net.Listener
	for _, a := range opts.Listen {
		host, _, _ := net.SplitHostPort(a)
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			c.Close()
			return nil, fmt.Errorf("--http-port: %w", err)
		}
		lns = append(lns, ln)
		log.Info("gearmand HTTP protocol listening", "addr", ln.Addr().String())
	}
	for _, ln := range lns {
		go g.web.Serve(ln) // ends when Close closes the listener
	}
	return g, nil
}

// Close stops the HTTP listeners and their connections, then the client.
func (g *gearmandHTTP) Close() error {
	err := g.web.Close()
	g.client.Close()
	return err
}

// normalizeQueueType gives gearmand's -q names one spelling: gearmand's PostgreSQL plugin is
// "Postgres" in its --help and "libpq" by its options; its names are taken in any case.
func normalizeQueueType(q string) string {
	q = strings.ToLower(q)
	if q == "postgres" {
		return "libpq"
	}
	return q
}

// gearmandQueue is a persistent queue gearmand left: where it is (for the log, no password), what
// names it (for the import's marker) and how to read its jobs.
type gearmandQueue struct {
	kind, where, identity, table string
	read                         func(ctx context.Context) ([]store.Job, error)
}

// gearmandQueueOf is the queue the -q options name, or false for none.
func (f *serverFlags) gearmandQueueOf() (gearmandQueue, bool, error) {
	plugin := f.gearmand.plugin
	switch f.queueType {
	case "libsqlite3":
		table := cmp.Or(*plugin["libsqlite3-table"], gearmandqueue.DefaultSQLiteTable)
		abs, err := filepath.Abs(*plugin["libsqlite3-db"])
		if err != nil {
			return gearmandQueue{}, false, err
		}
		return gearmandQueue{kind: "libsqlite3", where: abs, identity: abs, table: table,
			read: func(context.Context) ([]store.Job, error) { return gearmandqueue.ReadSQLite(abs, table) }}, true, nil
	case "libpq":
		table := cmp.Or(*plugin["libpq-table"], gearmandqueue.DefaultPostgresTable)
		conninfo := *plugin["libpq-conninfo"]
		return gearmandQueue{kind: "libpq", where: store.MaskPostgresURL(conninfo), identity: conninfo, table: table,
			read: func(ctx context.Context) ([]store.Job, error) {
				return gearmandqueue.ReadPostgres(ctx, conninfo, table)
			}}, true, nil
	}
	return gearmandQueue{}, false, nil
}

// importGearmandQueue takes over the jobs gearmand left in its persistent queue (-q libsqlite3,
// -q libpq), once: a marker in the data directory records the import, so a restart with the same
// options does not run them again. The jobs are in Gear's store before the marker is written, and
// a job whose function and unique key are already queued joins it, so an import cut short by a
// crash and done again adds nothing twice. gearmand's queue is only read.
func importGearmandQueue(srv *server.Server, dataDir string, q gearmandQueue, log *slog.Logger) error {
	if dataDir == "" {
		return fmt.Errorf("-q %s imports gearmand's jobs into Gear's store on disk, which records the import: use --store pebble", q.kind)
	}
	sum := sha256.Sum256([]byte(q.identity + "\x00" + q.table))
	marker := filepath.Join(dataDir, "imports", q.kind+"-"+hex.EncodeToString(sum[:8])+".json")
	if b, err := os.ReadFile(marker); err == nil {
		log.Info("gearmand's "+q.kind+" queue was imported before; not again", "queue", q.where, "table", q.table, "record", string(bytes.TrimSpace(b)))
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	jobs, err := q.read(ctx)
	if err != nil {
		return err
	}
	n, err := srv.Import(ctx, jobs)
	if err != nil {
		return fmt.Errorf("importing gearmand's %s queue %s: %d of %d jobs taken: %w", q.kind, q.where, n, len(jobs), err)
	}
	record, _ := json.Marshal(map[string]any{"queue": q.where, "table": q.table, "jobs": n, "at": time.Now().UTC().Format(time.RFC3339)})
	if err := writeFileSynced(marker, append(record, '\n')); err != nil {
		return fmt.Errorf("recording the import of %s: %w", q.where, err)
	}
	log.Info("imported gearmand's "+q.kind+" queue", "queue", q.where, "table", q.table, "jobs", n)
	return nil
}

// writeFileSynced writes a file and its directory entry to stable storage.
func writeFileSynced(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// gnuArgs rewrites the forms gearmand's command line (boost's program_options) takes and Go's flag
// package does not into ones it does: a short option's value stuck to it ("-p4730" is "-p 4730"),
// bundled short switches ("-dR" is "-d -R"), and an unambiguous prefix of a long option ("--daem"
// is "--daemon"; an ambiguous one is an error naming the candidates). Everything else, and all
// after "--", passes as it is.
func gnuArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	isBool := func(fl *flag.Flag) bool {
		b, ok := fl.Value.(interface{ IsBoolFlag() bool })
		return ok && b.IsBoolFlag()
	}
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			out = append(out, args[i:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			out = append(out, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "" || fs.Lookup(name) != nil || name == "help" || name == "h" {
			out = append(out, a)
			continue
		}
		double := strings.HasPrefix(a, "--")
		if double {
			var matches []string
			fs.VisitAll(func(fl *flag.Flag) {
				if len(fl.Name) > 1 && strings.HasPrefix(fl.Name, name) {
					matches = append(matches, fl.Name)
				}
			})
			switch len(matches) {
			case 0:
				out = append(out, a) // the flag package reports it
			case 1:
				full := "--" + matches[0]
				if hasValue {
					full += "=" + value
				}
				out = append(out, full)
			default:
				return nil, fmt.Errorf("option --%s is ambiguous: --%s", name, strings.Join(matches, ", --"))
			}
			continue
		}
		first := fs.Lookup(name[:1])
		switch {
		case first == nil || hasValue:
			out = append(out, a)
		case !isBool(first):
			out = append(out, "-"+name[:1], name[1:]) // -p4730
		default:
			expanded := make([]string, 0, len(name))
			for _, r := range name {
				fl := fs.Lookup(string(r))
				if fl == nil || !isBool(fl) {
					expanded = nil
					break
				}
				expanded = append(expanded, "-"+string(r))
			}
			if expanded == nil {
				out = append(out, a)
			} else {
				out = append(out, expanded...) // -dR
			}
		}
	}
	return out, nil
}

// mapSSL turns gearmand's TLS options into Gear's: with --ssl, --ssl-certificate, --ssl-key and
// --ssl-ca-file (or gearmand's environment variables for them) become --tls-cert, --tls-key and
// --tls-ca, and the --listen ports speak TLS, as gearmand's do. Without --ssl gearmand ignores the
// files, and so does Gear, saying so. It returns the lines for the log.
func (g *gearmandFlags) mapSSL(tls *tlsServerFlags, set map[string]bool) ([]string, error) {
	files := []struct {
		name, env, tlsName string
		from               string
		to                 *string
	}{
		{"ssl-certificate", "GEARMAND_SERVER_PEM", "tls-cert", g.sslCertificate, &tls.cert},
		{"ssl-key", "GEARMAND_SERVER_KEY", "tls-key", g.sslKey, &tls.key},
		{"ssl-ca-file", "GEARMAND_CA_CERTIFICATE", "tls-ca", g.sslCAFile, &tls.ca},
	}
	if !g.ssl {
		var named []string
		for _, f := range files {
			if set[f.name] {
				named = append(named, "--"+f.name)
			}
		}
		if len(named) == 0 {
			return nil, nil
		}
		return []string{strings.Join(named, ", ") + " ignored without --ssl, as gearmand does"}, nil
	}
	var mapped []string
	for _, f := range files {
		v, from := f.from, "--"+f.name
		if v == "" {
			v, from = os.Getenv(f.env), f.env
		}
		if v == "" {
			continue
		}
		if set[f.tlsName] {
			return nil, fmt.Errorf("%s and --%s both given: they are the same option", from, f.tlsName)
		}
		*f.to = v
		mapped = append(mapped, from+" as --"+f.tlsName)
	}
	if tls.cert == "" || tls.key == "" {
		return nil, errors.New("--ssl: gearmand's TLS needs --ssl-certificate and --ssl-key (or GEARMAND_SERVER_PEM and GEARMAND_SERVER_KEY): Gear's --tls-cert and --tls-key")
	}
	note := "--ssl is mapped to Gear's TLS on the --listen ports: " + strings.Join(mapped, ", ")
	if tls.ca != "" {
		note += " (Gear then requires a client certificate that CA verifies)"
	}
	return []string{note}, nil
}
