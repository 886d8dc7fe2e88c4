// Package filter is the local filter language that a department's node
// applies to its own rows before anything leaves it, for example
//
//	district = '天河区' AND monthly_benefit_fen > 100000
//
// Grammar (keywords are case-insensitive; NOT binds tighter than AND, AND
// tighter than OR):
//
//	expr       = and { OR and }
//	and        = unary { AND unary }
//	unary      = NOT unary | "(" expr ")" | comparison
//	comparison = column op literal | column [NOT] IN "(" literal { "," literal } ")"
//	op         = "=" | "!=" | "<>" | "<" | "<=" | ">" | ">="
//	column     = [A-Za-z_][A-Za-z0-9_]*   (not a keyword)
//	literal    = 'text' ('' is a quote; UTF-8, no control or invisible
//	             characters) | [-]digits (int64)
//
// Strings compare byte-wise (so '2026-01' < '2026-10'). An empty optional
// field is null: comparisons with it are unknown and the row is not
// selected, as in SQL.
//
// The package imports nothing from the project, so the coordinator, the
// nodes and the client can all parse filters the same way.
package filter

import (
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Limits on a filter. Filters come from analysts' job specs and are parsed
// by the coordinator and every node, so they are kept small.
const (
	MaxLength      = 4096 // bytes, of the input and of its canonical form
	MaxDepth       = 32   // nesting of parentheses and NOTs
	MaxComparisons = 64   // comparisons and IN tests
)

// Error is a syntax or limit error. Pos is the 1-based byte offset of the
// problem in the input (len+1 for "at the end"), or 0 when it concerns the
// expression as a whole.
type Error struct {
	Pos int
	Msg string
}

func (e *Error) Error() string {
	if e.Pos == 0 {
		return "filter: " + e.Msg
	}
	return fmt.Sprintf("filter: at byte %d: %s", e.Pos, e.Msg)
}

// Parse parses a filter. The empty (or all-space) filter yields a nil Expr,
// which selects every row.
func Parse(s string) (Expr, error) {
	if len(s) > MaxLength {
		return nil, &Error{Pos: MaxLength + 1, Msg: fmt.Sprintf("filter is longer than %d bytes", MaxLength)}
	}
	p := &parser{lex: lexer{src: s}}
	if err := p.next(); err != nil {
		return nil, err
	}
	if p.tok.kind == tEOF {
		return nil, nil
	}
	e, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tEOF {
		return nil, p.errorf(p.tok.pos, "unexpected %s", p.tok.describe())
	}
	// Printing adds spaces, so a compact filter near the limit could have a
	// canonical form over it; refuse it here so that every accepted filter's
	// canonical form parses too.
	if n := len(e.String()); n > MaxLength {
		return nil, &Error{Msg: fmt.Sprintf("filter's canonical form is %d bytes, longer than %d", n, MaxLength)}
	}
	return e, nil
}

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tString
	tInt
	tOp
	tLParen
	tRParen
	tComma
	tAnd
	tOr
	tNot
	tIn
)

type token struct {
	kind tokKind
	pos  int // 0-based
	text string
	op   Op
	val  Value
}

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of filter"
	case tIdent:
		return "column name " + t.text
	case tString:
		return "string literal"
	case tInt:
		return "integer literal"
	case tOp:
		return "operator " + t.op.String()
	case tLParen:
		return "'('"
	case tRParen:
		return "')'"
	case tComma:
		return "','"
	}
	return "keyword " + t.text
}

type lexer struct {
	src string
	pos int
}

var keywords = map[string]tokKind{"AND": tAnd, "OR": tOr, "NOT": tNot, "IN": tIn}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

