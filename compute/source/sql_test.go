package source

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unseen-data/unseen/policy/filter"
)

// The schema of the translation tests and of the random equivalence tests
// against real databases: an id column, text columns in different
// collations and a char(8), and ints of three widths.
var randSchema = Schema{Columns: []Column{
	{Name: "id", Kind: KindID},
	{Name: "s1", Kind: KindString},
	{Name: "s2", Kind: KindString},
	{Name: "s3", Kind: KindString},
	{Name: "i1", Kind: KindInt},
	{Name: "i2", Kind: KindInt},
	{Name: "i3", Kind: KindInt},
}}

// testColumns is how the databases of the tests store randSchema.
func testColumns(d dialect) []dbColumn {
	cols := make([]dbColumn, len(randSchema.Columns))
	for i, c := range randSchema.Columns {
		var err error
		if d == postgres {
			oid := map[string]int64{"id": oidVarchar, "s1": oidVarchar, "s2": oidText, "s3": oidBpchar, "i1": oidInt8, "i2": oidInt4, "i3": oidInt2}[c.Name]
			cols[i], err = pgColumn(c, oid, "t")
		} else {
			data := map[string]string{"id": "varchar", "s1": "varchar", "s2": "text", "s3": "char", "i1": "bigint", "i2": "int", "i3": "int"}[c.Name]
			cols[i], err = myColumn(c, data, data, "utf8mb4")
		}
		if err != nil {
			panic(err)
		}
	}
	return cols
}

// Values the random filters and rows are made of: case variants, trailing
// and leading spaces, unicode that case-insensitive or normalising
// collations would equate, quotes and SQL, and the int boundaries.
var (
	strPool = []string{
		"", " ", "a", "A", "a ", "a  ", " a", "ab", "aB", "AB", "abc", "b", "B", "z",
		"天河区", "天河区 ", "海珠区", "é", "e\u0301", "E\u0301", "ß", "ss", "SS", "ẞ", "ﬁ", "fi",
		"İ", "i", "I", "ı", "😀", "😀a", "Ω", "\u2126", "\u00a0a", "a\u3000", "'", "''",
		"'; DROP TABLE x; --", "%", "_", "\\", "a\\b", "~", "ǅ", "Ǆ",
	}
	intPool = []int64{
		0, 1, -1, 2, 100, -100, 32767, -32768, 32768, 65535,
		1<<31 - 1, -1 << 31, 1 << 31, 1<<32 - 1, 1 << 32,
		1<<63 - 1, -1 << 63, -1<<63 + 1, 1<<63 - 2,
	}
	idPool = []string{tianhe, haizhu, xID, strings.ToLower(xID), " " + tianhe + " ", "440106199001011236", "bad"}
)

// randFilter makes a random filter over randSchema. ids gives the chance
// that a comparison is on the id column (which the databases cannot
// compare exactly, so it is evaluated at the node).
func randFilter(r *rand.Rand, depth int, ids float64) filter.Expr {
	if depth <= 0 || r.IntN(3) == 0 {
		return randAtom(r, ids)
	}
	switch r.IntN(3) {
	case 0:
		return filter.Not{X: randFilter(r, depth-1, ids)}
	case 1:
		terms := make([]filter.Expr, 2+r.IntN(2))
		for i := range terms {
			terms[i] = randFilter(r, depth-1, ids)
		}
		return filter.And{Terms: terms}
	}
	terms := make([]filter.Expr, 2+r.IntN(2))
	for i := range terms {
		terms[i] = randFilter(r, depth-1, ids)
	}
	return filter.Or{Terms: terms}
}

func randAtom(r *rand.Rand, ids float64) filter.Expr {
	var col string
	var lit func() filter.Value
	switch {
	case r.Float64() < ids:
		col = "id"
		lit = func() filter.Value {
			return filter.StringValue(strings.TrimSpace(strings.ToUpper(idPool[r.IntN(len(idPool))])))
		}
	case r.IntN(2) == 0:
		col = []string{"s1", "s2", "s3"}[r.IntN(3)]
		lit = func() filter.Value { return filter.StringValue(strPool[r.IntN(len(strPool))]) }
	default:
		col = []string{"i1", "i2", "i3"}[r.IntN(3)]
		lit = func() filter.Value { return filter.IntValue(intPool[r.IntN(len(intPool))]) }
	}
	if r.IntN(4) == 0 {
		vals := make([]filter.Value, 1+r.IntN(4))
		for i := range vals {
			vals[i] = lit()
		}
		return filter.In{Column: col, Values: vals}
	}
	return filter.Compare{Column: col, Op: filter.Op(1 + r.IntN(6)), Value: lit()}
}

