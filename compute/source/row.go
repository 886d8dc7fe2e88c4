package source

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/unseen-data/unseen/compute/idnum"
	"github.com/unseen-data/unseen/policy/filter"
)

// Row is one selected row. It is reused from row to row: it is valid only
// during the call to the scan's callback, though the Values it returns (a
// string is immutable) may be kept.
type Row struct {
	names []string       // the columns read, declared names
	vals  []filter.Value // their values
	want  []int          // Query.Columns → index in vals

	line, ordinal int64
	keyCol        string
	keyRaw        []byte
	keyNull       bool
}

// Len is the number of columns the query asked for.
func (r *Row) Len() int { return len(r.want) }

// Value returns the value of Query.Columns[i]: an int64, a string (an id
// column's normalised form) or null.
func (r *Row) Value(i int) filter.Value { return r.vals[r.want[i]] }

// Get returns the value of a column the scan read (those the query asked
// for, those its filter names, and the id columns); it makes *Row a
// filter.Row.
func (r *Row) Get(col string) (filter.Value, bool) {
	for i, n := range r.names {
		if n == col {
			return r.vals[i], true
		}
	}
	return filter.Value{}, false
}

// maxKeyShown bounds a row key as shown in a Position.
const maxKeyShown = 64

// Pos locates the row for a diagnostic. It allocates for a database row
// with a row key, so call it when there is something to say.
func (r *Row) Pos() Position {
	p := Position{Line: r.line, Row: r.ordinal, KeyColumn: r.keyCol}
	if r.keyCol != "" {
		switch {
		case r.keyNull:
			p.Key = "NULL"
		case len(r.keyRaw) > maxKeyShown || !utf8.Valid(r.keyRaw):
			p.Key = strconv.Quote(string(r.keyRaw[:min(len(r.keyRaw), maxKeyShown)])) + "…"
		default:
			p.Key = string(r.keyRaw)
		}
	}
	return p
}

// scanner applies the declaration to rows as a source reads them, whatever
// the source: it classifies each row (malformed, invalid ID, good), keeps
// the report, evaluates the part of the filter the source did not, and
// calls fn.
type scanner struct {
	ctx     context.Context
	opts    Options
	cols    []Column // the columns read, parallel to row.vals
	row     Row
	recheck filter.Expr // nil when the source has applied the whole filter
	fn      func(*Row) error
	rep     *Report

	bad, invalid *RowError // the row's first problem of each sort
}

// errTooManyRows is wrapped with the limit.
var errTooManyRows = errors.New("source: more rows than the limit")

func newScanner(ctx context.Context, s Schema, read []int, q Query, opts Options, fn func(*Row) error) *scanner {
	sc := &scanner{ctx: ctx, opts: opts, fn: fn, rep: &Report{Pushdown: "none"}}
	sc.cols = make([]Column, len(read))
	sc.row.names = make([]string, len(read))
	sc.row.vals = make([]filter.Value, len(read))
	for i, d := range read {
		sc.cols[i] = s.Columns[d]
		sc.row.names[i] = s.Columns[d].Name
	}
	sc.row.want = make([]int, len(q.Columns))
	for i, c := range q.Columns {
		for j, n := range sc.row.names {
			if n == c {
				sc.row.want[i] = j
			}
		}
	}
	return sc
}

// columnsToRead returns the declared columns a scan must read, in declared
// order: those asked for, those the filter names if it is evaluated here,
// and every id column (a row with any invalid ID is skipped, as the CSV
// loader has always done, so the rows skipped do not depend on the query).
func columnsToRead(s Schema, q Query, withFilter bool) []int {
	need := map[string]bool{}
	for _, c := range q.Columns {
		need[c] = true
	}
	if withFilter && q.Filter != nil {
		for _, c := range filter.Columns(q.Filter) {
			need[c] = true
		}
	}
	var read []int
	for i, c := range s.Columns {
		if need[c.Name] || c.Kind == KindID {
			read = append(read, i)
		}
	}
	return read
}

// start begins a row.
func (sc *scanner) start(line int64) {
	sc.row.line = line
	sc.row.ordinal = sc.rep.Read + 1
	sc.bad, sc.invalid = nil, nil
}

// set stores column i's value or its problem.
func (sc *scanner) set(i int, v filter.Value, bad, invalid string) {
	sc.row.vals[i] = v
	switch {
	case bad != "" && sc.bad == nil:
		sc.bad = &RowError{Column: sc.cols[i].Name, Msg: bad}
	case invalid != "" && sc.invalid == nil:
		sc.invalid = &RowError{Column: sc.cols[i].Name, Msg: invalid}
	}
}

// malformed records a whole-row problem (a CSV record that does not parse).
func (sc *scanner) malformed(msg string) {
	if sc.bad == nil {
		sc.bad = &RowError{Msg: msg}
	}
}

