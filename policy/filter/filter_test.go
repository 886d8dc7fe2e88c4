package filter

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseCanonical(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{" \t\r\n ", ""},
		{"district = '天河区' AND monthly_benefit_fen > 100000", "district = '天河区' AND monthly_benefit_fen > 100000"},
		{"a=1", "a = 1"},
		{"a!=1", "a != 1"},
		{"a<>1", "a != 1"},
		{"a<1 or a<=2 OR a>3 Or a>=-4", "a < 1 OR a <= 2 OR a > 3 OR a >= -4"},
		{"a < -5", "a < -5"},
		{"a<-5", "a < -5"},
		{"a = 007", "a = 7"},
		{"a = -0", "a = 0"},
		{"a = 9223372036854775807", "a = 9223372036854775807"},
		{"a = -9223372036854775808", "a = -9223372036854775808"},
		{"name = 'O''Brien'", "name = 'O''Brien'"},
		{"name = ''''", "name = ''''"},
		{"name = ''", "name = ''"},
		{"x in ('a','b' , 'c')", "x IN ('a', 'b', 'c')"},
		{"x IN (1)", "x IN (1)"},
		{"x not in (1, 2)", "NOT x IN (1, 2)"},
		{"not a = 1", "NOT a = 1"},
		{"NOT NOT a = 1", "NOT NOT a = 1"},
		{"NOT (a = 1)", "NOT a = 1"},
		{"NOT (a = 1 AND b = 2)", "NOT (a = 1 AND b = 2)"},
		{"(((a = 1)))", "a = 1"},
		// AND binds tighter than OR, so only the second needs parentheses.
		{"a = 1 OR b = 2 AND c = 3", "a = 1 OR b = 2 AND c = 3"},
		{"(a = 1 OR b = 2) AND c = 3", "(a = 1 OR b = 2) AND c = 3"},
		{"(a = 1 AND b = 2) OR c = 3", "a = 1 AND b = 2 OR c = 3"},
		// Same-operator groups are flattened.
		{"a = 1 AND (b = 2 AND c = 3)", "a = 1 AND b = 2 AND c = 3"},
		{"(a = 1 OR b = 2) OR (c = 3 OR d = 4)", "a = 1 OR b = 2 OR c = 3 OR d = 4"},
		{"_x9 = 1", "_x9 = 1"},
		{"AnD_col = 1", "AnD_col = 1"}, // a keyword prefix is still a name
		{"start_month >= '2026-01'", "start_month >= '2026-01'"},
	} {
		e, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		got := ""
		if e != nil {
			got = e.String()
		}
		if got != tc.want {
			t.Errorf("Parse(%q).String() = %q; want %q", tc.in, got, tc.want)
		}
		e2, err := Parse(got)
		if err != nil || !reflect.DeepEqual(e, e2) {
			t.Errorf("reparse of %q = %#v, %v; want %#v", got, e2, err, e)
		}
	}
}

