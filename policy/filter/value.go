package filter

import (
	"strconv"
	"strings"
)

// Kind is the type of a column or a literal. The names match the column
// kinds of dataset declarations; an "id" column is a KindString here.
type Kind string

const (
	KindString Kind = "string"
	KindInt    Kind = "int"
)

// Value is a string, an int64 or null (the zero Value: an empty optional
// field). Comparisons with null are neither true nor false, as in SQL.
type Value struct {
	kind Kind
	s    string
	i    int64
}

// StringValue returns a string Value.
func StringValue(s string) Value { return Value{kind: KindString, s: s} }

// IntValue returns an integer Value.
func IntValue(i int64) Value { return Value{kind: KindInt, i: i} }

// Null returns the null Value.
func Null() Value { return Value{} }

// Kind returns KindString, KindInt, or "" for null.
func (v Value) Kind() Kind { return v.kind }

// IsNull reports whether v is null.
func (v Value) IsNull() bool { return v.kind == "" }

// Str returns the string of a string Value ("" otherwise).
func (v Value) Str() string { return v.s }

// Int returns the integer of an integer Value (0 otherwise).
func (v Value) Int() int64 { return v.i }

// String returns v as a literal of the filter language: 'text' with quotes
// doubled, a decimal integer, or NULL (which the language cannot express).
func (v Value) String() string {
	switch v.kind {
	case KindString:
		return "'" + strings.ReplaceAll(v.s, "'", "''") + "'"
	case KindInt:
		return strconv.FormatInt(v.i, 10)
	}
	return "NULL"
}

// compare returns -1, 0 or 1; both values have the same non-null kind.
func compare(a, b Value) int {
	if a.kind == KindInt {
		switch {
		case a.i < b.i:
			return -1
		case a.i > b.i:
			return 1
		}
		return 0
	}
	return strings.Compare(a.s, b.s)
}
