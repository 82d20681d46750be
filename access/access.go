// Package access decides who may do what on a Gear server: submit to which functions, register
// (serve) which functions, and use the admin commands and HTTP API read-only or with actions.
//
// Rules come from a TOML file (gear server --access-rules FILE, reloaded on SIGHUP):
//
//	# Who may do what. A connection gets the union of every rule one of whose `who` matches it;
//	# with a rules file, anything no rule grants is refused.
//	[[rule]]
//	who = ["net:10.1.0.0/16", "cn:billing-*"]   # any of these
//	submit = ["billing.*", "report"]           # function globs it may submit to
//	register = ["billing.*"]                   # function globs it may serve
//	admin = "read"                             # none (default), read or write
//
// Identities: `net:CIDR` (or an address) is the peer's address; `cn:GLOB` the subject common name
// of a verified TLS client certificate and `san:GLOB` one of its DNS, e-mail or URI names;
// `user:GLOB` a basic-auth user of the HTTP API and `token` its bearer token; `any` everyone.
//
// Admin "read" is the views (status, workers, show jobs, ... and the API's GETs); "write" adds
// the actions that change state (cancel, drop, create, maxqueue, shutdown, the API's POSTs).
//
// Globs match a whole name: `*` any run of characters (dots and slashes included, unlike
// path.Match, which would make `billing.*` stop at a slash a function name may well contain) and
// `?` one character.
package access

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// Level is what an identity may do through the admin protocol and the HTTP API.
type Level uint8

const (
	LevelNone  Level = iota // nothing
	LevelRead               // the views
	LevelWrite              // the views and the actions
)

func (l Level) String() string { return [...]string{"none", "read", "write"}[l] }

// Identity is who a connection or an HTTP request is. Only what was verified is set: the
// certificate names of a TLS peer whose chain the server checked.
type Identity struct {
	Addr       netip.Addr // the peer's address (unmapped)
	CommonName string     // TLS client certificate subject CN
	Names      []string   // TLS client certificate DNS, e-mail and URI names
	HTTPUser   string     // HTTP basic-auth user
	HTTPToken  bool       // HTTP bearer token (or the dashboard's session)
}

// String names the identity for log lines.
func (id Identity) String() string {
	var parts []string
	if id.CommonName != "" {
		parts = append(parts, "cn:"+id.CommonName)
	}
	if id.HTTPUser != "" {
		parts = append(parts, "user:"+id.HTTPUser)
	}
	if id.HTTPToken {
		parts = append(parts, "token")
	}
	if id.Addr.IsValid() {
		parts = append(parts, "net:"+id.Addr.String())
	}
	if len(parts) == 0 {
		return "unknown"
	}
	return strings.Join(parts, " ")
}

// Rules is a parsed rules file. A nil *Rules allows everything (no rules file: everything is
// allowed, as in gearmand).
type Rules struct {
	rules []rule
}

type rule struct {
	who      []matcher
	submit   []string
	register []string
	admin    Level
}

// matcher is one `who` entry.
type matcher struct {
	kind   string // net, cn, san, user, token, any
	prefix netip.Prefix
	glob   string
}

// file is the TOML document.
type file struct {
	Rule []struct {
		Who      []string `toml:"who"`
		Submit   []string `toml:"submit"`
		Register []string `toml:"register"`
		Admin    string   `toml:"admin"`
	} `toml:"rule"`
}

// maxGlob bounds a glob's length: a function name is at most 512 bytes, and matching cost
// grows with the pattern.
const maxGlob = 1024

// Parse reads a rules file. Errors name the rule (1-based) and the value at fault; unknown keys
// are errors too, so a typo ("submti") does not silently grant nothing.
func Parse(data []byte) (*Rules, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("access rules: not UTF-8 text")
	}
	var f file
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		return nil, fmt.Errorf("access rules: %w", err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		return nil, fmt.Errorf("access rules: unknown key %q (a rule has who, submit, register and admin)", undecoded[0].String())
	}
	r := &Rules{}
	for i, fr := range f.Rule {
		bad := func(format string, a ...any) error {
			return fmt.Errorf("access rules: rule %d: %s", i+1, fmt.Sprintf(format, a...))
		}
		if len(fr.Who) == 0 {
			return nil, bad("no `who`: say whom it is for (`any` for everyone)")
		}
		var ru rule
		for _, w := range fr.Who {
			m, err := parseMatcher(w)
			if err != nil {
				return nil, bad("who %q: %v", w, err)
			}
			ru.who = append(ru.who, m)
		}
		for _, g := range slices.Concat(fr.Submit, fr.Register) {
			if err := checkGlob(g); err != nil {
				return nil, bad("function glob %q: %v", g, err)
			}
		}
		ru.submit, ru.register = fr.Submit, fr.Register
		switch fr.Admin {
		case "", "none":
		case "read":
			ru.admin = LevelRead
		case "write":
			ru.admin = LevelWrite
		default:
			return nil, bad("admin %q: want none, read or write", fr.Admin)
		}
		r.rules = append(r.rules, ru)
	}
	return r, nil
}