func isIdentChar(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (l *lexer) next() (token, error) {
	s := l.src
	for l.pos < len(s) && (s[l.pos] == ' ' || s[l.pos] == '\t' || s[l.pos] == '\n' || s[l.pos] == '\r') {
		l.pos++
	}
	start := l.pos
	if start == len(s) {
		return token{kind: tEOF, pos: start}, nil
	}
	c := s[start]
	switch {
	case isIdentStart(c):
		for l.pos < len(s) && isIdentChar(s[l.pos]) {
			l.pos++
		}
		text := s[start:l.pos]
		if k, ok := keywords[upper(text)]; ok {
			return token{kind: k, pos: start, text: upper(text)}, nil
		}
		return token{kind: tIdent, pos: start, text: text}, nil
	case isDigit(c) || c == '-':
		l.pos++
		if c == '-' && (l.pos == len(s) || !isDigit(s[l.pos])) {
			return token{}, &Error{Pos: start + 1, Msg: "'-' must be followed by digits"}
		}
		for l.pos < len(s) && isDigit(s[l.pos]) {
			l.pos++
		}
		if l.pos < len(s) && s[l.pos] == '.' {
			return token{}, &Error{Pos: l.pos + 1, Msg: "decimals are not supported; use integers (money in fen)"}
		}
		if l.pos < len(s) && isIdentChar(s[l.pos]) {
			return token{}, &Error{Pos: l.pos + 1, Msg: "a number must not run into a name"}
		}
		n, err := strconv.ParseInt(s[start:l.pos], 10, 64)
		if err != nil {
			return token{}, &Error{Pos: start + 1, Msg: "integer out of the int64 range"}
		}
		return token{kind: tInt, pos: start, val: IntValue(n)}, nil
	case c == '\'':
		return l.lexString()
	case c == '(':
		l.pos++
		return token{kind: tLParen, pos: start}, nil
	case c == ')':
		l.pos++
		return token{kind: tRParen, pos: start}, nil
	case c == ',':
		l.pos++
		return token{kind: tComma, pos: start}, nil
	case c == '=':
		l.pos++
		return token{kind: tOp, pos: start, op: OpEq}, nil
	case c == '!':
		if l.pos+1 < len(s) && s[l.pos+1] == '=' {
			l.pos += 2
			return token{kind: tOp, pos: start, op: OpNe}, nil
		}
	case c == '<' || c == '>':
		l.pos++
		two := ""
		if l.pos < len(s) {
			two = s[start : l.pos+1]
		}
		op := OpLt
		switch {
		case two == "<=":
			op = OpLe
		case two == "<>":
			op = OpNe
		case two == ">=":
			op = OpGe
		case c == '>':
			op = OpGt
		}
		if op == OpLe || op == OpGe || op == OpNe {
			l.pos++
		}
		return token{kind: tOp, pos: start, op: op}, nil
	}
	r, _ := utf8.DecodeRuneInString(s[start:])
	if r == utf8.RuneError {
		return token{}, &Error{Pos: start + 1, Msg: "invalid UTF-8"}
	}
	return token{}, &Error{Pos: start + 1, Msg: fmt.Sprintf("unexpected character %q", r)}
}

func (l *lexer) lexString() (token, error) {
	s := l.src
	start := l.pos
	l.pos++ // opening quote
	var b []byte
	for {
		if l.pos >= len(s) {
			return token{}, &Error{Pos: start + 1, Msg: "unterminated string literal"}
		}
		c := s[l.pos]
		if c == '\'' {
			if l.pos+1 < len(s) && s[l.pos+1] == '\'' {
				b = append(b, '\'')
				l.pos += 2
				continue
			}
			l.pos++
			return token{kind: tString, pos: start, val: StringValue(string(b))}, nil
		}
		if c < 0x20 || c == 0x7f {
			return token{}, &Error{Pos: l.pos + 1, Msg: "control character in string literal"}
		}
		r, size := utf8.DecodeRuneInString(s[l.pos:])
		if r == utf8.RuneError && size == 1 {
			return token{}, &Error{Pos: l.pos + 1, Msg: "invalid UTF-8 in string literal"}
		}
		// Invisible characters (bidi overrides, zero-width spaces) would let a
		// filter read differently in a review or an audit log from what it
		// matches.
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return token{}, &Error{Pos: l.pos + 1, Msg: fmt.Sprintf("invisible character %U in string literal", r)}
		}
		b = append(b, s[l.pos:l.pos+size]...)
		l.pos += size
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

type parser struct {
	lex         lexer
	tok         token
	depth       int
	comparisons int
}

func (p *parser) next() error {
	t, err := p.lex.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

func (p *parser) errorf(pos int, format string, args ...any) error {
	return &Error{Pos: pos + 1, Msg: fmt.Sprintf(format, args...)}
}

// enter counts one level of nesting opened at pos.
func (p *parser) enter(pos int) error {
	p.depth++
	if p.depth > MaxDepth {
		return p.errorf(pos, "nested more than %d levels deep", MaxDepth)
	}
	return nil
}

func (p *parser) parseOr() (Expr, error) {
	var terms []Expr
	for {
		e, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		if o, ok := e.(Or); ok { // (a OR b) OR c is a OR b OR c
			terms = append(terms, o.Terms...)
		} else {
			terms = append(terms, e)
		}
		if p.tok.kind != tOr {
			break
		}
		if err := p.next(); err != nil {
			return nil, err
		}
	}
	if len(terms) == 1 {
		return terms[0], nil
	}
	return Or{Terms: terms}, nil
}

func (p *parser) parseAnd() (Expr, error) {
	var terms []Expr
	for {
		e, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		if a, ok := e.(And); ok {
			terms = append(terms, a.Terms...)
		} else {
			terms = append(terms, e)
		}
		if p.tok.kind != tAnd {
			break
		}
		if err := p.next(); err != nil {
			return nil, err
		}
	}
	if len(terms) == 1 {
		return terms[0], nil
	}
	return And{Terms: terms}, nil
}

func (p *parser) parseUnary() (Expr, error) {
	switch p.tok.kind {
	case tNot:
		if err := p.enter(p.tok.pos); err != nil {
			return nil, err
		}
		if err := p.next(); err != nil {
			return nil, err
		}
		x, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		p.depth--
		return Not{X: x}, nil
	case tLParen:
		open := p.tok.pos
		if err := p.enter(open); err != nil {
			return nil, err
		}
		if err := p.next(); err != nil {
			return nil, err
		}
		e, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if p.tok.kind != tRParen {
			return nil, p.errorf(p.tok.pos, "expected ')' to close the '(' at byte %d, found %s", open+1, p.tok.describe())
		}
		p.depth--
		return e, p.next()
	case tIdent:
		return p.parseComparison()
	}
	return nil, p.errorf(p.tok.pos, "expected a column name, NOT or '(', found %s", p.tok.describe())
}

func (p *parser) parseComparison() (Expr, error) {
	col := p.tok
	p.comparisons++
	if p.comparisons > MaxComparisons {
		return nil, p.errorf(col.pos, "more than %d comparisons", MaxComparisons)
	}
	if err := p.next(); err != nil {
		return nil, err
	}
	switch p.tok.kind {
	case tOp:
		op := p.tok.op
		if err := p.next(); err != nil {
			return nil, err
		}
		v, err := p.literal()
		if err != nil {
			return nil, err
		}
		return Compare{Column: col.text, Op: op, Value: v}, nil
	case tNot:
		// "x NOT IN (...)" prints as "NOT x IN (...)", so it counts as a
		// level of nesting like any NOT.
		if err := p.enter(p.tok.pos); err != nil {
			return nil, err
		}
		p.depth--
		if err := p.next(); err != nil {
			return nil, err
		}
		if p.tok.kind != tIn {
			return nil, p.errorf(p.tok.pos, "expected IN after NOT, found %s", p.tok.describe())
		}
		in, err := p.inList(col.text)
		if err != nil {
			return nil, err
		}
		return Not{X: in}, nil
	case tIn:
		return p.inList(col.text)
	}
	return nil, p.errorf(p.tok.pos, "expected an operator or IN after %s, found %s", col.describe(), p.tok.describe())
}

// inList parses "IN ( literal, ... )" with p.tok at IN.
func (p *parser) inList(col string) (Expr, error) {
	if err := p.next(); err != nil {
		return nil, err
	}
	if p.tok.kind != tLParen {
		return nil, p.errorf(p.tok.pos, "expected '(' after IN, found %s", p.tok.describe())
	}
	if err := p.next(); err != nil {
		return nil, err
	}
	var vals []Value
	for {
		pos := p.tok.pos
		v, err := p.literal()
		if err != nil {
			return nil, err
		}
		if len(vals) > 0 && v.kind != vals[0].kind {
			return nil, p.errorf(pos, "IN list mixes string and integer literals")
		}
		vals = append(vals, v)
		if p.tok.kind == tRParen {
			return In{Column: col, Values: vals}, p.next()
		}
		if p.tok.kind != tComma {
			return nil, p.errorf(p.tok.pos, "expected ',' or ')' in IN list, found %s", p.tok.describe())
		}
		if err := p.next(); err != nil {
			return nil, err
		}
	}
}

// literal consumes a string or integer literal.
func (p *parser) literal() (Value, error) {
	if p.tok.kind != tString && p.tok.kind != tInt {
		return Value{}, p.errorf(p.tok.pos, "expected a 'string' or integer literal, found %s", p.tok.describe())
	}
	v := p.tok.val
	return v, p.next()
}