// canonical round-trips a generated filter through the parser, so the
// tests use filters exactly as a job would deliver them.
func canonical(t testing.TB, e filter.Expr) filter.Expr {
	t.Helper()
	p, err := filter.Parse(e.String())
	if err != nil {
		t.Fatalf("generated filter %s does not parse: %v", e, err)
	}
	return p
}

// mapLiterals replaces every literal with f's.
func mapLiterals(e filter.Expr, f func(filter.Value) filter.Value) filter.Expr {
	switch e := e.(type) {
	case filter.Compare:
		e.Value = f(e.Value)
		return e
	case filter.In:
		vs := make([]filter.Value, len(e.Values))
		for i, v := range e.Values {
			vs[i] = f(v)
		}
		e.Values = vs
		return e
	case filter.Not:
		return filter.Not{X: mapLiterals(e.X, f)}
	case filter.And:
		ts := make([]filter.Expr, len(e.Terms))
		for i, t := range e.Terms {
			ts[i] = mapLiterals(t, f)
		}
		return filter.And{Terms: ts}
	case filter.Or:
		ts := make([]filter.Expr, len(e.Terms))
		for i, t := range e.Terms {
			ts[i] = mapLiterals(t, f)
		}
		return filter.Or{Terms: ts}
	}
	return e
}

func dummy(v filter.Value) filter.Value {
	if v.Kind() == filter.KindInt {
		return filter.IntValue(7)
	}
	return filter.StringValue("x")
}

// checkLiteralFree asserts what makes the translation injection-proof:
// the SQL text is the same whatever the literals are, and every literal is
// a bound argument.
func checkLiteralFree(t testing.TB, d dialect, e filter.Expr) *plan {
	t.Helper()
	cols := testColumns(d)
	q := Query{Columns: []string{"s1"}, Filter: e}
	p, err := buildPlan(d, "t", randSchema, cols, "", q)
	if err != nil {
		t.Fatalf("%s: %v", e, err)
	}
	p2, err := buildPlan(d, "t", randSchema, cols, "", Query{Columns: q.Columns, Filter: mapLiterals(e, dummy)})
	if err != nil {
		t.Fatal(err)
	}
	if p.sql != p2.sql || len(p.args) != len(p2.args) {
		t.Fatalf("SQL depends on the literals:\n%s\n%s", p.sql, p2.sql)
	}
	ph := strings.Count(p.sql, "?")
	if d == postgres {
		ph = strings.Count(p.sql, "$")
	}
	if ph != len(p.args) {
		t.Fatalf("%d placeholders, %d args: %s", ph, len(p.args), p.sql)
	}
	return p
}

