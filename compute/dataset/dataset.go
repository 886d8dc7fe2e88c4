// Package dataset loads a department's CSV dataset into memory, validating it
// against the columns the department declared, and gives the node the rows
// a job's filter selects: their distinct keys and their values.
//
// Load policy (section 7 of the design: bad input gets a clear error and
// changes nothing):
//
//   - The first row is the header. It must name every declared column;
//     other columns are ignored. A UTF-8 byte order mark is skipped, and CRLF
//     line ends are accepted.
//   - A malformed row (wrong number of fields, a quote error, a non-integer
//     in an int column, an empty required field, a field over the size
//     limit, text that is not UTF-8) makes the whole load fail, with an
//     error listing the first problems by 1-based line number. Rows are never
//     silently dropped: a dataset with a hole in it would give wrong answers
//     that look right.
//   - A row whose id column is not a valid resident ID number (bad check
//     digit, impossible birth date, empty in a required column) is counted
//     and skipped, and reported by line number and reason only, never by
//     value, since the value is personal data. Such rows are routine in
//     administrative data and must not stop a job.
//   - Surrounding white space is trimmed from every field; an empty field of
//     an optional column is null.
package dataset

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

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
	Name     string `yaml:"name" json:"name"`
	Kind     Kind   `yaml:"kind" json:"kind"`
	Required bool   `yaml:"required" json:"required,omitempty"`
}

// Schema is the declared columns of a dataset.
type Schema struct {
	Columns []Column `yaml:"columns" json:"columns"`
}

// Validate checks that column names are distinct identifiers that the
// filter language can name, and that kinds are known.
func (s Schema) Validate() error {
	if len(s.Columns) == 0 {
		return errors.New("dataset: schema declares no columns")
	}
	seen := map[string]bool{}
	for _, c := range s.Columns {
		if !validName(c.Name) {
			return fmt.Errorf("dataset: column name %q must match [A-Za-z_][A-Za-z0-9_]*", c.Name)
		}
		if seen[c.Name] {
			return fmt.Errorf("dataset: column %s declared twice", c.Name)
		}
		seen[c.Name] = true
		switch c.Kind {
		case KindID, KindString, KindInt:
		default:
			return fmt.Errorf("dataset: column %s has kind %q; want id, string or int", c.Name, c.Kind)
		}
	}
	return nil
}

func validName(s string) bool {
	if s == "" {
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

// Options bounds a load. Zero fields take the defaults.
type Options struct {
	// MaxRows is the most data rows (not counting the header) a file may
	// have, valid or not.
	MaxRows int
	// MaxFieldBytes is the longest a field may be.
	MaxFieldBytes int
	// MaxReported is how many row errors and invalid-ID examples the
	// Report keeps (all are counted).
	MaxReported int
	// AsOf is the date ID birth dates must not be after; zero means
	// idnum's fixed reference date, so a load gives the same result on any
	// day.
	AsOf time.Time
}

// Defaults for Options.
const (
	DefaultMaxRows       = 10_000_000
	DefaultMaxFieldBytes = 1024
	DefaultMaxReported   = 20
)

func (o Options) withDefaults() Options {
	if o.MaxRows <= 0 {
		o.MaxRows = DefaultMaxRows
	}
	if o.MaxFieldBytes <= 0 {
		o.MaxFieldBytes = DefaultMaxFieldBytes
	}
	if o.MaxReported <= 0 {
		o.MaxReported = DefaultMaxReported
	}
	return o
}

// RowError is a problem with one row. Msg never contains an ID value.
type RowError struct {
	Line   int    // 1-based line of the file where the row starts
	Column string // empty if the problem is with the whole row
	Msg    string
}

func (e RowError) String() string {
	if e.Column == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("line %d: column %s: %s", e.Line, e.Column, e.Msg)
}

// Report describes a load.
type Report struct {
	Rows       int // data rows read, valid or not
	Loaded     int // rows in the table
	InvalidIDs int // rows skipped for an invalid ID number
	// InvalidIDExamples are the first few skipped rows: line, column and
	// reason, never the value.
	InvalidIDExamples []RowError
	Malformed         int        // malformed rows (the load failed if > 0)
	Errors            []RowError // the first few malformed rows
}

// MalformedError is returned when a file has malformed rows.
type MalformedError struct {
	Count  int        // malformed rows in the file
	Errors []RowError // the first few
}

// errorsInMessage is how many row errors the error message spells out; the
// Report has more.
const errorsInMessage = 5

func (e *MalformedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dataset: %d malformed row", e.Count)
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
	if shown := min(len(e.Errors), errorsInMessage); e.Count > shown {
		fmt.Fprintf(&b, "; and %d more", e.Count-shown)
	}
	return b.String()
}
