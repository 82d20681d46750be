package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// StoreInfo is the reply to `store`, a Gear extension: where the server keeps background jobs. A
// server keeping them in memory only reports Engine "memory" and nothing else.
type StoreInfo struct {
	Engine    string `json:"engine"`     // "pebble" or "memory"
	Path      string `json:"path"`       // the data directory
	Sync      string `json:"sync"`       // "always", "interval" or "none"
	Jobs      int64  `json:"jobs"`       // background jobs stored
	LastSync  string `json:"last_sync"`  // RFC 3339 time of the last fsync, UTC; "" before the first
	LastError string `json:"last_error"` // the last failed write; "" if none failed
}

// Store runs `store` (Gear only). gearmand and the Perl server do not know the command: the error
// then says so and wraps their *ServerError (Code UNKNOWN_COMMAND).
func (c *Conn) Store(ctx context.Context) (StoreInfo, error) {
	lines, err := c.roundTrip(ctx, "store", tabular)
	if err != nil {
		var se *ServerError
		if errors.As(err, &se) && strings.EqualFold(se.Code, "UNKNOWN_COMMAND") {
			err = fmt.Errorf("admin: the server does not know `store`, a Gear extension (gearmand and the Perl server keep no store of their own): %w", err)
		}
		return StoreInfo{}, err
	}
	v, err := parseStore(lines)
	return v, c.checkParse(err)
}

// parseStore parses the `store` reply: "KEY\tVALUE" lines, "-" for an unset last_sync or
// last_error. Keys it does not know are skipped, so a later server may report more.
func parseStore(lines []string) (StoreInfo, error) {
	var s StoreInfo
	for _, line := range lines {
		key, value, ok := strings.Cut(line, "\t")
		if !ok || key == "" {
			return StoreInfo{}, fmt.Errorf("admin: malformed store line %q", line)
		}
		switch key {
		case "engine":
			s.Engine = value
		case "path":
			s.Path = value
		case "sync":
			s.Sync = value
		case "jobs":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 0 {
				return StoreInfo{}, fmt.Errorf("admin: malformed store line %q", line)
			}
			s.Jobs = n
		case "last_sync":
			if value != "-" {
				s.LastSync = value
			}
		case "last_error":
			if value != "-" {
				s.LastError = value
			}
		}
	}
	if s.Engine == "" {
		return StoreInfo{}, errors.New("admin: store reply names no engine")
	}
	return s, nil
}

// WriteStore prints `store` as one "name value" line per field; a memory-only server gets just its
// engine line. An unset value prints as "-".
func WriteStore(w io.Writer, s StoreInfo) error {
	val := func(v string) string {
		if v == "" {
			return "-"
		}
		return cell(v)
	}
	tw := newTable(w, "engine\t"+val(s.Engine))
	if s.Engine != "memory" {
		tw.row("path", val(s.Path))
		tw.row("sync", val(s.Sync))
		tw.row("jobs", strconv.FormatInt(s.Jobs, 10))
		tw.row("last sync", val(s.LastSync))
		tw.row("last error", val(s.LastError))
	}
	return tw.flush()
}
