package access

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

const example = `
# billing's workers and clients, by network or certificate
[[rule]]
who = ["net:10.1.0.0/16", "cn:billing-*"]
submit = ["billing.*", "report"]
register = ["billing.*"]

[[rule]]
who = ["san:ops@example.org", "user:ops", "net:192.0.2.7"]
admin = "write"

[[rule]]
who = ["any"]
admin = "read"
submit = ["public/*"]
`

func TestRules(t *testing.T) {
	r, err := Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	billingNet := Identity{Addr: netip.MustParseAddr("10.1.2.3")}
	billingCert := Identity{Addr: netip.MustParseAddr("203.0.113.9"), CommonName: "billing-7"}
	ops := Identity{Addr: netip.MustParseAddr("203.0.113.9"), CommonName: "x", Names: []string{"ops@example.org"}}
	opsMapped := Identity{Addr: netip.MustParseAddr("::ffff:192.0.2.7")}
	stranger := Identity{Addr: netip.MustParseAddr("198.51.100.1")}
	for _, c := range []struct {
		name     string
		id       Identity
		submit   map[string]bool
		register map[string]bool
		admin    Level
	}{
		{"billing by network", billingNet,
			map[string]bool{"billing.charge": true, "billing.": true, "report": true, "reports": false, "public/x": true, "other": false},
			map[string]bool{"billing.charge": true, "report": false, "public/x": false}, LevelRead},
		{"billing by certificate", billingCert,
			map[string]bool{"billing.a/b": true, "Billing.a": false}, map[string]bool{"billing.x": true}, LevelRead},
		{"ops by SAN", ops, map[string]bool{"billing.x": false, "public/y": true}, map[string]bool{"public/y": false}, LevelWrite},
		{"ops by a v4-mapped address", opsMapped, nil, nil, LevelWrite},
		{"anyone else", stranger, map[string]bool{"public/": true, "public": false}, map[string]bool{"anything": false}, LevelRead},
		{"HTTP user ops", Identity{HTTPUser: "ops"}, nil, nil, LevelWrite},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := r.For(c.id)
			for fn, want := range c.submit {
				if g.MaySubmit(fn) != want {
					t.Errorf("MaySubmit(%q) = %v", fn, !want)
				}
			}
			for fn, want := range c.register {
				if g.MayRegister(fn) != want {
					t.Errorf("MayRegister(%q) = %v", fn, !want)
				}
			}
			if g.Admin() != c.admin {
				t.Errorf("admin %v, want %v", g.Admin(), c.admin)
			}
		})
	}
	// no rules file: everything
	var none *Rules
	if g := none.For(stranger); !g.MaySubmit("x") || !g.MayRegister("x") || g.Admin() != LevelWrite {
		t.Error("nil rules do not allow everything")
	}
	// an empty file: nothing
	empty, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if g := empty.For(stranger); g.MaySubmit("x") || g.MayRegister("x") || g.Admin() != LevelNone {
		t.Error("an empty rules file allows something")
	}
}

func TestParseErrors(t *testing.T) {
	for name, c := range map[string]struct{ text, want string }{
		"typo in a key":    {"[[rule]]\nwho=[\"any\"]\nsubmti=[\"x\"]", `unknown key "rule.submti"`},
		"no who":           {"[[rule]]\nsubmit=[\"x\"]", "rule 1: no `who`"},
		"bad kind":         {"[[rule]]\nwho=[\"ip:1.2.3.4\"]", `rule 1: who "ip:1.2.3.4"`},
		"bad CIDR":         {"[[rule]]\nwho=[\"net:10.0.0.0/33\"]", "want net:CIDR"},
		"host bits":        {"[[rule]]\nwho=[\"net:10.0.0.1/8\"]", "did you mean 10.0.0.0/8"},
		"bad admin":        {"[[rule]]\nwho=[\"any\"]\nadmin=\"all\"", `admin "all"`},
		"empty glob":       {"[[rule]]\nwho=[\"cn:\"]", "empty"},
		"glob line break":  {"[[rule]]\nwho=[\"any\"]\nregister=[\"a\\nb\"]", "line break"},
		"any with a value": {"[[rule]]\nwho=[\"any:x\"]", "takes no value"},
		"not TOML":         {"who = ", "access rules:"},
		"second rule":      {"[[rule]]\nwho=[\"any\"]\n[[rule]]\nwho=[\"nope\"]", "rule 2:"},
		"not UTF-8":        {"\xff", "not UTF-8"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(c.text))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		glob, name string
		want       bool
	}{
		{"*", "", true}, {"*", "anything/at all", true}, {"", "", true}, {"", "a", false},
		{"a*", "a", true}, {"a*b", "axxb", true}, {"a*b", "axxbc", false}, {"*b*", "abc", true},
		{"a?c", "abc", true}, {"a?c", "ac", false}, {"a?c", "aéc", true}, {"billing.*", "billing/x", false},
		{"billing.*", "billing.x/y", true}, {"**", "x", true}, {"*a*a*a*a*b", strings.Repeat("a", 200), false},
	} {
		if got := Match(c.glob, c.name); got != c.want {
			t.Errorf("Match(%q, %q) = %v", c.glob, c.name, got)
		}
	}
}

// reference is Match by regular expression: `*` is (?s).*, `?` one character, the rest literal.
func reference(glob, name string) bool {
	var b strings.Builder
	b.WriteString(`^(?s)`)
	for _, r := range glob {
		switch r {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString(`$`)
	return regexp.MustCompile(b.String()).MatchString(name)
}

func FuzzMatch(f *testing.F) {
	f.Add("a*b?c", "axxbyc")
	f.Add("*.*", "billing.x")
	f.Add("?", "é")
	f.Fuzz(func(t *testing.T, glob, name string) {
		if len(glob) > 64 || len(name) > 256 || !utf8.ValidString(glob) || !utf8.ValidString(name) {
			return
		}
		if got, want := Match(glob, name), reference(glob, name); got != want {
			t.Fatalf("Match(%q, %q) = %v, the regular expression says %v", glob, name, got, want)
		}
	})
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte("[[rule]]\nwho=[\"net:::1\"]\nadmin=\"write\""))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			return
		}
		// whatever parses answers without panicking, and a nil grant is never returned for rules
		g := r.For(Identity{Addr: netip.MustParseAddr("10.1.2.3"), CommonName: "c", Names: []string{"n"}, HTTPUser: "u"})
		if g == nil {
			t.Fatal("rules gave a nil grant (allow everything)")
		}
		g.MaySubmit("fn")
		g.MayRegister("fn")
		_ = g.Admin().String()
	})
}
