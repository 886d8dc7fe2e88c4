package source

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/unseen-data/unseen/policy/filter"
)

// SQLConfig says where a database dataset lives and how to reach it.
type SQLConfig struct {
	// Table is a table or view, "name" or "schema.name" (for MySQL the
	// schema is the database). Each part is an identifier
	// [A-Za-z_][A-Za-z0-9_]*, always quoted, so names are case-sensitive
	// in PostgreSQL.
	Table string
	// DSNEnv names an environment variable holding the DSN; DSNFile is a
	// file holding it (surrounding white space ignored). Exactly one is
	// set: a DSN carries a password and never appears in configuration.
	DSNEnv, DSNFile string
	// RowKey optionally names a column (declared or not, not an id column)
	// whose value identifies a row in reports: a surrogate key, never
	// personal data. Without one a row is reported by its ordinal in the
	// scan, which the database does not keep from one scan to the next.
	RowKey string
	// StatementTimeout bounds each statement the database runs for a scan:
	// in PostgreSQL each FETCH of a batch, in MySQL the whole streamed
	// SELECT. Default 10 minutes.
	StatementTimeout time.Duration
	// MaxConnLifetime bounds how long a connection is reused. Default 30
	// minutes.
	MaxConnLifetime time.Duration
	// MaxConns bounds the open connections (one per concurrent scan).
	// Default 4.
	MaxConns int
	// FetchRows is the rows per FETCH from a PostgreSQL cursor. Default
	// 1000.
	FetchRows int
}

// Defaults for SQLConfig.
const (
	DefaultStatementTimeout = 10 * time.Minute
	DefaultMaxConnLifetime  = 30 * time.Minute
	DefaultMaxConns         = 4
	DefaultFetchRows        = 1000
)

func (c SQLConfig) withDefaults() SQLConfig {
	if c.StatementTimeout <= 0 {
		c.StatementTimeout = DefaultStatementTimeout
	}
	if c.MaxConnLifetime <= 0 {
		c.MaxConnLifetime = DefaultMaxConnLifetime
	}
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.FetchRows <= 0 {
		c.FetchRows = DefaultFetchRows
	}
	return c
}

// check validates the configuration against the schema, before any
// connection is made.
func (c SQLConfig) check(s Schema) ([]string, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	table, err := splitTable(c.Table)
	if err != nil {
		return nil, err
	}
	if c.RowKey != "" {
		if !validName(c.RowKey) {
			return nil, fmt.Errorf("source: row key %q is not an identifier [A-Za-z_][A-Za-z0-9_]*", c.RowKey)
		}
		if i := s.index(c.RowKey); i >= 0 && s.Columns[i].Kind == KindID {
			return nil, fmt.Errorf("source: row key %s is an id column: reports would show personal data", c.RowKey)
		}
	}
	if c.StatementTimeout < 0 || c.MaxConnLifetime < 0 || c.MaxConns < 0 || c.FetchRows < 0 {
		return nil, errors.New("source: timeouts and limits must not be negative")
	}
	return table, nil
}

// splitTable checks "name" or "schema.name".
func splitTable(t string) ([]string, error) {
	parts := strings.Split(t, ".")
	if t == "" || len(parts) > 2 {
		return nil, fmt.Errorf("source: table %q must be name or schema.name", t)
	}
	for _, p := range parts {
		if !validName(p) {
			return nil, fmt.Errorf("source: table %q: %q is not an identifier [A-Za-z_][A-Za-z0-9_]* (at most %d bytes)", t, p, maxNameLen)
		}
	}
	return parts, nil
}

// readDSN reads the DSN. Errors name where it was looked for, never its
// text.
func (c SQLConfig) readDSN() (string, error) {
	switch {
	case c.DSNEnv != "" && c.DSNFile != "":
		return "", errors.New("source: set dsn_env or dsn_file, not both")
	case c.DSNEnv != "":
		dsn := strings.TrimSpace(os.Getenv(c.DSNEnv))
		if dsn == "" {
			return "", fmt.Errorf("source: environment variable %s (the DSN) is not set", c.DSNEnv)
		}
		return dsn, nil
	case c.DSNFile != "":
		b, err := os.ReadFile(c.DSNFile)
		if err != nil {
			return "", fmt.Errorf("source: reading the DSN: %w", err)
		}
		dsn := strings.TrimSpace(string(b))
		if dsn == "" {
			return "", fmt.Errorf("source: DSN file %s is empty", c.DSNFile)
		}
		return dsn, nil
	}
	return "", errors.New("source: a database dataset needs dsn_env or dsn_file")
}