// finish classifies the row and passes it on if it is selected.
func (sc *scanner) finish() error {
	rep := sc.rep
	rep.Read++
	if rep.Read&1023 == 0 {
		if err := sc.ctx.Err(); err != nil {
			return err
		}
	}
	if sc.opts.MaxRows > 0 && rep.Read > sc.opts.MaxRows {
		return fmt.Errorf("%w (%d rows)", errTooManyRows, sc.opts.MaxRows)
	}
	switch {
	case sc.bad != nil:
		rep.Malformed++
		if len(rep.Errors) < sc.opts.MaxReported {
			e := *sc.bad
			e.Pos = sc.row.Pos()
			rep.Errors = append(rep.Errors, e)
		}
		return nil
	case sc.invalid != nil:
		rep.InvalidIDs++
		if len(rep.InvalidIDExamples) < sc.opts.MaxReported {
			e := *sc.invalid
			e.Pos = sc.row.Pos()
			rep.InvalidIDExamples = append(rep.InvalidIDExamples, e)
		}
		return nil
	case rep.Malformed > 0: // the scan has failed: just count
		return nil
	}
	if sc.recheck != nil {
		ok, err := filter.Eval(sc.recheck, &sc.row)
		if err != nil {
			return fmt.Errorf("source: %s: %w", sc.row.Pos(), err)
		}
		if !ok {
			return nil
		}
	}
	rep.Selected++
	return sc.fn(&sc.row)
}

// done ends a scan that read every row.
func (sc *scanner) done() (*Report, error) {
	if sc.rep.Malformed > 0 {
		return sc.rep, &MalformedError{Count: sc.rep.Malformed, Errors: sc.rep.Errors}
	}
	return sc.rep, nil
}

// normaliseID applies idnum with opts.AsOf. idnum's errors are fixed texts
// without the value.
func normaliseID(s string, opts Options) (string, string) {
	var id string
	var err error
	if opts.AsOf.IsZero() {
		id, err = idnum.Normalise(s)
	} else {
		id, err = idnum.NormaliseAt(s, opts.AsOf)
	}
	if err != nil {
		return "", strings.TrimPrefix(err.Error(), "idnum: ")
	}
	return id, ""
}

const (
	msgNotInt   = "not an integer (whole numbers only; money is in fen)"
	msgIntRange = "integer out of the int64 range"
	msgNotUTF8  = "not valid UTF-8"
)

func parseInt(f string) (int64, string) {
	n, err := strconv.ParseInt(f, 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, msgIntRange
		}
		return 0, msgNotInt
	}
	return n, ""
}

// decodeCSV converts one CSV field with the CSV rules: surrounding white
// space trimmed, an empty field null. It returns the value, or a
// malformation message, or an invalid-ID reason.
func decodeCSV(f string, c Column, opts Options) (v filter.Value, bad, invalidID string) {
	if len(f) > opts.MaxFieldBytes {
		return v, fmt.Sprintf("field is %d bytes, over the %d-byte limit", len(f), opts.MaxFieldBytes), ""
	}
	if !utf8.ValidString(f) {
		return v, msgNotUTF8 + " (if the file is GBK-encoded, save it as UTF-8)", ""
	}
	f = strings.TrimSpace(f)
	if f == "" {
		switch {
		case !c.Required:
			return filter.Null(), "", ""
		case c.Kind == KindID:
			return v, "", "empty"
		}
		return v, "empty, but the column is required", ""
	}
	switch c.Kind {
	case KindInt:
		n, bad := parseInt(f)
		return filter.IntValue(n), bad, ""
	case KindID:
		id, inv := normaliseID(f, opts)
		return filter.StringValue(id), "", inv
	}
	return filter.StringValue(f), "", ""
}

// decoding says how a database column's text becomes a value.
type decoding uint8

const (
	decAsIs    decoding = iota // text as stored; an int type's decimal digits
	decTrimInt                 // an int kept as text: surrounding space trimmed
	decDecimal                 // a decimal: a whole number, "12" or "12.00"
)

// decodeDB converts one database value (its text form; nil for NULL).
// Text is taken as stored: spaces are data and "" is not null.
func decodeDB(b []byte, null bool, c Column, d decoding, opts Options) (v filter.Value, bad, invalidID string) {
	if null {
		switch {
		case !c.Required:
			return filter.Null(), "", ""
		case c.Kind == KindID:
			return v, "", "empty"
		}
		return v, "null, but the column is required", ""
	}
	if len(b) > opts.MaxFieldBytes {
		return v, fmt.Sprintf("value is %d bytes, over the %d-byte limit", len(b), opts.MaxFieldBytes), ""
	}
	if !utf8.Valid(b) {
		return v, msgNotUTF8, ""
	}
	switch c.Kind {
	case KindInt:
		s := string(b)
		switch d {
		case decTrimInt:
			s = strings.TrimSpace(s)
		case decDecimal:
			if i := strings.IndexByte(s, '.'); i >= 0 {
				if strings.Trim(s[i+1:], "0") != "" {
					return v, "not a whole number (money is in fen)", ""
				}
				s = s[:i]
			}
		}
		n, bad := parseInt(s)
		return filter.IntValue(n), bad, ""
	case KindID:
		id, inv := normaliseID(string(b), opts)
		return filter.StringValue(id), "", inv
	}
	return filter.StringValue(string(b)), "", ""
}
