package filter

import (
	"sort"
	"strings"
)

// Expr is a parsed filter. Its concrete types are Compare, In, Not, And and
// Or; build them with Parse, which enforces the language's limits.
type Expr interface {
	// String returns the canonical form: Parse(e.String()) yields an
	// expression equal to e with the same String.
	String() string
	isExpr()
}

// Op is a comparison operator.
type Op int

const (
	OpEq Op = iota + 1 // =
	OpNe               // != (also written <>)
	OpLt               // <
	OpLe               // <=
	OpGt               // >
	OpGe               // >=
)

var opText = [...]string{OpEq: "=", OpNe: "!=", OpLt: "<", OpLe: "<=", OpGt: ">", OpGe: ">="}

func (o Op) String() string {
	if o < OpEq || o > OpGe {
		return "?"
	}
	return opText[o]
}

// Compare is `Column Op Value`.
type Compare struct {
	Column string
	Op     Op
	Value  Value
}

// In is `Column IN (Values...)`; the values all have one kind.
type In struct {
	Column string
	Values []Value
}

// Not is `NOT X`.
type Not struct{ X Expr }

// And is `Terms[0] AND Terms[1] AND ...`, with at least two terms, none of
// them an And (Parse flattens nested conjunctions).
type And struct{ Terms []Expr }

// Or is `Terms[0] OR Terms[1] OR ...`, with at least two terms, none of
// them an Or.
type Or struct{ Terms []Expr }

func (Compare) isExpr() {}
func (In) isExpr()      {}
func (Not) isExpr()     {}
func (And) isExpr()     {}
func (Or) isExpr()      {}

func (c Compare) String() string {
	return c.Column + " " + c.Op.String() + " " + c.Value.String()
}

func (in In) String() string {
	var b strings.Builder
	b.WriteString(in.Column)
	b.WriteString(" IN (")
	for i, v := range in.Values {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(v.String())
	}
	b.WriteString(")")
	return b.String()
}

// Precedence, loosest first: OR, AND, NOT. Parentheses are printed only
// where a looser operator sits under a tighter one, which is exactly where
// the input must have had them, so the canonical form is never deeper than
// the input.
func (n Not) String() string {
	switch n.X.(type) {
	case And, Or:
		return "NOT (" + str(n.X) + ")"
	}
	return "NOT " + str(n.X)
}

func (a And) String() string {
	parts := make([]string, len(a.Terms))
	for i, t := range a.Terms {
		if _, ok := t.(Or); ok {
			parts[i] = "(" + t.String() + ")"
		} else {
			parts[i] = str(t)
		}
	}
	return strings.Join(parts, " AND ")
}

func (o Or) String() string {
	parts := make([]string, len(o.Terms))
	for i, t := range o.Terms {
		parts[i] = str(t)
	}
	return strings.Join(parts, " OR ")
}

// str prints a possibly nil sub-expression of a hand-built tree without
// panicking.
func str(e Expr) string {
	if e == nil {
		return "<nil>"
	}
	return e.String()
}

// Columns returns the sorted, distinct columns that e refers to.
func Columns(e Expr) []string {
	seen := map[string]bool{}
	walk(e, func(col string) { seen[col] = true })
	cols := make([]string, 0, len(seen))
	for c := range seen {
		cols = append(cols, c)
	}
	sort.Strings(cols)
	return cols
}

func walk(e Expr, f func(col string)) {
	switch e := e.(type) {
	case Compare:
		f(e.Column)
	case In:
		f(e.Column)
	case Not:
		walk(e.X, f)
	case And:
		for _, t := range e.Terms {
			walk(t, f)
		}
	case Or:
		for _, t := range e.Terms {
			walk(t, f)
		}
	}
}
