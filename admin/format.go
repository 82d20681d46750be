package admin

import (
	"bytes"
	"cmp"
	"encoding/json"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"
)

// The Write functions print tables for people: a header row, columns aligned by text/tabwriter,
// rows sorted by name so the output is the same for the same server state. They sort a copy; the
// caller's slice is left as it was.

// table buffers rows for text/tabwriter and, on flush, writes them without the padding tabwriter
// leaves after an empty last cell.
type table struct {
	w   io.Writer
	buf bytes.Buffer
	tw  *tabwriter.Writer
}

func newTable(w io.Writer, header string) *table {
	t := &table{w: w}
	t.tw = tabwriter.NewWriter(&t.buf, 0, 8, 2, ' ', 0)
	io.WriteString(t.tw, header+"\n")
	return t
}

func (t *table) row(cells ...string) {
	io.WriteString(t.tw, strings.Join(cells, "\t")+"\n")
}

func (t *table) flush() error {
	if err := t.tw.Flush(); err != nil {
		return err
	}
	var out bytes.Buffer
	for line := range strings.Lines(t.buf.String()) {
		out.WriteString(strings.TrimRight(line, " \n") + "\n")
	}
	_, err := t.w.Write(out.Bytes())
	return err
}

// WriteStatus prints `status` as FUNCTION TOTAL RUNNING WORKERS.
func WriteStatus(w io.Writer, s []FunctionStatus) error {
	s = sortedStatus(s)
	tw := newTable(w, "FUNCTION\tTOTAL\tRUNNING\tWORKERS")
	for _, f := range s {
		tw.row(cell(f.Name), strconv.Itoa(f.Total), strconv.Itoa(f.Running), strconv.Itoa(f.Workers))
	}
	return tw.flush()
}

// WritePriorityStatus prints `prioritystatus` as FUNCTION HIGH NORMAL LOW WORKERS.
func WritePriorityStatus(w io.Writer, s []PriorityStatus) error {
	s = sortedPriority(s)
	tw := newTable(w, "FUNCTION\tHIGH\tNORMAL\tLOW\tWORKERS")
	for _, f := range s {
		tw.row(cell(f.Name), strconv.Itoa(f.High), strconv.Itoa(f.Normal), strconv.Itoa(f.Low),
			strconv.Itoa(f.Workers))
	}
	return tw.flush()
}

// WriteWorkers prints `workers` as ID IP FD FUNCTIONS, sorted by client ID, then IP, then FD; each
// row's functions sorted and separated by spaces.
func WriteWorkers(w io.Writer, ws []WorkerInfo) error {
	ws = sortedWorkers(ws)
	tw := newTable(w, "ID\tIP\tFD\tFUNCTIONS")
	for _, wk := range ws {
		fns := make([]string, len(wk.Functions))
		for i, f := range wk.Functions {
			fns[i] = cell(f)
		}
		tw.row(cell(wk.ID), cell(wk.IP), cell(wk.FD), strings.Join(fns, " "))
	}
	return tw.flush()
}

// WriteJobs prints `show jobs` as HANDLE RETRIES IGNORED QUEUED, sorted by handle (numerically on
// the handle's last number, so H:host:9 comes before H:host:10).
func WriteJobs(w io.Writer, js []JobInfo) error {
	js = sortedJobs(js)
	tw := newTable(w, "HANDLE\tRETRIES\tIGNORED\tQUEUED")
	for _, j := range js {
		tw.row(cell(j.Handle), strconv.Itoa(j.Retries), yesNo(j.Ignored), yesNo(j.Queued))
	}
	return tw.flush()
}

// writeUnique prints unique keys one per line, sorted.
func writeUnique(w io.Writer, keys []string) error {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(cell(k) + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON prints v as indented JSON. A nil slice prints as [] rather than null, so a consumer
// always sees a list.
func WriteJSON(w io.Writer, v any) error {
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice && rv.IsNil() {
		v = reflect.MakeSlice(rv.Type(), 0, 0).Interface()
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// cell makes a value safe for one table cell: a value that is empty, or holds a tab, a line break or
// another non-printing character (a Perl-prefixed function name holds a tab), is printed quoted.
func cell(s string) string {
	if s == "" || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

func sortedStatus(s []FunctionStatus) []FunctionStatus {
	s = slices.Clone(s)
	slices.SortStableFunc(s, func(a, b FunctionStatus) int { return strings.Compare(a.Name, b.Name) })
	return s
}

func sortedPriority(s []PriorityStatus) []PriorityStatus {
	s = slices.Clone(s)
	slices.SortStableFunc(s, func(a, b PriorityStatus) int { return strings.Compare(a.Name, b.Name) })
	return s
}

// sortedWorkers sorts by client ID, IP and FD, with each worker's functions sorted too.
func sortedWorkers(ws []WorkerInfo) []WorkerInfo {
	ws = slices.Clone(ws)
	for i := range ws {
		ws[i].Functions = slices.Sorted(slices.Values(ws[i].Functions))
	}
	slices.SortStableFunc(ws, func(a, b WorkerInfo) int {
		return cmp.Or(strings.Compare(a.ID, b.ID), strings.Compare(a.IP, b.IP), compareNatural(a.FD, b.FD))
	})
	return ws
}

func sortedJobs(js []JobInfo) []JobInfo {
	js = slices.Clone(js)
	slices.SortStableFunc(js, func(a, b JobInfo) int { return compareNatural(a.Handle, b.Handle) })
	return js
}

// compareNatural orders strings that end in a number (job handles "H:host:12", descriptors "15")
// by their prefix, then numerically by that number; other strings byte-wise.
func compareNatural(a, b string) int {
	ap, an, aok := splitNumber(a)
	bp, bn, bok := splitNumber(b)
	if aok && bok && ap == bp {
		return cmp.Or(cmp.Compare(an, bn), strings.Compare(a, b))
	}
	return strings.Compare(a, b)
}

// splitNumber splits s into a prefix and a trailing decimal number.
func splitNumber(s string) (string, uint64, bool) {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	n, err := strconv.ParseUint(s[i:], 10, 64)
	if err != nil {
		return s, 0, false
	}
	return s[:i], n, true
}