func TestParseTree(t *testing.T) {
	e, err := Parse("district IN ('天河区', '越秀区') AND NOT (a < 1 OR b = 'x')")
	if err != nil {
		t.Fatal(err)
	}
	want := And{Terms: []Expr{
		In{Column: "district", Values: []Value{StringValue("天河区"), StringValue("越秀区")}},
		Not{X: Or{Terms: []Expr{
			Compare{Column: "a", Op: OpLt, Value: IntValue(1)},
			Compare{Column: "b", Op: OpEq, Value: StringValue("x")},
		}}},
	}}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("got %#v\nwant %#v", e, want)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		in  string
		pos int
		msg string
	}{
		{"a", 2, "expected an operator or IN after column name a, found end of filter"},
		{"a =", 4, "expected a 'string' or integer literal, found end of filter"},
		{"a = b", 5, "expected a 'string' or integer literal, found column name b"},
		{"1 = a", 1, "expected a column name, NOT or '(', found integer literal"},
		{"a = 1 b = 2", 7, "unexpected column name b"},
		{"a = 1 AND", 10, "expected a column name"},
		{"a = 1 AND OR b = 1", 11, "found keyword OR"},
		{"(a = 1", 7, "expected ')' to close the '(' at byte 1, found end of filter"},
		{"a = 1)", 6, "unexpected ')'"},
		{"()", 2, "expected a column name"},
		{"a == 1", 4, "expected a 'string' or integer literal, found operator ="},
		{"a ! 1", 3, "unexpected character '!'"},
		{"a = 'abc", 5, "unterminated string literal"},
		{"a = 'it''s", 5, "unterminated string literal"},
		{"a = 'x\ny'", 7, "control character in string literal"},
		{"a = '\xff'", 6, "invalid UTF-8 in string literal"},
		{"a = '天\u202e区'", 9, "invisible character U+202E in string literal"},
		{"a = 'x\u200b'", 7, "invisible character U+200B"},
		{"a = '\u0085'", 6, "invisible character U+0085"},
		{"a = \xff", 5, "invalid UTF-8"},
		{"区 = 'x'", 1, "unexpected character '区'"},
		{"a = 1.5", 6, "decimals are not supported"},
		{"a = 12abc", 7, "must not run into a name"},
		{"a = -", 5, "'-' must be followed by digits"},
		{"a = - 1", 5, "'-' must be followed by digits"},
		{"a = 9223372036854775808", 5, "integer out of the int64 range"},
		{"a = \"x\"", 5, "unexpected character '\"'"},
		{"a IN ()", 7, "expected a 'string' or integer literal, found ')'"},
		{"a IN 1", 6, "expected '(' after IN"},
		{"a IN (1 2)", 9, "expected ',' or ')' in IN list"},
		{"a IN (1, 'x')", 10, "IN list mixes string and integer literals"},
		{"a NOT = 1", 7, "expected IN after NOT"},
		{"and = 1", 1, "found keyword AND"},
		{"NOT", 4, "found end of filter"},
	} {
		_, err := Parse(tc.in)
		var fe *Error
		if !errors.As(err, &fe) {
			t.Errorf("Parse(%q) = %v; want *Error", tc.in, err)
			continue
		}
		if fe.Pos != tc.pos || !strings.Contains(fe.Msg, tc.msg) {
			t.Errorf("Parse(%q) = %v; want byte %d, %q", tc.in, err, tc.pos, tc.msg)
		}
	}
}

func TestLimits(t *testing.T) {
	// Length: 4096 bytes is fine, 4097 is not.
	pad := strings.Repeat(" ", MaxLength-len("a = 1"))
	if _, err := Parse("a = 1" + pad); err != nil {
		t.Errorf("%d bytes: %v", MaxLength, err)
	}
	expectErr(t, "a = 1"+pad+" ", MaxLength+1, "longer than 4096 bytes")

	// Nesting: 32 levels are fine, 33 are not, however they are made.
	nest := func(n int, open, close string) string {
		return strings.Repeat(open, n) + "a = 1" + strings.Repeat(close, n)
	}
	for _, s := range []string{nest(MaxDepth, "(", ")"), nest(MaxDepth, "NOT ", ""), nest(MaxDepth/2, "NOT (", ")")} {
		if _, err := Parse(s); err != nil {
			t.Errorf("depth %d: %v", MaxDepth, err)
		}
	}
	// Depth is released when a group closes.
	if _, err := Parse(nest(MaxDepth, "(", ")") + " OR " + nest(MaxDepth, "(", ")")); err != nil {
		t.Errorf("two groups of depth %d: %v", MaxDepth, err)
	}
	expectErr(t, nest(MaxDepth+1, "(", ")"), MaxDepth+1, "nested more than 32 levels")
	expectErr(t, nest(MaxDepth+1, "NOT ", ""), 4*MaxDepth+1, "nested more than 32 levels")
	// "x NOT IN" prints as "NOT x IN", so it counts as a level too.
	deepIn := strings.Repeat("(", MaxDepth) + "x NOT IN (1)" + strings.Repeat(")", MaxDepth)
	expectErr(t, deepIn, MaxDepth+3, "nested more than 32 levels")
	okIn := strings.Repeat("(", MaxDepth-1) + "x NOT IN (1)" + strings.Repeat(")", MaxDepth-1)
	if _, err := Parse(okIn); err != nil {
		t.Errorf("NOT IN at depth 32: %v", err)
	}

	// Comparisons: an IN counts as one.
	terms := make([]string, MaxComparisons)
	for i := range terms {
		terms[i] = "c IN (1, 2, 3)"
	}
	if _, err := Parse(strings.Join(terms, " OR ")); err != nil {
		t.Errorf("%d comparisons: %v", MaxComparisons, err)
	}
	s := strings.Join(terms, " OR ") + " OR d = 1"
	expectErr(t, s, len(s)-len("d = 1")+1, "more than 64 comparisons")

	// A compact filter whose canonical form would exceed the limit.
	compact := "a IN(" + strings.Repeat("1,", 2040) + "1)"
	if len(compact) > MaxLength {
		t.Fatalf("test input too long: %d", len(compact))
	}
	expectErr(t, compact, 0, "canonical form is 6128 bytes")
}

