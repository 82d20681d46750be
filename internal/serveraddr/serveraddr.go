// Package serveraddr reads job server addresses the one way every part of Gear accepts them: the
// client and worker libraries (Options.Servers, GEARMAN_SERVERS) and every gear subcommand
// (--server, --listen). An address is "host", "host:port", "[v6]", "[v6]:port" or a bare IPv6
// address, each optionally preceded by "tls://" (a server to reach over TLS); a list is
// comma-separated, with spaces around entries ignored.
package serveraddr

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// DefaultPort is the IANA Gearman port, used for addresses given without one.
const DefaultPort = "4730"

// Default is the server used when none is named.
const Default = "127.0.0.1:" + DefaultPort

// EnvVar names the environment variable libgearman reads its server list from.
const EnvVar = "GEARMAN_SERVERS"

// TLSScheme starts an address of a server reached over TLS: "tls://host:port".
const TLSScheme = "tls://"

// Addr is one address as given: Port is "" when it was left out ("host" or "host:"); TLS when it
// was given as "tls://...".
type Addr struct {
	Host, Port string
	TLS        bool
}

// WithPort returns "host:port", with port where a.Port is empty (brackets around IPv6 hosts), and
// "tls://" before it for a TLS address.
func (a Addr) WithPort(port string) string {
	if a.Port != "" {
		port = a.Port
	}
	if a.TLS {
		return TLSScheme + net.JoinHostPort(a.Host, port)
	}
	return net.JoinHostPort(a.Host, port)
}

// Split reads one address. The host must be present and, if it holds a colon, be an IPv6 address;
// the port, if given, a number from 0 to 65535.
func Split(s string) (Addr, error) {
	s = strings.TrimSpace(s)
	bad := func(format string, a ...any) (Addr, error) {
		return Addr{}, fmt.Errorf("server address %q: %s", s, fmt.Sprintf(format, a...))
	}
	if s == "" {
		return bad("empty")
	}
	var a Addr
	rest, isTLS := strings.CutPrefix(s, TLSScheme)
	if strings.Contains(rest, "://") {
		return bad("unknown scheme (%s is the only one)", TLSScheme)
	}
	a.TLS = isTLS
	host, port, err := net.SplitHostPort(rest)
	switch {
	case err == nil:
		a.Host, a.Port = host, port
	case strings.HasPrefix(rest, "[") && strings.HasSuffix(rest, "]"): // "[v6]"
		a.Host = rest[1 : len(rest)-1]
	case !strings.ContainsAny(rest, "[]"): // "host", or a bare IPv6 address (checked below)
		a.Host = rest
	default:
		return bad("unbalanced brackets")
	}
	if a.Host == "" {
		return bad("no host")
	}
	if strings.ContainsFunc(a.Host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) ||
		strings.ContainsAny(a.Host, "[]/,") {
		return bad("invalid host %q", a.Host)
	}
	bracketed := strings.HasPrefix(rest, "[")
	if strings.Contains(a.Host, ":") || bracketed {
		ip, err := netip.ParseAddr(a.Host)
		if err != nil || !ip.Is6() {
			if bracketed {
				return bad("%q in brackets is not an IPv6 address", a.Host)
			}
			return bad("%q is neither host:port nor an IPv6 address", rest)
		}
	}
	if a.Port != "" {
		n, err := strconv.ParseUint(a.Port, 10, 16)
		if err != nil {
			return bad("invalid port %q (want a number from 1 to 65535)", a.Port)
		}
		a.Port = strconv.FormatUint(n, 10) // "04730" is 4730
	}
	return a, nil
}

// SplitList reads a comma-separated list of addresses. Empty entries ("a,,b", a trailing comma) are
// skipped, so an empty or blank list gives none and no error.
func SplitList(list string) ([]Addr, error) {
	var out []Addr
	for s := range strings.SplitSeq(list, ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		a, err := Split(s)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// Dial returns a as "host:port" ("tls://host:port") to connect to: DefaultPort where no port was
// given, and port 0 refused (it only makes sense to listen on).
func (a Addr) Dial() (string, error) {
	if a.Port == "0" {
		return "", fmt.Errorf("server address %q: invalid port \"0\" (want a number from 1 to 65535)", a.WithPort(""))
	}
	return a.WithPort(DefaultPort), nil
}

// Parse reads one server address to connect to and returns it as "host:port".
func Parse(s string) (string, error) {
	a, err := Split(s)
	if err != nil {
		return "", err
	}
	return a.Dial()
}

// ParseList reads a comma-separated list of servers to connect to and returns each as
// "host:port" (or "tls://host:port"), in order, without duplicates ("h" and "h:4730" are one
// server).
func ParseList(list string) ([]string, error) {
	addrs, err := SplitList(list)
	if err != nil {
		return nil, err
	}
	return AppendDial(nil, addrs...)
}

// AppendDial appends each address as "host:port" to connect to (see Addr.Dial) unless out already
// holds it.
func AppendDial(out []string, addrs ...Addr) ([]string, error) {
	for _, a := range addrs {
		s, err := a.Dial()
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// Servers returns the servers to connect to, as "host:port" without duplicates: those of addrs,
// each one address or a comma-separated list; if addrs is empty, those named by env (the value of
// GEARMAN_SERVERS), else Default. Addresses that name no server at all ("", ",") are an error.
func Servers(addrs []string, env string) ([]string, error) {
	if len(addrs) == 0 {
		out, err := ParseList(env)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvVar, err)
		}
		if len(out) == 0 {
			return []string{Default}, nil
		}
		return out, nil
	}
	var out []string
	for _, list := range addrs {
		a, err := SplitList(list)
		if err == nil {
			out, err = AppendDial(out, a...)
		}
		if err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, ErrNoServer
	}
	return out, nil
}

// ErrNoServer is returned for a list of addresses that names no server at all ("", ",").
var ErrNoServer = errors.New("no server given")

// CutTLS splits an address to connect to, as Dial and Servers return it, into "host:port" and
// whether it was given as a TLS address.
func CutTLS(addr string) (hostPort string, isTLS bool) {
	hostPort, isTLS = strings.CutPrefix(addr, TLSScheme)
	return hostPort, isTLS
}

// DialContext connects to addr, as Dial and Servers return it: over TLS when cfg is not nil or
// addr is "tls://host:port" (with cfg nil: the system's CAs, the host as the server name), else
// over plain TCP. A TLS connection is returned with its handshake done, within d's timeout.
func DialContext(ctx context.Context, d *net.Dialer, addr string, cfg *tls.Config) (net.Conn, error) {
	hostPort, isTLS := CutTLS(addr)
	if cfg == nil && !isTLS {
		return d.DialContext(ctx, "tcp", hostPort)
	}
	td := tls.Dialer{NetDialer: d, Config: cfg}
	return td.DialContext(ctx, "tcp", hostPort)
}
