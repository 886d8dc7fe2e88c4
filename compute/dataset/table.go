package dataset

import (
	"fmt"
	"slices"

	"github.com/unseen-data/unseen/policy/filter"
)

// Table is a loaded dataset, stored by column.
type Table struct {
	schema Schema
	cols   []*column
	byName map[string]int
	lines  []int
}

type column struct {
	Column
	strs []string // id and string columns
	ints []int64  // int columns
	null []bool   // nil until the first null
}

func newTable(s Schema) *Table {
	t := &Table{schema: s, byName: make(map[string]int, len(s.Columns))}
	for i, c := range s.Columns {
		t.cols = append(t.cols, &column{Column: c})
		t.byName[c.Name] = i
	}
	return t
}

// append adds a row; vals holds string, int64 or nil (null) per column.
func (t *Table) append(line int, vals []any) {
	n := len(t.lines)
	for i, c := range t.cols {
		if vals[i] == nil && c.null == nil {
			c.null = make([]bool, n, cap(t.lines)+1)
		}
		if c.null != nil {
			c.null = append(c.null, vals[i] == nil)
		}
		switch v := vals[i].(type) {
		case int64:
			c.ints = append(c.ints, v)
		case string:
			c.strs = append(c.strs, v)
		default:
			if c.Kind == KindInt {
				c.ints = append(c.ints, 0)
			} else {
				c.strs = append(c.strs, "")
			}
		}
	}
	t.lines = append(t.lines, line)
}

// Len is the number of rows.
func (t *Table) Len() int { return len(t.lines) }

// Schema is the table's declared schema.
func (t *Table) Schema() Schema { return t.schema }

// Line is the line of the source file where row i started, for
// diagnostics; i must be in [0, Len()).
func (t *Table) Line(i int) int { return t.lines[i] }

// Kinds maps each column to the kind the filter language sees: id columns
// are strings (their normalised form).
func (t *Table) Kinds() map[string]filter.Kind {
	m := make(map[string]filter.Kind, len(t.cols))
	for _, c := range t.cols {
		if c.Kind == KindInt {
			m[c.Name] = filter.KindInt
		} else {
			m[c.Name] = filter.KindString
		}
	}
	return m
}

func (t *Table) column(name string) (*column, error) {
	i, ok := t.byName[name]
	if !ok {
		return nil, fmt.Errorf("dataset: no column %s", name)
	}
	return t.cols[i], nil
}

func (c *column) value(i int) filter.Value {
	switch {
	case c.null != nil && c.null[i]:
		return filter.Null()
	case c.Kind == KindInt:
		return filter.IntValue(c.ints[i])
	}
	return filter.StringValue(c.strs[i])
}

// Value returns the value of column col in row i (null for an empty
// optional field).
func (t *Table) Value(i int, col string) (filter.Value, error) {
	c, err := t.column(col)
	if err != nil {
		return filter.Value{}, err
	}
	if i < 0 || i >= t.Len() {
		return filter.Value{}, fmt.Errorf("dataset: row %d out of range [0, %d)", i, t.Len())
	}
	return c.value(i), nil
}

type tableRow struct {
	t *Table
	i int
}

func (r tableRow) Get(col string) (filter.Value, bool) {
	j, ok := r.t.byName[col]
	if !ok {
		return filter.Value{}, false
	}
	return r.t.cols[j].value(r.i), true
}

// Select returns the indices, in ascending order, of the rows that e
// selects (all rows for a nil e). It type-checks e against the schema first,
// so a filter naming an unknown column or comparing with the wrong kind of
// literal fails as a whole rather than row by row.
func (t *Table) Select(e filter.Expr) ([]int, error) {
	if err := filter.Check(e, t.Kinds()); err != nil {
		return nil, err
	}
	rows := make([]int, 0, t.Len())
	for i := range t.Len() {
		ok, err := filter.Eval(e, tableRow{t, i})
		if err != nil {
			return nil, fmt.Errorf("dataset: line %d: %w", t.lines[i], err)
		}
		if ok {
			rows = append(rows, i)
		}
	}
	return rows, nil
}

func (t *Table) checkRows(rows []int) error {
	for _, i := range rows {
		if i < 0 || i >= t.Len() {
			return fmt.Errorf("dataset: row %d out of range [0, %d)", i, t.Len())
		}
	}
	return nil
}

// DistinctKeys returns the sorted distinct non-null values of an id or
// string column over rows: the node's input to private set intersection.
// (Callers shuffle or blind them; sorting just makes the result
// deterministic.)
func (t *Table) DistinctKeys(rows []int, col string) ([]string, error) {
	c, err := t.column(col)
	if err != nil {
		return nil, err
	}
	if c.Kind == KindInt {
		return nil, fmt.Errorf("dataset: column %s is int and cannot be a key", col)
	}
	if err := t.checkRows(rows); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(rows))
	for _, i := range rows {
		if c.null == nil || !c.null[i] {
			keys = append(keys, c.strs[i])
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys), nil
}

// Ints returns an int column's values for rows, in order. An empty field
// among them is an error: leaving it out or counting it as 0 would both
// change a sum or a mean without anyone noticing.
func (t *Table) Ints(rows []int, col string) ([]int64, error) {
	c, err := t.column(col)
	if err != nil {
		return nil, err
	}
	if c.Kind != KindInt {
		return nil, fmt.Errorf("dataset: column %s is %s, not int", col, c.Kind)
	}
	if err := t.checkRows(rows); err != nil {
		return nil, err
	}
	out := make([]int64, len(rows))
	for k, i := range rows {
		if c.null != nil && c.null[i] {
			return nil, fmt.Errorf("dataset: line %d: column %s is empty", t.lines[i], col)
		}
		out[k] = c.ints[i]
	}
	return out, nil
}

// Strings returns an id or string column's values for rows, in order (for
// grouping). An empty field among them is an error, as for Ints.
func (t *Table) Strings(rows []int, col string) ([]string, error) {
	c, err := t.column(col)
	if err != nil {
		return nil, err
	}
	if c.Kind == KindInt {
		return nil, fmt.Errorf("dataset: column %s is int, not a string", col)
	}
	if err := t.checkRows(rows); err != nil {
		return nil, err
	}
	out := make([]string, len(rows))
	for k, i := range rows {
		if c.null != nil && c.null[i] {
			return nil, fmt.Errorf("dataset: line %d: column %s is empty", t.lines[i], col)
		}
		out[k] = c.strs[i]
	}
	return out, nil
}
