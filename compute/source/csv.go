package source

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// CSV is a dataset in a CSV file with a header row, read afresh on every
// scan (a file in an fs.FS, or on disk).
//
// File rules, as compute/dataset has applied them: the header must name
// every declared column (others are ignored); a UTF-8 byte order mark is
// skipped; CRLF line ends are accepted; surrounding white space is trimmed
// from every field; an empty field of an optional column is null. A record
// longer than the fields' limit allows fails the scan: encoding/csv would
// otherwise buffer an endless line whole.
type CSV struct {
	fsys   fs.FS
	name   string
	schema Schema
	opts   Options
}

var _ Source = (*CSV)(nil)

// OpenCSV opens a CSV dataset (from fsys if it is not nil, else from the OS)
// and reads it once in full, so that a malformed file fails at open, with
// line numbers, rather than at a job. The report is that of the full pass
// (returned with a *MalformedError too).
func OpenCSV(ctx context.Context, fsys fs.FS, name string, s Schema, opts Options) (*CSV, *Report, error) {
	if err := s.Validate(); err != nil {
		return nil, nil, err
	}
	c := &CSV{fsys: fsys, name: name, schema: s, opts: opts.withDefaults()}
	rep, err := c.Scan(ctx, Query{}, func(*Row) error { return nil })
	if err != nil {
		return nil, rep, err
	}
	return c, rep, nil
}

// Validate reads the whole file.
func (c *CSV) Validate(ctx context.Context) error {
	_, err := c.Scan(ctx, Query{}, func(*Row) error { return nil })
	return err
}

// Close does nothing: a CSV source holds no open file between scans.
func (c *CSV) Close() error { return nil }

func (c *CSV) open() (io.ReadCloser, error) {
	if c.fsys != nil {
		return c.fsys.Open(c.name)
	}
	return os.Open(c.name)
}

// maxHeaderBytes bounds the header row, read before the column count is
// known.
const maxHeaderBytes = 1 << 20

var errRecordTooLong = errors.New("record too long")

// guard fails the read once more than max bytes have been read since the
// last reset, which bounds the record encoding/csv buffers.
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

// Scan reads the file, checking every declared column of every row, and
// evaluates the filter on each good row.
func (c *CSV) Scan(ctx context.Context, q Query, fn func(*Row) error) (*Report, error) {
	if err := c.schema.check(q); err != nil {
		return nil, err
	}
	f, err := c.open()
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	defer f.Close()

	g := &guard{r: f, max: maxHeaderBytes}
	br := bufio.NewReaderSize(g, 64<<10)
	if b, err := br.Peek(3); err == nil && string(b) == "\uFEFF" {
		_, _ = br.Discard(3) // a BOM, as Excel writes when saving "CSV UTF-8"
	}
	cr := csv.NewReader(br)
	cr.ReuseRecord = true

	header, err := cr.Read()
	switch {
	case errors.Is(err, errRecordTooLong):
		return nil, fmt.Errorf("source: %s: header row is longer than %d bytes", c.name, maxHeaderBytes)
	case err == io.EOF:
		return nil, fmt.Errorf("source: %s: empty file: no header row", c.name)
	case err != nil:
		return nil, fmt.Errorf("source: %s: header row: %w", c.name, err)
	}
	pos, err := columnPositions(header, c.schema)
	if err != nil {
		return nil, fmt.Errorf("source: %s: %w", c.name, err)
	}
	// The longest legitimate record, plus bufio's read-ahead.
	g.max = len(header)*(c.opts.MaxFieldBytes+3) + 2*br.Size()

	all := make([]int, len(c.schema.Columns))
	for i := range all {
		all[i] = i
	}
	sc := newScanner(ctx, c.schema, all, q, c.opts, fn)
	sc.recheck = q.Filter
	if err := ctx.Err(); err != nil {
		return sc.rep, err
	}
	lastLine := int64(1)
	for {
		g.n = 0
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if errors.Is(err, errRecordTooLong) {
			return sc.rep, fmt.Errorf("source: %s: the row after line %d is longer than %d bytes (fields are limited to %d bytes)", c.name, lastLine, g.max, c.opts.MaxFieldBytes)
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			lastLine = int64(pe.Line)
			sc.start(int64(pe.StartLine))
			if errors.Is(pe.Err, csv.ErrFieldCount) {
				sc.malformed(fmt.Sprintf("has %d fields; the header has %d", len(rec), len(header)))
			} else {
				msg := pe.Err.Error()
				if pe.Line != pe.StartLine {
					msg += fmt.Sprintf(" (at line %d)", pe.Line)
				}
				sc.malformed(msg)
			}
			if err := sc.finish(); err != nil {
				return sc.rep, err
			}
			continue
		}
		if err != nil {
			return sc.rep, fmt.Errorf("source: %s: after line %d: %w", c.name, lastLine, err)
		}
		line, _ := cr.FieldPos(0)
		last, _ := cr.FieldPos(len(rec) - 1)
		lastLine = int64(last)
		sc.start(int64(line))
		for i, col := range c.schema.Columns {
			v, bad, inv := decodeCSV(rec[pos[i]], col, c.opts)
			sc.set(i, v, bad, inv)
		}
		if err := sc.finish(); err != nil {
			return sc.rep, err
		}
	}
	return sc.done()
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
			return nil, fmt.Errorf("header names column %s more than once", c.Name)
		}
		pos[i] = p
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("header lacks declared column(s) %s", strings.Join(missing, ", "))
	}
	return pos, nil
}
