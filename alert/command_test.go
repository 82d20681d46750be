package alert

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{`sh -c "echo ALERT >> f"`, []string{"sh", "-c", "echo ALERT >> f"}}, // the case
		{`sh -c 'echo "$GEAR_ALERT_EVENT" >> /tmp/a b'`, []string{"sh", "-c", `echo "$GEAR_ALERT_EVENT" >> /tmp/a b`}},
		{`notify  --to ops   --text "memory high"`, []string{"notify", "--to", "ops", "--text", "memory high"}},
		{`a\ b "c\"d" 'e\f' "" x"y"'z'`, []string{"a b", `c"d`, `e\f`, "", "xyz"}},
		{`echo \$HOME \* '*' "?"`, []string{"echo", "$HOME", "*", "*", "?"}},
		{"/usr/local/bin/page-ops", []string{"/usr/local/bin/page-ops"}},
		{`curl -d @- http://127.0.0.1:9/x # a comment`, []string{"curl", "-d", "@-", "http://127.0.0.1:9/x"}},
		{"x=1", []string{}},
		{"", nil},
		{"   ", nil},
	} {
		got, err := ParseCommand(tc.line)
		if tc.line == "x=1" {
			if !errors.Is(err, errNeedsShell) {
				t.Errorf("ParseCommand(%q) = %q, %v; want a needs-a-shell error", tc.line, got, err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("ParseCommand(%q) = %q, %v; want %q", tc.line, got, err, tc.want)
		}
	}
}

// Shell features are refused with a message naming sh -c, never run in some other way.
func TestParseCommand_NeedsShell(t *testing.T) {
	for _, line := range []string{
		`echo ALERT >> f`, `echo $HOME`, `echo "$HOME"`, "echo `id`", `echo $(id)`, `a | b`, `a && b`,
		`a; b`, "a\nb", `a &`, `a$`, `ls *.log`, `cat ~/x`, `FOO=1 cmd`, `! cmd`, `echo $'x'`, `(a)`, `{ a; }`,
		`if true; then a; fi`, `echo "$((1+1))"`, `cat < f`,
	} {
		got, err := ParseCommand(line)
		if !errors.Is(err, errNeedsShell) || !strings.Contains(err.Error(), "sh -c") {
			t.Errorf("ParseCommand(%q) = %q, %v; want an error saying to use sh -c", line, got, err)
		}
	}
	for _, line := range []string{`sh -c "echo`, `a 'b`, `a \`} {
		if got, err := ParseCommand(line); err == nil {
			t.Errorf("ParseCommand(%q) = %q; want a syntax error", line, got)
		}
	}
}

func TestQuoteCommand_RoundTrip(t *testing.T) {
	for _, argv := range [][]string{
		{"sh", "-c", `echo "$X" >> 'f g'`, "", "a*b", "~", "tab\there", "ü"},
		{"A=b", "c=d"}, // a command named A=b, not an assignment
	} {
		got, err := ParseCommand(QuoteCommand(argv))
		if err != nil || !slices.Equal(got, argv) {
			t.Errorf("ParseCommand(QuoteCommand(%q)) = %q, %v", argv, got, err)
		}
	}
}

// FuzzParseCommand: any line is parsed or refused without a panic, and an accepted argv quoted
// again reads back the same.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{`sh -c "echo ALERT >> f"`, `a\ b "c\"d" 'e'`, `echo $HOME`, `a | b`, "", `"`, `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		argv, err := ParseCommand(line)
		if err != nil || len(argv) == 0 {
			return
		}
		again, err := ParseCommand(QuoteCommand(argv))
		if err != nil || !slices.Equal(again, argv) {
			t.Fatalf("ParseCommand(%q) = %q; quoted as %q it reads back %q, %v", line, argv, QuoteCommand(argv), again, err)
		}
	})
}
