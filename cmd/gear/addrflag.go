package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gearhq/gear/internal/serveraddr"
)

// addrFlag is the one repeatable address flag of every subcommand: --server/-s of admin, client,
// worker and bench, --listen/-L of server. Each value is one address or a comma-separated list
// ("host", "host:port", "[v6]", "[v6]:port", a bare IPv6 address), read by serveraddr and checked as
// it is given, so a malformed one is a usage error naming the flag.
type addrFlag struct {
	// listen marks listening addresses: port 0 (any free port) is allowed, and an address without a
	// port takes --port rather than 4730.
	listen bool
	addrs  []serveraddr.Addr
}

func (f *addrFlag) String() string {
	if f == nil {
		return ""
	}
	s := make([]string, len(f.addrs))
	for i, a := range f.addrs {
		s[i] = a.WithPort("")
		if a.Port == "" {
			s[i] = strings.TrimSuffix(s[i], ":")
		}
	}
	return strings.Join(s, ",")
}

func (f *addrFlag) Set(v string) error {
	addrs, err := serveraddr.SplitList(v)
	if err != nil {
		return err
	}
	if len(addrs) == 0 {
		return serveraddr.ErrNoServer
	}
	if f.listen && slices.ContainsFunc(addrs, func(a serveraddr.Addr) bool { return a.TLS }) {
		return fmt.Errorf("%q: a listening address takes no tls:// (TLS listeners: --tls-cert, --tls-listen)", v)
	}
	if !f.listen {
		if _, err := serveraddr.AppendDial(nil, addrs...); err != nil { // port 0
			return err
		}
	}
	f.addrs = append(f.addrs, addrs...)
	return nil
}

// given reports whether the flag was used.
func (f *addrFlag) given() bool { return len(f.addrs) > 0 }

// servers returns the job servers to connect to, as "host:port" without duplicates: those given,
// else those of GEARMAN_SERVERS (env is its value), else 127.0.0.1:4730.
func (f *addrFlag) servers(env string) ([]string, error) {
	if f.given() {
		return serveraddr.AppendDial(nil, f.addrs...)
	}
	return serveraddr.Servers(nil, env)
}

// withPort returns the addresses given as "host:port", port where none was given.
func (f *addrFlag) withPort(port string) []string {
	var out []string
	for _, a := range f.addrs {
		out = append(out, a.WithPort(port))
	}
	return out
}