// dialect is the SQL of one database.
type dialect uint8

const (
	postgres dialect = iota + 1
	mysql
)

func (d dialect) quote(name string) string {
	// Names are validated identifiers, so there is nothing to escape; the
	// quotes keep them from being read as keywords or case-folded.
	if d == postgres {
		return `"` + name + `"`
	}
	return "`" + name + "`"
}

func (d dialect) quoteTable(parts []string) string {
	q := make([]string, len(parts))
	for i, p := range parts {
		q[i] = d.quote(p)
	}
	return strings.Join(q, ".")
}

// dbColumn is a declared column as the database has it.
type dbColumn struct {
	sel string // SELECT expression
	// cmp is the expression the filter compares byte- or integer-exactly;
	// "" when the database cannot compare exactly and the comparison is
	// evaluated here.
	cmp string
	// hint is the column compared in its own collation, for an index to
	// serve an equality: true for every byte-equal pair, so it can be
	// ANDed with the exact comparison without changing its meaning.
	hint string
	dec  decoding
}

// plan is a scan's SQL.
type plan struct {
	sql      string
	args     []any
	read     []int       // declared columns selected, in order
	recheck  filter.Expr // the filter, when the database did not apply all of it
	pushdown string
}

// buildPlan builds the SELECT for q. cols is indexed like s.Columns; key is
// the row key's SELECT expression or "".
func buildPlan(d dialect, table string, s Schema, cols []dbColumn, key string, q Query) (*plan, error) {
	w := &sqlWriter{d: d, s: s, cols: cols, exact: true}
	where, err := w.expr(q.Filter, true)
	if err != nil {
		return nil, err
	}
	p := &plan{pushdown: "none"}
	if q.Filter != nil {
		switch {
		case w.exact:
			p.pushdown = "all"
		case where.c == 0:
			p.pushdown = "part"
		}
	}
	if !w.exact {
		p.recheck = q.Filter
	}
	p.read = columnsToRead(s, q, !w.exact)
	var b strings.Builder
	b.WriteString("SELECT ")
	for i, c := range p.read {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(cols[c].sel)
	}
	if key != "" {
		if len(p.read) > 0 {
			b.WriteString(", ")
		}
		b.WriteString(key)
	}
	if len(p.read) == 0 && key == "" {
		b.WriteString("1")
	}
	b.WriteString(" FROM ")
	b.WriteString(table)
	switch where.c {
	case cFalse:
		b.WriteString(" WHERE FALSE")
	case 0:
		b.WriteString(" WHERE ")
		b.WriteString(where.sql)
	}
	p.sql = b.String()
	p.args = w.args
	return p, nil
}

// frag is a translated sub-expression: SQL text, or a constant.
type frag struct {
	sql string
	c   int8 // 0: sql; cTrue or cFalse: a constant
}

const (
	cTrue  int8 = 1
	cFalse int8 = -1
)

// sqlWriter translates a filter to SQL. Column names are looked up in the
// declaration (so only declared, validated identifiers reach the SQL) and
// every literal becomes a bound parameter: the SQL text depends on the
// filter's shape, never on its literals.
type sqlWriter struct {
	d     dialect
	s     Schema
	cols  []dbColumn
	args  []any
	exact bool
}

var sqlOp = [...]string{filter.OpEq: "=", filter.OpNe: "<>", filter.OpLt: "<", filter.OpLe: "<=", filter.OpGt: ">", filter.OpGe: ">="}

var errBadExpr = errors.New("source: malformed filter expression")

