package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/unseen-data/unseen/compute/source"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/filter"
)

// Table is one dataset of the node: a handle on where its rows live (a
// compute/source Source: a CSV file, a PostgreSQL or MySQL table) and its
// declared columns. The node never holds a whole dataset: each job step
// scans the source with the job's filter.
type Table struct {
	name   string
	schema source.Schema
	src    source.Source
	// report is that of the validating pass at start (a CSV file's full
	// read); nil for a database, which is validated without reading rows.
	report *source.Report
}

// schemaOf is a declaration's columns as the source reads them: an id
// column is required (a row without an ID is skipped and counted).
func schemaOf(dc *DatasetConfig) source.Schema {
	var s source.Schema
	for _, c := range dc.Columns {
		s.Columns = append(s.Columns, source.Column{Name: c.Name, Kind: source.Kind(c.Kind), Required: c.Kind == policy.KindID})
	}
	return s
}

// OpenTable opens a declared dataset where spec says it is (paths already
// resolved; a CSV file is read from fsys if it is not nil) and validates
// it: a CSV file is read in full, so that malformed rows fail the start
// with their line numbers (rows with invalid ID numbers are counted and
// skipped); a database table must have the declared columns.
func OpenTable(ctx context.Context, dc *DatasetConfig, spec source.Spec, fsys fs.FS) (*Table, error) {
	opts := source.Options{MaxRows: dc.MaxRows}
	src, rep, err := source.Open(ctx, spec, fsys, schemaOf(dc), opts)
	if err != nil {
		where := spec.File
		if where == "" {
			where = spec.Kind + " " + spec.Table
		}
		return nil, fmt.Errorf("node: dataset %s (%s): %w", dc.Name, where, err)
	}
	if spec.Kind != source.SpecCSV {
		if err := src.Validate(ctx); err != nil {
			src.Close()
			return nil, fmt.Errorf("node: dataset %s (%s %s): %w", dc.Name, spec.Kind, spec.Table, err)
		}
	}
	return &Table{name: dc.Name, schema: schemaOf(dc), src: src, report: rep}, nil
}

// LoadTable opens a declared dataset from the CSV file at path (from fsys
// if it is not nil) and validates it (OpenTable).
func LoadTable(dc *DatasetConfig, path string, fsys fs.FS) (*Table, error) {
	return OpenTable(context.Background(), dc, source.Spec{Kind: source.SpecCSV, File: path}, fsys)
}

// Close releases the source's connections.
func (t *Table) Close() error { return t.src.Close() }

// Len is the number of good rows the validating pass read (a CSV file),
// or -1 when the source was validated without reading its rows.
func (t *Table) Len() int {
	if t.report == nil {
		return -1
	}
	return int(t.report.Selected)
}

// InvalidIDs is the number of rows the validating pass skipped for an
// invalid ID number (0 for a database: each scan reports its own).
func (t *Table) InvalidIDs() int {
	if t.report == nil {
		return 0
	}
	return int(t.report.InvalidIDs)
}

// Report is the validating pass's report (nil for a database).
func (t *Table) Report() *source.Report { return t.report }

// errFilter marks a filter the dataset cannot take (the job's fault).
type errFilter struct{ err error }

func (e *errFilter) Error() string { return e.err.Error() }
func (e *errFilter) Unwrap() error { return e.err }

// query parses and checks a filter against the declaration.
func (t *Table) query(cols []string, filterText string) (source.Query, error) {
	e, err := filter.Parse(filterText)
	if err != nil {
		return source.Query{}, &errFilter{fmt.Errorf("filter on %s: %w", t.name, err)}
	}
	if e != nil {
		if err := filter.Check(e, t.schema.FilterKinds()); err != nil {
			return source.Query{}, &errFilter{fmt.Errorf("filter on %s: %w", t.name, err)}
		}
	}
	for _, c := range cols {
		if !t.declares(c) {
			return source.Query{}, &errFilter{fmt.Errorf("dataset %s has no column %s", t.name, c)}
		}
	}
	return source.Query{Columns: cols, Filter: e}, nil
}

func (t *Table) declares(col string) bool {
	for _, c := range t.schema.Columns {
		if c.Name == col {
			return true
		}
	}
	return false
}

func (t *Table) kind(col string) source.Kind {
	for _, c := range t.schema.Columns {
		if c.Name == col {
			return c.Kind
		}
	}
	return ""
}

// Scan streams the rows the filter selects, with the given columns.
func (t *Table) Scan(ctx context.Context, cols []string, filterText string, fn func(*source.Row) error) (*source.Report, error) {
	q, err := t.query(cols, filterText)
	if err != nil {
		return nil, err
	}
	rep, err := t.src.Scan(ctx, q, fn)
	if err != nil {
		return rep, fmt.Errorf("dataset %s: %w", t.name, err)
	}
	return rep, nil
}

// EachKey calls add with the normalised key of every row the filter
// selects, in the source's order, duplicates included (a row whose key is
// null names nobody and is left out).
func (t *Table) EachKey(ctx context.Context, key, filterText string, add func(id []byte) error) (*source.Report, error) {
	if t.declares(key) && t.kind(key) == source.KindInt {
		return nil, &errFilter{fmt.Errorf("dataset: column %s is int and cannot be a key", key)}
	}
	var buf []byte
	return t.Scan(ctx, []string{key}, filterText, func(r *source.Row) error {
		v := r.Value(0)
		if v.IsNull() {
			return nil
		}
		buf = append(buf[:0], v.Str()...)
		return add(buf)
	})
}

