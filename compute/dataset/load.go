package dataset

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/unseen-data/unseen/compute/idnum"
)

// maxHeaderBytes bounds the header row, read before the column count is
// known.
const maxHeaderBytes = 1 << 20

var errRecordTooLong = errors.New("record too long")

// guard fails the read once more than max bytes have been read since the
// last reset. encoding/csv buffers a whole record however long it is, so
// this is what keeps a file with an endless line (or an endless quoted
// field) from exhausting memory; per-field limits are checked afterwards.
type guard struct {
	r   io.Reader
	n   int
	max int
}

func (g *guard) Read(p []byte) (int, error) {
	if g.n > g.max {
		return 0, errRecordTooLong
	}
	n, err := g.r.Read(p)
	g.n += n
	return n, err
}

// LoadCSV reads a dataset with a header row and checks it against s. See
// the package documentation for the policy. On malformed rows it returns a
// nil table, the report and a *MalformedError; other failures (no header,
// missing columns, too many rows, a record over the size limit, I/O) return
// a plain error, with the report so far when there is one.
func LoadCSV(r io.Reader, s Schema, opts Options) (*Table, *Report, error) {
	if err := s.Validate(); err != nil {
		return nil, nil, err
	}
	opts = opts.withDefaults()
	g := &guard{r: r, max: maxHeaderBytes}
	br := bufio.NewReader(g)
	if b, err := br.Peek(3); err == nil && string(b) == "\uFEFF" {
		_, _ = br.Discard(3) // a BOM, as Excel writes when saving "CSV UTF-8"
	}
	cr := csv.NewReader(br)
	cr.ReuseRecord = true

	header, err := cr.Read()
	switch {
	case errors.Is(err, errRecordTooLong):
		return nil, nil, fmt.Errorf("dataset: header row is longer than %d bytes", maxHeaderBytes)
	case err == io.EOF:
		return nil, nil, errors.New("dataset: empty file: no header row")
	case err != nil:
		return nil, nil, fmt.Errorf("dataset: header row: %w", err)
	}
	pos, err := columnPositions(header, s)
	if err != nil {
		return nil, nil, err
	}
	// The longest legitimate record, plus bufio's read-ahead.
	g.max = len(header)*(opts.MaxFieldBytes+3) + 2*4096

	t := newTable(s)
	rep := &Report{}
	badRow := func(e RowError) {
		rep.Malformed++
		if len(rep.Errors) < opts.MaxReported {
			rep.Errors = append(rep.Errors, e)
		}
	}
	vals := make([]any, len(s.Columns))
	lastLine := 1
	for {
		g.n = 0
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if errors.Is(err, errRecordTooLong) {
			return nil, rep, fmt.Errorf("dataset: the row after line %d is longer than %d bytes (fields are limited to %d bytes)", lastLine, g.max, opts.MaxFieldBytes)
		}
		rep.Rows++
		if rep.Rows > opts.MaxRows {
			return nil, rep, fmt.Errorf("dataset: more than %d data rows (the limit)", opts.MaxRows)
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			lastLine = pe.Line
			if errors.Is(pe.Err, csv.ErrFieldCount) {
				badRow(RowError{Line: pe.StartLine, Msg: fmt.Sprintf("has %d fields; the header has %d", len(rec), len(header))})
			} else {
				msg := pe.Err.Error()
				if pe.Line != pe.StartLine {
					msg += fmt.Sprintf(" (at line %d)", pe.Line)
				}
				badRow(RowError{Line: pe.StartLine, Msg: msg})
			}
			continue
		}
		if err != nil {
			return nil, rep, fmt.Errorf("dataset: after line %d: %w", lastLine, err)
		}
		line, _ := cr.FieldPos(0)
		lastLine, _ = cr.FieldPos(len(rec) - 1)

		var rowErr *RowError
		var idErr *RowError
		for i, c := range s.Columns {
			v, bad, invalidID := parseField(rec[pos[i]], c, opts)
			switch {
			case bad != "" && rowErr == nil:
				rowErr = &RowError{Line: line, Column: c.Name, Msg: bad}
			case invalidID != "" && idErr == nil:
				idErr = &RowError{Line: line, Column: c.Name, Msg: invalidID}
			}
			vals[i] = v
		}
		switch {
		case rowErr != nil:
			badRow(*rowErr)
		case idErr != nil:
			rep.InvalidIDs++
			if len(rep.InvalidIDExamples) < opts.MaxReported {
				rep.InvalidIDExamples = append(rep.InvalidIDExamples, *idErr)
			}
		case rep.Malformed == 0: // once the load has failed, stop storing
			t.append(line, vals)
		}
	}
	if rep.Malformed > 0 {
		return nil, rep, &MalformedError{Count: rep.Malformed, Errors: rep.Errors}
	}
	rep.Loaded = t.Len()
	return t, rep, nil
}

// columnPositions maps each declared column to its field in the header.
func columnPositions(header []string, s Schema) ([]int, error) {
	at := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(h)
		if _, dup := at[h]; dup {
			at[h] = -1 // ambiguous; an error only if the column is declared
			continue
		}
		at[h] = i
	}
	pos := make([]int, len(s.Columns))
	var missing []string
	for i, c := range s.Columns {
		p, ok := at[c.Name]
		switch {
		case !ok:
			missing = append(missing, c.Name)
		case p < 0:
			return nil, fmt.Errorf("dataset: header names column %s more than once", c.Name)
		}
		pos[i] = p
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("dataset: header lacks declared column(s) %s", strings.Join(missing, ", "))
	}
	return pos, nil
}

// parseField converts one field. It returns the value (string, int64, or
// nil for null), or a malformation message, or an invalid-ID reason.
func parseField(f string, c Column, opts Options) (v any, bad, invalidID string) {
	if len(f) > opts.MaxFieldBytes {
		return nil, fmt.Sprintf("field is %d bytes, over the %d-byte limit", len(f), opts.MaxFieldBytes), ""
	}
	if !utf8.ValidString(f) {
		return nil, "not valid UTF-8 (if the file is GBK-encoded, save it as UTF-8)", ""
	}
	f = strings.TrimSpace(f)
	if f == "" {
		switch {
		case !c.Required:
			return nil, "", ""
		case c.Kind == KindID:
			return nil, "", "empty"
		}
		return nil, "empty, but the column is required", ""
	}
	switch c.Kind {
	case KindInt:
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return nil, "integer out of the int64 range", ""
			}
			return nil, "not an integer (whole numbers only; money is in fen)", ""
		}
		return n, "", ""
	case KindID:
		var id string
		var err error
		if opts.AsOf.IsZero() {
			id, err = idnum.Normalise(f)
		} else {
			id, err = idnum.NormaliseAt(f, opts.AsOf)
		}
		if err != nil {
			// idnum's errors are fixed texts without the value.
			return nil, "", strings.TrimPrefix(err.Error(), "idnum: ")
		}
		return strings.Clone(id), "", ""
	}
	// Clone so the table does not pin the csv reader's whole-record string.
	return strings.Clone(f), "", ""
}