func TestTranslateLiteralFree(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		e := canonical(t, randFilter(r, 4, 0.2))
		checkLiteralFree(t, postgres, e)
		checkLiteralFree(t, mysql, e)
	}
	e := mustParse(t, `s1 = '''; DROP TABLE x; --' OR s2 IN ('"', '\', '`+"`"+`')`)
	for _, d := range []dialect{postgres, mysql} {
		p := checkLiteralFree(t, d, e)
		if strings.Contains(p.sql, "DROP") || strings.Contains(p.sql, `\`) {
			t.Errorf("a literal reached the SQL: %s", p.sql)
		}
		if p.args[0] != "'; DROP TABLE x; --" && p.args[1] != "'; DROP TABLE x; --" {
			t.Errorf("args %q", p.args)
		}
	}
}

func TestTranslateShapes(t *testing.T) {
	for _, tc := range []struct {
		f, pg, my, push string
	}{
		{"i2 < 5", `SELECT "id", "s1" FROM t WHERE ("i2" < $1::int8)`, "SELECT `id`, `s1` FROM t WHERE (`i2` < ?)", "all"},
		{"s1 = 'a'", `SELECT "id", "s1" FROM t WHERE ("s1" = $1::text AND ("s1" COLLATE "C") = $2::text)`,
			"SELECT `id`, `s1` FROM t WHERE (`s1` = ? AND CAST(CONVERT(`s1` USING utf8mb4) AS BINARY) = CAST(? AS BINARY))", "all"},
		{"NOT s1 IN ('a', 'b')", `SELECT "id", "s1" FROM t WHERE (NOT (("s1" COLLATE "C") IN ($1::text, $2::text)))`,
			"SELECT `id`, `s1` FROM t WHERE (NOT (CAST(CONVERT(`s1` USING utf8mb4) AS BINARY) IN (CAST(? AS BINARY), CAST(? AS BINARY))))", "all"},
		{"s3 >= 'a'", `SELECT "id", "s1" FROM t WHERE (("s3"::text COLLATE "C") >= $1::text)`,
			"SELECT `id`, `s1` FROM t WHERE (CAST(CONVERT(`s3` USING utf8mb4) AS BINARY) >= CAST(? AS BINARY))", "all"},
		// An id comparison runs at the node: the database gets TRUE for it
		// (FALSE under a NOT), and the filter's columns are read.
		{"id = '" + tianhe + "' AND i1 > 0", `SELECT "id", "s1", "i1" FROM t WHERE ("i1" > $1::int8)`, "SELECT `id`, `s1`, `i1` FROM t WHERE (`i1` > ?)", "part"},
		{"NOT (id = '" + tianhe + "' AND i1 > 0)", `SELECT "id", "s1", "i1" FROM t`, "SELECT `id`, `s1`, `i1` FROM t", "none"},
		{"NOT (id = '" + tianhe + "' OR i1 > 0)", `SELECT "id", "s1", "i1" FROM t WHERE (NOT ("i1" > $1::int8))`, "SELECT `id`, `s1`, `i1` FROM t WHERE (NOT (`i1` > ?))", "part"},
		{"id = '" + tianhe + "' OR i1 > 0", `SELECT "id", "s1", "i1" FROM t`, "SELECT `id`, `s1`, `i1` FROM t", "none"},
		{"NOT (NOT id = '" + tianhe + "' OR i1 > 0)", `SELECT "id", "s1", "i1" FROM t WHERE (NOT ("i1" > $1::int8))`, "SELECT `id`, `s1`, `i1` FROM t WHERE (NOT (`i1` > ?))", "part"},
	} {
		q := Query{Columns: []string{"s1"}, Filter: mustParse(t, tc.f)}
		for _, d := range []dialect{postgres, mysql} {
			p, err := buildPlan(d, "t", randSchema, testColumns(d), "", q)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.pg
			if d == mysql {
				want = tc.my
			}
			if p.sql != want || p.pushdown != tc.push || (p.recheck != nil) != (tc.push != "all") {
				t.Errorf("%s:\n got %s (%s)\nwant %s (%s)", tc.f, p.sql, p.pushdown, want, tc.push)
			}
		}
	}
}

// An identifier that is not a declared column never reaches the SQL: the
// query is refused first.
func TestTranslateRefusesUndeclared(t *testing.T) {
	for _, e := range []filter.Expr{
		filter.Compare{Column: `s1" = '' OR 1=1 --`, Op: filter.OpEq, Value: filter.StringValue("x")},
		filter.In{Column: "nosuch", Values: []filter.Value{filter.IntValue(1)}},
		filter.Not{X: filter.Compare{Column: "s1", Op: filter.OpEq, Value: filter.IntValue(1)}},
		filter.Compare{Column: "i1", Op: filter.Op(99), Value: filter.IntValue(1)},
		filter.And{Terms: []filter.Expr{nil, nil}},
		filter.In{Column: "s1"},
	} {
		for _, d := range []dialect{postgres, mysql} {
			if p, err := buildPlan(d, "t", randSchema, testColumns(d), "", Query{Filter: e}); err == nil {
				t.Errorf("buildPlan accepted %#v: %s", e, p.sql)
			}
		}
	}
	for _, f := range []string{`nosuch = 1`, `s1 = 1`, `NOT i1 IN ('a')`} {
		if err := randSchema.check(Query{Filter: mustParse(t, f)}); err == nil {
			t.Errorf("check accepted %s", f)
		}
	}
	if err := randSchema.check(Query{Columns: []string{"s1", "`x`"}}); err == nil {
		t.Error("an undeclared query column is accepted")
	}
}

