package source

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/unseen-data/unseen/policy/filter"
)

// Source is where a dataset's rows are read from.
type Source interface {
	// Scan calls fn for each row that q selects, in the source's order,
	// and returns what it read. The *Row is reused: it is valid only during
	// the call, though the Values it holds may be kept. An error from fn
	// stops the scan and is returned as is. A scan that meets a malformed
	// row returns a *MalformedError (fn may have seen earlier rows: discard
	// whatever it gathered). The Report is returned with any error after
	// the query was accepted.
	Scan(ctx context.Context, q Query, fn func(*Row) error) (*Report, error)
	// Validate checks the source against the declaration: a database table
	// has every declared column with a compatible type and can be read; a
	// CSV file is read in full (Scan checks the same as it goes).
	Validate(ctx context.Context) error
	// Close releases the source's connections.
	Close() error
}

// Kind is the type of a column. The names are those of the dataset
// declarations in the node's configuration.
type Kind string

const (
	KindID     Kind = "id"     // resident ID number, normalised with idnum
	KindString Kind = "string" // UTF-8 text
	KindInt    Kind = "int"    // int64; money in fen
)

// Column is a declared column.
type Column struct {
	Name string
	Kind Kind
	// Required makes a missing value malformed; for an id column it makes
	// the row one with an invalid ID ("empty"), skipped and counted.
	Required bool
}

// Schema is the declared columns of a dataset.
type Schema struct {
	Columns []Column
}

// Validate checks that column names are distinct identifiers that the
// filter language can name, and that kinds are known.
func (s Schema) Validate() error {
	if len(s.Columns) == 0 {
		return errors.New("source: schema declares no columns")
	}
	seen := map[string]bool{}
	for _, c := range s.Columns {
		if !validName(c.Name) {
			return fmt.Errorf("source: column name %q must match [A-Za-z_][A-Za-z0-9_]* (at most %d bytes)", c.Name, maxNameLen)
		}
		if seen[c.Name] {
			return fmt.Errorf("source: column %s declared twice", c.Name)
		}
		seen[c.Name] = true
		switch c.Kind {
		case KindID, KindString, KindInt:
		default:
			return fmt.Errorf("source: column %s has kind %q; want id, string or int", c.Name, c.Kind)
		}
	}
	return nil
}

// FilterKinds maps each column to the kind the filter language sees: id
// columns are strings (their normalised form).
func (s Schema) FilterKinds() map[string]filter.Kind {
	m := make(map[string]filter.Kind, len(s.Columns))
	for _, c := range s.Columns {
		if c.Kind == KindInt {
			m[c.Name] = filter.KindInt
		} else {
			m[c.Name] = filter.KindString
		}
	}
	return m
}

func (s Schema) index(name string) int {
	for i, c := range s.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// maxNameLen is PostgreSQL's identifier limit (MySQL's is 64).
const maxNameLen = 63

func validName(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// Query is what a scan reads.
type Query struct {
	// Columns are the declared columns the caller wants (a key, a value, a
	// group), in the order Row.Value indexes them.
	Columns []string
	// Filter selects rows; nil selects every row.
	Filter filter.Expr
}

// check refuses a query naming an undeclared column or a filter that does
// not type-check, before anything is read or any SQL is built.
func (s Schema) check(q Query) error {
	for _, c := range q.Columns {
		if s.index(c) < 0 {
			return fmt.Errorf("source: query names column %q, which the dataset does not declare", c)
		}
	}
	if err := filter.Check(q.Filter, s.FilterKinds()); err != nil {
		return fmt.Errorf("source: %w", err)
	}
	return nil
}

// Options bounds a scan. Zero fields take the defaults.
type Options struct {
	// MaxRows is the most rows a scan may read (valid or not); 0 is no
	// limit, since a scan's memory does not grow with it.
	MaxRows int64
	// MaxFieldBytes is the longest a value may be, in bytes of text.
	MaxFieldBytes int
	// MaxReported is how many row errors and invalid-ID examples a Report
	// keeps (all are counted).
	MaxReported int
	// AsOf is the date ID birth dates must not be after; zero means
	// idnum's fixed reference date, so a scan gives the same result on any
	// day.
	AsOf time.Time
}

// Defaults for Options.
const (
	DefaultMaxFieldBytes = 1024
	DefaultMaxReported   = 20
)

func (o Options) withDefaults() Options {
	if o.MaxFieldBytes <= 0 {
		o.MaxFieldBytes = DefaultMaxFieldBytes
	}
	if o.MaxReported <= 0 {
		o.MaxReported = DefaultMaxReported
	}
	return o
}

// Position locates a row for diagnostics without showing its data.
type Position struct {
	// Line is the 1-based line of a CSV file where the row starts (0 for a
	// database).
	Line int64
	// Row is the 1-based ordinal of the row among those the scan read.
	Row int64
	// KeyColumn and Key are a database row's row key column and its value,
	// when the dataset declares one.
	KeyColumn, Key string
}

func (p Position) String() string {
	switch {
	case p.Line > 0:
		return fmt.Sprintf("line %d", p.Line)
	case p.KeyColumn != "":
		return fmt.Sprintf("row %s=%s", p.KeyColumn, p.Key)
	}
	return fmt.Sprintf("row %d of the scan", p.Row)
}

// RowError is a problem with one row. Msg never contains a value.
type RowError struct {
	Pos    Position
	Column string // empty if the problem is with the whole row
	Msg    string
}

func (e RowError) String() string {
	if e.Column == "" {
		return fmt.Sprintf("%s: %s", e.Pos, e.Msg)
	}
	return fmt.Sprintf("%s: column %s: %s", e.Pos, e.Column, e.Msg)
}

// Report describes a scan.
type Report struct {
	// Read is the rows read: every data row of a CSV file; the rows a
	// database returned for the pushed-down filter.
	Read int64
	// Selected is the rows passed to fn.
	Selected int64
	// InvalidIDs is the rows skipped for an invalid ID number.
	InvalidIDs int64
	// InvalidIDExamples are the first few: position, column and reason,
	// never the value.
	InvalidIDExamples []RowError
	// Malformed is the malformed rows (the scan failed if > 0); Errors are
	// the first few.
	Malformed int64
	Errors    []RowError
	// Pushdown says how much of the filter the database ran: "all",
	// "part" (the rest was evaluated here on the rows returned) or "none"
	// (a CSV file, or no filter).
	Pushdown string
}

// MalformedError is returned when a scan reads malformed rows.
type MalformedError struct {
	Count  int64      // malformed rows read
	Errors []RowError // the first few
}

// errorsInMessage is how many row errors the error message spells out; the
// Report has more.
const errorsInMessage = 5

func (e *MalformedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "source: %d malformed row", e.Count)
	if e.Count != 1 {
		b.WriteString("s")
	}
	for i, re := range e.Errors {
		if i == errorsInMessage {
			break
		}
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(re.String())
	}
	if shown := int64(min(len(e.Errors), errorsInMessage)); e.Count > shown {
		fmt.Fprintf(&b, "; and %d more", e.Count-shown)
	}
	return b.String()
}