// jobError turns a scan's failure into the step's refusal: the job's
// filter or columns are the job's fault (bad_input); anything else (a
// database gone, a file changed into a malformed one) is the node's.
func jobError(err error) error {
	var fe *errFilter
	if errors.As(err, &fe) {
		return refuse(KindBadRequest, "bad_input", "%v", err)
	}
	var ne *Error
	if errors.As(err, &ne) {
		return ne
	}
	return internal(err)
}

// ---- rows materialised for the homomorphic steps --------------------------

// rowSet is the rows of one job step's input, read from the source with
// only the columns the step needs: the homomorphic paths (he_aggregate.go,
// he_layout.go) index rows. It holds O(rows selected × columns asked).
type rowSet struct {
	dataset string
	where   []int64 // a CSV row's line, a database row's ordinal in the scan
	line    bool    // where holds lines
	cols    map[string]*rowColumn
}

// rowColumn is one column's values in a rowSet.
type rowColumn struct {
	kind source.Kind
	ints []int64
	strs []string
	null []bool
}

// rows reads the rows the filter selects with the given columns (each
// named once; "" entries are ignored). Repeated strings (group labels)
// share one copy.
func (t *Table) rows(ctx context.Context, filterText string, cols ...string) (*rowSet, error) {
	var want []string
	for _, c := range cols {
		if c != "" && !contains(want, c) {
			want = append(want, c)
		}
	}
	rs := &rowSet{dataset: t.name, cols: map[string]*rowColumn{}}
	for _, c := range want {
		rs.cols[c] = &rowColumn{kind: t.kind(c)}
	}
	intern := map[string]string{}
	_, err := t.Scan(ctx, want, filterText, func(r *source.Row) error {
		p := r.Pos()
		if p.Line > 0 {
			rs.where, rs.line = append(rs.where, p.Line), true
		} else {
			rs.where = append(rs.where, p.Row)
		}
		for i, c := range want {
			rc := rs.cols[c]
			v := r.Value(i)
			rc.null = append(rc.null, v.IsNull())
			switch {
			case rc.kind == source.KindInt:
				var n int64
				if !v.IsNull() {
					n = v.Int()
				}
				rc.ints = append(rc.ints, n)
			case rc.kind == source.KindString && !v.IsNull():
				s := v.Str()
				if in, ok := intern[s]; ok {
					s = in
				} else if len(intern) < 1<<16 {
					intern[s] = s
				}
				rc.strs = append(rc.strs, s)
			default:
				rc.strs = append(rc.strs, v.Str())
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rs, nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// Len is the number of rows.
func (rs *rowSet) Len() int { return len(rs.where) }

// all is every row's index.
func (rs *rowSet) all() []int {
	out := make([]int, rs.Len())
	for i := range out {
		out[i] = i
	}
	return out
}

// Where locates row i for a message without showing its data: "line 12"
// of a CSV file, "row 12 of the scan" of a database.
func (rs *rowSet) Where(i int) string {
	if rs.line {
		return fmt.Sprintf("line %d", rs.where[i])
	}
	return fmt.Sprintf("row %d of the scan", rs.where[i])
}

func (rs *rowSet) column(col string) (*rowColumn, error) {
	c, ok := rs.cols[col]
	if !ok {
		return nil, fmt.Errorf("dataset: column %s was not read", col)
	}
	return c, nil
}

// Value is column col of row i.
func (rs *rowSet) Value(i int, col string) (filter.Value, error) {
	c, err := rs.column(col)
	if err != nil {
		return filter.Value{}, err
	}
	switch {
	case c.null[i]:
		return filter.Null(), nil
	case c.kind == source.KindInt:
		return filter.IntValue(c.ints[i]), nil
	}
	return filter.StringValue(c.strs[i]), nil
}

// Ints returns an int column's values for rows, in order. A null among
// them is an error: leaving it out or counting it as 0 would both change a
// sum or a mean without anyone noticing.
func (rs *rowSet) Ints(rows []int, col string) ([]int64, error) {
	c, err := rs.column(col)
	if err != nil {
		return nil, err
	}
	if c.kind != source.KindInt {
		return nil, fmt.Errorf("dataset: column %s is %s, not int", col, c.kind)
	}
	out := make([]int64, len(rows))
	for k, i := range rows {
		if c.null[i] {
			return nil, fmt.Errorf("dataset: %s: column %s is empty", rs.Where(i), col)
		}
		out[k] = c.ints[i]
	}
	return out, nil
}

// Strings returns an id or string column's values for rows, in order (for
// grouping). A null among them is an error, as for Ints.
func (rs *rowSet) Strings(rows []int, col string) ([]string, error) {
	c, err := rs.column(col)
	if err != nil {
		return nil, err
	}
	if c.kind == source.KindInt {
		return nil, fmt.Errorf("dataset: column %s is int, not a string", col)
	}
	out := make([]string, len(rows))
	for k, i := range rows {
		if c.null[i] {
			return nil, fmt.Errorf("dataset: %s: column %s is empty", rs.Where(i), col)
		}
		out[k] = c.strs[i]
	}
	return out, nil
}