// expr translates e. pos is e's polarity (false under an odd number of
// NOTs): a comparison the database cannot do exactly becomes TRUE where
// positive and FALSE where negative, which can only add rows (the filter
// is monotone in each comparison once NOTs are counted), and the caller
// evaluates the whole filter again on the rows returned.
func (w *sqlWriter) expr(e filter.Expr, pos bool) (frag, error) {
	switch e := e.(type) {
	case nil:
		return frag{c: cTrue}, nil
	case filter.Compare:
		if e.Op < filter.OpEq || e.Op > filter.OpGe {
			return frag{}, errBadExpr
		}
		c, err := w.column(e.Column, e.Value.Kind())
		if err != nil {
			return frag{}, err
		}
		if c.cmp == "" {
			return w.relax(pos), nil
		}
		sql := ""
		if e.Op == filter.OpEq && pos && c.hint != "" {
			sql = c.hint + " = " + w.hintParam(e.Value) + " AND "
		}
		sql += c.cmp + " " + sqlOp[e.Op] + " " + w.param(e.Value)
		return frag{sql: "(" + sql + ")"}, nil
	case filter.In:
		if len(e.Values) == 0 {
			return frag{}, errBadExpr
		}
		c, err := w.column(e.Column, e.Values[0].Kind())
		if err != nil {
			return frag{}, err
		}
		if c.cmp == "" {
			return w.relax(pos), nil
		}
		sql := ""
		if pos && c.hint != "" {
			ps := make([]string, len(e.Values))
			for i, v := range e.Values {
				ps[i] = w.hintParam(v)
			}
			sql = c.hint + " IN (" + strings.Join(ps, ", ") + ") AND "
		}
		sql += c.cmp + " IN (" + w.params(e.Values) + ")"
		return frag{sql: "(" + sql + ")"}, nil
	case filter.Not:
		x, err := w.expr(e.X, !pos)
		if err != nil || x.c != 0 {
			return frag{c: -x.c}, err
		}
		return frag{sql: "(NOT " + x.sql + ")"}, nil
	case filter.And:
		return w.join(e.Terms, pos, " AND ", cTrue)
	case filter.Or:
		return w.join(e.Terms, pos, " OR ", cFalse)
	}
	return frag{}, errBadExpr
}

// join translates AND (unit TRUE) or OR (unit FALSE): a unit term drops
// out, the other constant decides the whole, as in three-valued logic.
func (w *sqlWriter) join(terms []filter.Expr, pos bool, op string, unit int8) (frag, error) {
	if len(terms) == 0 {
		return frag{}, errBadExpr
	}
	// A constant result drops the SQL of the terms before it: drop their
	// arguments too.
	nargs := len(w.args)
	var parts []string
	for _, t := range terms {
		if t == nil {
			return frag{}, errBadExpr
		}
		f, err := w.expr(t, pos)
		if err != nil {
			return frag{}, err
		}
		switch f.c {
		case unit:
		case -unit:
			w.args = w.args[:nargs]
			return frag{c: -unit}, nil
		default:
			parts = append(parts, f.sql)
		}
	}
	switch len(parts) {
	case 0:
		return frag{c: unit}, nil
	case 1:
		return frag{sql: parts[0]}, nil
	}
	return frag{sql: "(" + strings.Join(parts, op) + ")"}, nil
}

func (w *sqlWriter) relax(pos bool) frag {
	w.exact = false
	if pos {
		return frag{c: cTrue}
	}
	return frag{c: cFalse}
}

// column looks a filter's column up in the declaration; it is refused
// before any SQL is built if it is not declared or is compared with a
// literal of the other kind.
func (w *sqlWriter) column(name string, lit filter.Kind) (*dbColumn, error) {
	i := w.s.index(name)
	if i < 0 {
		return nil, fmt.Errorf("source: filter names column %q, which the dataset does not declare", name)
	}
	if w.s.FilterKinds()[name] != lit {
		return nil, fmt.Errorf("source: filter compares column %s with a literal of the wrong kind", name)
	}
	return &w.cols[i], nil
}

// param binds v and returns its placeholder, typed so that the database
// compares as filter.Eval does: int8 (PostgreSQL infers a parameter's type
// from the column, which may be narrower) or text (compared byte-wise).
func (w *sqlWriter) param(v filter.Value) string {
	if v.Kind() == filter.KindInt {
		w.args = append(w.args, v.Int())
		if w.d == postgres {
			return fmt.Sprintf("$%d::int8", len(w.args))
		}
		return "?"
	}
	w.args = append(w.args, v.Str())
	if w.d == postgres {
		return fmt.Sprintf("$%d::text", len(w.args))
	}
	return "CAST(? AS BINARY)"
}

// hintParam binds v for a comparison in the column's own collation (hint
// expressions are string columns).
func (w *sqlWriter) hintParam(v filter.Value) string {
	if w.d == mysql {
		w.args = append(w.args, v.Str())
		return "?"
	}
	return w.param(v)
}

func (w *sqlWriter) params(vs []filter.Value) string {
	ps := make([]string, len(vs))
	for i, v := range vs {
		ps[i] = w.param(v)
	}
	return strings.Join(ps, ", ")
}