func parseMatcher(w string) (matcher, error) {
	kind, value, _ := strings.Cut(w, ":")
	switch kind {
	case "any", "token":
		if value != "" {
			return matcher{}, fmt.Errorf("%s takes no value", kind)
		}
		return matcher{kind: kind}, nil
	case "net":
		if p, err := netip.ParsePrefix(value); err == nil {
			if p != p.Masked() {
				return matcher{}, fmt.Errorf("%s has host bits set (did you mean %s?)", value, p.Masked())
			}
			return matcher{kind: kind, prefix: unmapPrefix(p)}, nil
		}
		a, err := netip.ParseAddr(value)
		if err != nil {
			return matcher{}, errors.New("want net:CIDR or net:ADDRESS")
		}
		a = a.Unmap()
		return matcher{kind: kind, prefix: netip.PrefixFrom(a, a.BitLen())}, nil
	case "cn", "san", "user":
		if err := checkGlob(value); err != nil {
			return matcher{}, err
		}
		return matcher{kind: kind, glob: value}, nil
	}
	return matcher{}, errors.New("want net:CIDR, cn:GLOB, san:GLOB, user:GLOB, token or any")
}

func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

func checkGlob(g string) error {
	switch {
	case g == "":
		return errors.New("empty")
	case len(g) > maxGlob:
		return fmt.Errorf("longer than %d bytes", maxGlob)
	case strings.ContainsAny(g, "\x00\r\n"):
		return errors.New("contains a NUL or a line break")
	}
	return nil
}

func (m matcher) matches(id Identity) bool {
	switch m.kind {
	case "any":
		return true
	case "token":
		return id.HTTPToken
	case "net":
		return id.Addr.IsValid() && m.prefix.Contains(id.Addr.Unmap())
	case "cn":
		return id.CommonName != "" && Match(m.glob, id.CommonName)
	case "san":
		return slices.ContainsFunc(id.Names, func(n string) bool { return Match(m.glob, n) })
	case "user":
		return id.HTTPUser != "" && Match(m.glob, id.HTTPUser)
	}
	return false
}

// Grant is what one identity may do under a set of rules: the union of the rules that match it.
// A nil *Grant allows everything.
type Grant struct {
	submit, register []string
	admin            Level
}

// For resolves what id may do. Resolve once per connection (and again after a reload).
func (r *Rules) For(id Identity) *Grant {
	if r == nil {
		return nil
	}
	g := &Grant{}
	for _, ru := range r.rules {
		if !slices.ContainsFunc(ru.who, func(m matcher) bool { return m.matches(id) }) {
			continue
		}
		g.submit = append(g.submit, ru.submit...)
		g.register = append(g.register, ru.register...)
		g.admin = max(g.admin, ru.admin)
	}
	return g
}

// MaySubmit reports whether the identity may submit jobs to function fn.
func (g *Grant) MaySubmit(fn string) bool {
	return g == nil || slices.ContainsFunc(g.submit, func(p string) bool { return Match(p, fn) })
}

// MayRegister reports whether the identity may serve function fn.
func (g *Grant) MayRegister(fn string) bool {
	return g == nil || slices.ContainsFunc(g.register, func(p string) bool { return Match(p, fn) })
}

// Admin is the identity's admin level.
func (g *Grant) Admin() Level {
	if g == nil {
		return LevelWrite
	}
	return g.admin
}

// Match reports whether name matches glob as a whole: `*` is any run of characters, `?` one
// character (a byte of a name that is not UTF-8), everything else itself.
func Match(glob, name string) bool {
	// The classic linear matcher: on a mismatch, go back to the last `*` and let it take one more
	// character. No recursion, O(len(glob)*len(name)) at worst.
	g, n := 0, 0
	star, starN := -1, 0
	for n < len(name) {
		switch {
		case g < len(glob) && glob[g] == '*':
			star, starN = g, n
			g++
		case g < len(glob) && (glob[g] == '?' || glob[g] == name[n]):
			if glob[g] == '?' {
				_, size := utf8.DecodeRuneInString(name[n:])
				n += size
			} else {
				n++
			}
			g++
		case star >= 0:
			starN++
			g, n = star+1, starN
		default:
			return false
		}
	}
	for g < len(glob) && glob[g] == '*' {
		g++
	}
	return g == len(glob)
}