func expectErr(t *testing.T, in string, pos int, msg string) {
	t.Helper()
	_, err := Parse(in)
	var fe *Error
	if !errors.As(err, &fe) || fe.Pos != pos || !strings.Contains(fe.Msg, msg) {
		t.Errorf("Parse(%.40q…) = %v; want byte %d, %q", in, err, pos, msg)
	}
}

func TestColumns(t *testing.T) {
	e, err := Parse("b = 1 OR (a = 'x' AND NOT b IN (2)) OR c_1 NOT IN ('y')")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := Columns(e), []string{"a", "b", "c_1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Columns = %v; want %v", got, want)
	}
	if got := Columns(nil); len(got) != 0 {
		t.Errorf("Columns(nil) = %v", got)
	}
}

func TestEval(t *testing.T) {
	row := MapRow{
		"district":            StringValue("天河区"),
		"monthly_benefit_fen": IntValue(150000),
		"start_month":         StringValue("2026-03"),
		"name":                StringValue("O'Brien"),
		"household_size":      Null(),
	}
	for _, tc := range []struct {
		filter string
		want   bool
	}{
		{"", true},
		{"district = '天河区' AND monthly_benefit_fen > 100000", true},
		{"district = '越秀区' AND monthly_benefit_fen > 100000", false},
		{"district = '越秀区' OR monthly_benefit_fen >= 150000", true},
		{"monthly_benefit_fen > 150000", false},
		{"monthly_benefit_fen <= 150000", true},
		{"monthly_benefit_fen < 150000", false},
		{"monthly_benefit_fen != 150000", false},
		{"monthly_benefit_fen <> 1", true},
		{"monthly_benefit_fen IN (1, 150000)", true},
		{"monthly_benefit_fen NOT IN (1, 150000)", false},
		{"district IN ('越秀区', '海珠区')", false},
		{"start_month >= '2026-01' AND start_month < '2026-10'", true}, // byte-wise
		{"name = 'O''Brien'", true},
		{"NOT district = '天河区'", false},
		{"NOT NOT district = '天河区'", true},
		// Null: the comparison is unknown, and so is its negation.
		{"household_size = 1", false},
		{"household_size != 1", false},
		{"NOT household_size = 1", false},
		{"household_size IN (1, 2)", false},
		{"household_size = 1 OR district = '天河区'", true},
		{"NOT (household_size = 1 AND district = '越秀区')", true}, // unknown AND false = false
		{"NOT (household_size = 1 OR district = '越秀区')", false}, // unknown OR false = unknown
	} {
		e, err := Parse(tc.filter)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.filter, err)
		}
		got, err := Eval(e, row)
		if err != nil || got != tc.want {
			t.Errorf("Eval(%q) = %v, %v; want %v", tc.filter, got, err, tc.want)
		}
	}
}

