package alert

import (
	"errors"
	"fmt"
	"strings"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// errNeedsShell explains what to write instead of a shell feature.
var errNeedsShell = errors.New("needs a shell, and none is run: write sh -c '...' (in single quotes $ and ` reach that shell as they are)")

// ParseCommand splits a command line into an argv the way a POSIX shell would — 'single' and
// "double" quotes, backslash escapes — without running a shell. Anything only a shell can do
// (variables, command substitution, pipes, redirections, ;, &&, globs, ~, VAR=value) is an error
// that says to write `sh -c '...'`, rather than a command that silently does something else. An
// empty or blank line is no command (nil, nil).
//
// The shell grammar is mvdan.cc/sh's parser (a maintained POSIX/bash parser); this function only
// refuses what would need expansion and unquotes the words.
func ParseCommand(line string) ([]string, error) {
	if strings.IndexByte(line, 0) >= 0 {
		return nil, fmt.Errorf("command %q: a NUL byte cannot be part of an argument", line)
	}
	f, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(strings.NewReader(line), "")
	if err != nil {
		return nil, fmt.Errorf("command %q: %v", line, err)
	}
	bad := func(what string) ([]string, error) {
		return nil, fmt.Errorf("command %q: %s %w", line, what, errNeedsShell)
	}
	switch len(f.Stmts) {
	case 0:
		return nil, nil
	case 1:
	default:
		return bad("a list of commands")
	}
	st := f.Stmts[0]
	if st.Negated || st.Background || st.Coprocess || st.Disown || len(st.Redirs) > 0 {
		return bad("!, & or a redirection")
	}
	call, ok := st.Cmd.(*syntax.CallExpr)
	if !ok {
		return bad("a pipe, && or a compound command")
	}
	if len(call.Assigns) > 0 {
		return bad("VAR=value")
	}
	argv := make([]string, 0, len(call.Args))
	for _, w := range call.Args {
		for i, part := range w.Parts {
			switch p := part.(type) {
			case *syntax.Lit:
				if i == 0 && strings.HasPrefix(p.Value, "~") {
					return bad("~")
				}
				switch unquoted(p.Value) {
				case litSpecial:
					return bad("an unquoted $, *, ? or [")
				case litTrailingBackslash:
					return nil, fmt.Errorf("command %q: ends with a lone backslash", line)
				}
			case *syntax.SglQuoted:
				if p.Dollar {
					return bad("$'...'")
				}
			case *syntax.DblQuoted:
				if p.Dollar {
					return bad(`$"..."`)
				}
				for _, q := range p.Parts {
					if _, ok := q.(*syntax.Lit); !ok {
						return bad("$ or ` inside double quotes")
					}
				}
			default:
				return bad("$ or `")
			}
		}
		// With nothing left to expand, Fields only removes the quotes and escapes (a Config
		// without ReadDir does no globbing); the parser has already split the words. Each call
		// gets a Config of its own: given nil, expand prepares a package-level Config in place,
		// which races between concurrent callers (seen under -race with mvdan.cc/sh v3.14.1).
		fields, err := expand.Fields(&expand.Config{}, w)
		if err != nil || len(fields) != 1 {
			return nil, fmt.Errorf("command %q: word %d does not unquote to one argument (%v)", line, len(argv)+1, err)
		}
		argv = append(argv, fields[0])
	}
	return argv, nil
}

type litCheck int

const (
	litPlain litCheck = iota
	litSpecial
	litTrailingBackslash
)

// unquoted checks an unquoted literal (still holding its backslash escapes) for a character a
// shell would expand ($ — which shells read differently before a quote —, *, ? and [) and for a
// backslash with nothing after it (a line continuation to a shell).
func unquoted(lit string) litCheck {
	for i := 0; i < len(lit); i++ {
		switch lit[i] {
		case '\\':
			if i == len(lit)-1 {
				return litTrailingBackslash
			}
			i++
		case '$', '*', '?', '[':
			return litSpecial
		}
	}
	return litPlain
}

// QuoteCommand writes argv as one line that ParseCommand reads back as argv (for logs and error
// messages). Every argument that is not plainly safe is single-quoted, an embedded quote closing
// the quotes, escaped, and reopening them: the one quoting that needs no knowledge of which other
// characters a shell treats specially.
func QuoteCommand(argv []string) string {
	words := make([]string, len(argv))
	for i, a := range argv {
		// A first word NAME=... would read as an assignment, not a command: it is quoted.
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@%+,") == "" &&
			(i > 0 || !strings.Contains(a, "=")) {
			words[i] = a
			continue
		}
		words[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(words, " ")
}
