package filter

import (
	"errors"
	"fmt"
)

// Row gives a filter the values of one row.
type Row interface {
	// Get returns the value of a column; ok is false if the row has no
	// such column (a null field is a null Value with ok true).
	Get(col string) (v Value, ok bool)
}

// MapRow is a Row backed by a map.
type MapRow map[string]Value

// Get implements Row.
func (m MapRow) Get(col string) (Value, bool) {
	v, ok := m[col]
	return v, ok
}

// RowFunc adapts a function to a Row.
type RowFunc func(col string) (Value, bool)

// Get implements Row.
func (f RowFunc) Get(col string) (Value, bool) { return f(col) }

// truth is SQL's three-valued logic: a comparison with null is unknown.
type truth int8

const (
	no truth = iota
	unknown
	yes
)

var errBadExpr = errors.New("filter: malformed expression")

// Eval reports whether row satisfies e; a nil e selects every row, and a
// row for which e is unknown (because of nulls) is not selected. Comparing a
// column with a literal of the other kind, or naming a column the row lacks,
// is an error; run Check first to rule both out for a whole table.
func Eval(e Expr, row Row) (bool, error) {
	if e == nil {
		return true, nil
	}
	t, err := eval(e, row)
	return t == yes, err
}

func eval(e Expr, row Row) (truth, error) {
	switch e := e.(type) {
	case Compare:
		v, err := get(row, e.Column, e.Value.kind)
		if err != nil || v.IsNull() {
			return unknown, err
		}
		c := compare(v, e.Value)
		var ok bool
		switch e.Op {
		case OpEq:
			ok = c == 0
		case OpNe:
			ok = c != 0
		case OpLt:
			ok = c < 0
		case OpLe:
			ok = c <= 0
		case OpGt:
			ok = c > 0
		case OpGe:
			ok = c >= 0
		default:
			return unknown, errBadExpr
		}
		return of(ok), nil
	case In:
		if len(e.Values) == 0 {
			return unknown, errBadExpr
		}
		v, err := get(row, e.Column, e.Values[0].kind)
		if err != nil || v.IsNull() {
			return unknown, err
		}
		for _, x := range e.Values {
			if x.kind == v.kind && compare(v, x) == 0 {
				return yes, nil
			}
		}
		return no, nil
	case Not:
		t, err := eval(e.X, row)
		return yes - t, err // no↔yes, unknown stays
	case And:
		res := yes
		for _, x := range e.Terms {
			t, err := eval(x, row)
			if err != nil {
				return unknown, err
			}
			if t == no {
				return no, nil
			}
			res = min(res, t)
		}
		return res, nil
	case Or:
		res := no
		for _, x := range e.Terms {
			t, err := eval(x, row)
			if err != nil {
				return unknown, err
			}
			if t == yes {
				return yes, nil
			}
			res = max(res, t)
		}
		return res, nil
	}
	return unknown, errBadExpr
}

func of(b bool) truth {
	if b {
		return yes
	}
	return no
}

// get fetches a column and checks its kind against the literal's.
func get(row Row, col string, want Kind) (Value, error) {
	v, ok := row.Get(col)
	if !ok {
		return Value{}, fmt.Errorf("filter: no column %q", col)
	}
	if !v.IsNull() && v.kind != want {
		return Value{}, kindError(col, v.kind, want)
	}
	return v, nil
}

func kindError(col string, have, lit Kind) error {
	return fmt.Errorf("filter: column %s is %s but is compared with %s literal", col, have, article(lit))
}

func article(k Kind) string {
	if k == KindInt {
		return "an integer"
	}
	return "a string"
}

// Check type-checks e against a schema mapping column names to kinds: every
// column must exist and be compared with literals of its own kind. It
// returns the first problem, in the order the filter is written.
func Check(e Expr, types map[string]Kind) error {
	switch e := e.(type) {
	case nil:
		return nil
	case Compare:
		return checkCol(e.Column, types, e.Value.kind)
	case In:
		if len(e.Values) == 0 {
			return errBadExpr
		}
		return checkCol(e.Column, types, e.Values[0].kind)
	case Not:
		if e.X == nil {
			return errBadExpr
		}
		return Check(e.X, types)
	case And:
		return checkAll(e.Terms, types)
	case Or:
		return checkAll(e.Terms, types)
	}
	return errBadExpr
}

func checkAll(terms []Expr, types map[string]Kind) error {
	for _, t := range terms {
		if t == nil {
			return errBadExpr
		}
		if err := Check(t, types); err != nil {
			return err
		}
	}
	return nil
}

func checkCol(col string, types map[string]Kind, lit Kind) error {
	k, ok := types[col]
	if !ok {
		return fmt.Errorf("filter: unknown column %s", col)
	}
	if k != KindString && k != KindInt {
		return fmt.Errorf("filter: column %s has kind %q, which filters cannot compare", col, k)
	}
	if k != lit {
		return kindError(col, k, lit)
	}
	return nil
}