func TestEvalErrors(t *testing.T) {
	row := RowFunc(func(col string) (Value, bool) {
		switch col {
		case "district":
			return StringValue("天河区"), true
		case "n":
			return IntValue(3), true
		}
		return Value{}, false
	})
	for _, tc := range []struct{ filter, msg string }{
		{"district = 5", "column district is string but is compared with an integer literal"},
		{"n = '3'", "column n is int but is compared with a string literal"},
		{"n IN ('3')", "column n is int but is compared with a string literal"},
		{"missing = 1", `no column "missing"`},
		{"n = 3 AND district > 0", "column district is string"},
	} {
		e, err := Parse(tc.filter)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Eval(e, row); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Eval(%q) = %v; want %q", tc.filter, err, tc.msg)
		}
	}
	// Hand-built trees that Parse never returns are errors, not panics.
	for _, e := range []Expr{Not{}, And{Terms: []Expr{nil}}, In{Column: "n"}, Compare{Column: "n", Value: IntValue(1)}} {
		if _, err := Eval(e, row); err == nil {
			t.Errorf("Eval(%#v) succeeded", e)
		}
		if err := Check(e, map[string]Kind{"n": KindInt}); err == nil && !isCompare(e) {
			t.Errorf("Check(%#v) succeeded", e)
		}
		_ = e.String()
	}
}

func isCompare(e Expr) bool { _, ok := e.(Compare); return ok }

func TestCheck(t *testing.T) {
	types := map[string]Kind{
		"district":            KindString,
		"id_number":           KindString,
		"monthly_benefit_fen": KindInt,
		"odd":                 "id",
	}
	for _, tc := range []struct{ filter, msg string }{
		{"", ""},
		{"district = '天河区' AND monthly_benefit_fen > 100000", ""},
		{"NOT (district IN ('a') OR monthly_benefit_fen IN (1, 2))", ""},
		{"district = 1", "column district is string but is compared with an integer literal"},
		{"monthly_benefit_fen >= '100'", "column monthly_benefit_fen is int but is compared with a string literal"},
		{"district = 'x' OR nope = 1", "unknown column nope"},
		{"a = 1 AND nope = 1", "unknown column a"}, // the first problem, in reading order
		{"odd = 'x'", `column odd has kind "id"`},
	} {
		e, err := Parse(tc.filter)
		if err != nil {
			t.Fatal(err)
		}
		err = Check(e, types)
		if tc.msg == "" && err != nil || tc.msg != "" && (err == nil || !strings.Contains(err.Error(), tc.msg)) {
			t.Errorf("Check(%q) = %v; want %q", tc.filter, err, tc.msg)
		}
	}
}

func FuzzParse(f *testing.F) {
	// More seeds are in testdata/fuzz/FuzzParse.
	f.Add("district = '天河区' AND monthly_benefit_fen > 100000")
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(s)
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) || fe.Pos < 0 || fe.Pos > len(s)+1 {
				t.Fatalf("Parse(%q): bad error %v", s, err)
			}
			return
		}
		if e == nil {
			if strings.Trim(s, " \t\r\n") != "" {
				t.Fatalf("Parse(%q) = nil", s)
			}
			return
		}
		canon := e.String()
		e2, err := Parse(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, s, err)
		}
		if got := e2.String(); got != canon {
			t.Fatalf("not canonical: %q → %q → %q", s, canon, got)
		}
		if !reflect.DeepEqual(e, e2) {
			t.Fatalf("reparse of %q differs: %#v vs %#v", canon, e, e2)
		}
		_ = Columns(e)
		row := RowFunc(func(col string) (Value, bool) {
			if len(col)%2 == 0 {
				return IntValue(int64(len(col))), true
			}
			return StringValue(col), true
		})
		_, _ = Eval(e, row)
		_ = Check(e, map[string]Kind{"a": KindInt})
	})
}