func TestTableNames(t *testing.T) {
	for _, ok := range []string{"t", "public.property_owners", "_x.Y1"} {
		if _, err := splitTable(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a.b.c", "t; DROP TABLE t", `"t"`, "t`", "a.", ".a", "1t", "t-t", "tä", strings.Repeat("t", 64)} {
		if _, err := splitTable(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if got := postgres.quoteTable([]string{"public", "Owners"}); got != `"public"."Owners"` {
		t.Error(got)
	}
	if got := mysql.quoteTable([]string{"housing", "owners"}); got != "`housing`.`owners`" {
		t.Error(got)
	}
}

func TestSQLConfig(t *testing.T) {
	s := benefits
	base := SQLConfig{Table: "t", DSNEnv: "UNSEEN_SOURCE_TEST_UNSET_DSN"}
	if _, err := base.check(s); err != nil {
		t.Fatal(err)
	}
	if _, err := base.readDSN(); err == nil || !strings.Contains(err.Error(), "UNSEEN_SOURCE_TEST_UNSET_DSN") {
		t.Errorf("unset env var: %v", err)
	}
	c := base
	c.RowKey = "id_number"
	if _, err := c.check(s); err == nil {
		t.Error("an id column is accepted as the row key")
	}
	c = base
	c.RowKey = "x;y"
	if _, err := c.check(s); err == nil {
		t.Error("a bad row key is accepted")
	}
	dir := t.TempDir()
	secret := "postgres://u:hunter2@h/db"
	if err := os.WriteFile(filepath.Join(dir, "dsn"), []byte(" "+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c = SQLConfig{Table: "t", DSNFile: filepath.Join(dir, "dsn")}
	if dsn, err := c.readDSN(); err != nil || dsn != secret {
		t.Errorf("DSN file: %q %v", dsn, err)
	}
	c.DSNEnv = "X"
	if _, err := c.readDSN(); err == nil {
		t.Error("both dsn_env and dsn_file accepted")
	}
	c = SQLConfig{Table: "t", DSNFile: filepath.Join(dir, "missing")}
	if _, err := c.readDSN(); err == nil {
		t.Error("a missing DSN file is accepted")
	}
	if _, err := (SQLConfig{Table: "t"}).readDSN(); err == nil {
		t.Error("no DSN accepted")
	}
	// A DSN that does not parse is reported without its password.
	t.Setenv("UNSEEN_SOURCE_TEST_BAD_DSN", "postgres://u:hunter2@h:notaport/db")
	_, err := OpenPostgres(t.Context(), SQLConfig{Table: "t", DSNEnv: "UNSEEN_SOURCE_TEST_BAD_DSN"}, s, Options{})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("bad DSN: %v", err)
	}
}

func TestColumnTypesRefused(t *testing.T) {
	for _, tc := range []struct {
		c   Column
		oid int64
	}{
		{Column{Name: "s", Kind: KindString}, oidInt8},
		{Column{Name: "i", Kind: KindID}, oidNumeric},
		{Column{Name: "x", Kind: KindInt}, 16 /* bool */},
	} {
		if _, err := pgColumn(tc.c, tc.oid, "sometype"); err == nil || !strings.Contains(err.Error(), "sometype") {
			t.Errorf("pg %v %d: %v", tc.c, tc.oid, err)
		}
	}
	for _, tc := range []struct {
		c    Column
		data string
	}{
		{Column{Name: "s", Kind: KindString}, "int"},
		{Column{Name: "s", Kind: KindString}, "varbinary"},
		{Column{Name: "i", Kind: KindInt}, "double"},
		{Column{Name: "d", Kind: KindID}, "decimal"},
	} {
		if _, err := myColumn(tc.c, tc.data, tc.data, ""); err == nil {
			t.Errorf("mysql %v %s accepted", tc.c, tc.data)
		}
	}
}

// FuzzTranslate: any filter the parser accepts translates, in both
// dialects, to SQL that does not depend on its literals, with one argument
// per placeholder; no input panics.
func FuzzTranslate(f *testing.F) {
	for _, s := range []string{
		"s1 = 'a'", "NOT (id = '" + tianhe + "' OR i1 >= -9223372036854775808)",
		"s1 IN ('''; DROP TABLE x; --', 'b') AND NOT s3 < 'z'", "i3 <> 1 OR (s2 > '天' AND NOT NOT i2 = 0)",
		"nosuch = 1", "s1 = 1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := filter.Parse(s)
		if err != nil || e == nil {
			return
		}
		if err := randSchema.check(Query{Filter: e}); err != nil {
			for _, d := range []dialect{postgres, mysql} {
				if _, err := buildPlan(d, "t", randSchema, testColumns(d), "", Query{Filter: e}); err == nil && !errors.Is(err, errBadExpr) {
					// buildPlan alone may accept a filter Check refuses only
					// for kinds it also checks; both must refuse unknown
					// columns.
					for _, c := range filter.Columns(e) {
						if randSchema.index(c) < 0 {
							t.Fatalf("buildPlan accepted unknown column %s", c)
						}
					}
				}
			}
			return
		}
		checkLiteralFree(t, postgres, e)
		checkLiteralFree(t, mysql, e)
	})
}
