package source

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unseen-data/unseen/compute/idnum"
	"github.com/unseen-data/unseen/compute/source/sourcetest"
	"github.com/unseen-data/unseen/policy/filter"
)

// testDB is a schema (database) of the test's own on a real server.
type testDB struct {
	d      dialect
	exec   func(t testing.TB, sql string, args ...any)
	try    func(sql string, args ...any) error // exec without failing
	count  func(t testing.TB, sql string) int64
	dsn    string
	schema string
}

func newTestDB(t testing.TB, d dialect) *testDB {
	t.Helper()
	if d == postgres {
		db := sourcetest.Postgres(t)
		try := func(sql string, args ...any) error {
			_, err := db.Conn.Exec(context.Background(), sql, args...)
			return err
		}
		count := func(t testing.TB, sql string) (n int64) {
			t.Helper()
			if err := db.Conn.QueryRow(context.Background(), sql).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		return &testDB{d: d, exec: db.Exec, try: try, count: count, dsn: db.DSN, schema: db.Schema}
	}
	db := sourcetest.MySQL(t)
	try := func(sql string, args ...any) error {
		_, err := db.DB.Exec(sql, args...)
		return err
	}
	count := func(t testing.TB, sql string) (n int64) {
		t.Helper()
		if err := db.DB.QueryRow(sql).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	return &testDB{d: d, exec: db.Exec, try: try, count: count, dsn: db.DSN, schema: db.Database}
}

func (db *testDB) name() string {
	if db.d == postgres {
		return "PostgreSQL"
	}
	return "MySQL"
}

// table qualifies a table name for DDL.
func (db *testDB) table(name string) string { return db.schema + "." + name }

// config is a SQLConfig for a table, its DSN in a file.
func (db *testDB) config(t testing.TB, table string) SQLConfig {
	t.Helper()
	f := filepath.Join(t.TempDir(), "dsn")
	if err := os.WriteFile(f, []byte(db.dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return SQLConfig{Table: db.table(table), DSNFile: f}
}

func (db *testDB) open(ctx context.Context, cfg SQLConfig, s Schema, opts Options) (Source, error) {
	if db.d == postgres {
		return OpenPostgres(ctx, cfg, s, opts)
	}
	return OpenMySQL(ctx, cfg, s, opts)
}

func (db *testDB) mustOpen(t testing.TB, cfg SQLConfig, s Schema, opts Options) Source {
	t.Helper()
	src, err := db.open(context.Background(), cfg, s, opts)
	if err != nil {
		t.Fatalf("open %s: %v", cfg.Table, err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// placeholders returns n parameter placeholders.
func (db *testDB) placeholders(n int) string {
	ps := make([]string, n)
	for i := range ps {
		ps[i] = "?"
		if db.d == postgres {
			ps[i] = "$" + strconv.Itoa(i+1)
		}
	}
	return strings.Join(ps, ", ")
}

func forEachDB(t *testing.T, f func(t *testing.T, db *testDB)) {
	for _, d := range []dialect{postgres, mysql} {
		name := map[dialect]string{postgres: "postgres", mysql: "mysql"}[d]
		t.Run(name, func(t *testing.T) { f(t, newTestDB(t, d)) })
	}
}

// ---- the key test: pushed-down filters select what filter.Eval selects ----

func TestRandomFiltersPostgres(t *testing.T) { testRandomFilters(t, postgres) }
func TestRandomFiltersMySQL(t *testing.T)    { testRandomFilters(t, mysql) }

func testRandomFilters(t *testing.T, d dialect) {
	db := newTestDB(t, d)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("UNSEEN_SOURCE_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (UNSEEN_SOURCE_SEED=%d repeats this run)", seed, seed)
	r := rand.New(rand.NewPCG(seed, 0x5eed))

	i3min, i3max := int64(-1<<15), int64(1<<15-1)
	if d == postgres {
		// s2 compares case-insensitively in its own collation, where ICU is
		// there: the byte-exact comparison must not inherit that.
		coll := ""
		if err := db.try(`CREATE COLLATION ` + db.schema + `.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)`); err == nil {
			coll = " COLLATE " + db.schema + ".ci"
		} else {
			t.Logf("no ICU collation (%v): s2 uses the default", err)
		}
		db.exec(t, `CREATE TABLE `+db.table("r")+` (rk bigint PRIMARY KEY, id varchar(40), s1 varchar(64), s2 text`+coll+`, s3 char(8), i1 bigint, i2 integer, i3 smallint)`)
		db.exec(t, `CREATE INDEX ON `+db.table("r")+` (s1)`)
	} else {
		// The default collations ignore case and trailing spaces.
		db.exec(t, "CREATE TABLE "+db.table("r")+" (rk BIGINT PRIMARY KEY, id VARCHAR(40), s1 VARCHAR(64) COLLATE utf8mb4_general_ci, s2 TEXT COLLATE utf8mb4_unicode_ci, s3 CHAR(8) COLLATE utf8mb4_general_ci, i1 BIGINT, i2 INT, i3 INT UNSIGNED, KEY (s1))")
		i3min, i3max = 0, 1<<32-1
	}
	inRange := func(lo, hi int64) []int64 {
		var out []int64
		for _, v := range intPool {
			if v >= lo && v <= hi {
				out = append(out, v)
			}
		}
		return out
	}
	i2Pool, i3Pool := inRange(-1<<31, 1<<31-1), inRange(i3min, i3max)
	var s3Pool []string
	for _, s := range strPool {
		if len([]rune(s)) <= 8 {
			s3Pool = append(s3Pool, s)
		}
	}
	dataStr := append(slices.Clone(strPool), "a\t", "A\t")
	pickOrNull := func(f func() any) any {
		if r.IntN(7) == 0 {
			return nil
		}
		return f()
	}
	str := func(pool []string) func() any { return func() any { return pool[r.IntN(len(pool))] } }
	num := func(pool []int64) func() any { return func() any { return pool[r.IntN(len(pool))] } }

	batches, rowsPer, filtersPer := 2, 300, 1500
	if testing.Short() {
		batches, filtersPer = 1, 200
	}
	insert := "INSERT INTO " + db.table("r") + " VALUES (" + db.placeholders(8) + ")"
	cases, exact := 0, 0
	for batch := range batches {
		db.exec(t, "DELETE FROM "+db.table("r"))
		inserted := map[string][]any{}
		for k := range rowsPer {
			row := []any{int64(k + 1), pickOrNull(str(idPool)), pickOrNull(str(dataStr)), pickOrNull(str(dataStr)),
				pickOrNull(str(s3Pool)), pickOrNull(num(intPool)), pickOrNull(num(i2Pool)), pickOrNull(num(i3Pool))}
			db.exec(t, insert, row...)
			inserted[strconv.Itoa(k+1)] = row
		}
		cfg := db.config(t, "r")
		cfg.RowKey = "rk"
		src := db.mustOpen(t, cfg, randSchema, Options{})

		// The rows as the source gives them, unfiltered: what filter.Eval
		// sees.
		all := map[string]filter.MapRow{}
		q := Query{Columns: []string{"id", "s1", "s2", "s3", "i1", "i2", "i3"}}
		rep, err := src.Scan(context.Background(), q, func(row *Row) error {
			m := filter.MapRow{}
			for i, c := range q.Columns {
				m[c] = row.Value(i)
			}
			all[row.Pos().Key] = m
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if int(rep.Selected+rep.InvalidIDs) != rowsPer || rep.InvalidIDs == 0 {
			t.Fatalf("unfiltered scan: %+v", rep)
		}
		// Text comes back as stored: case, unicode and spaces intact (char(n)
		// without its pad).
		for k, m := range all {
			in := inserted[k]
			for i, c := range []string{"s1", "s2", "s3"} {
				want := filter.Null()
				if s, ok := in[2+i].(string); ok {
					if c == "s3" {
						s = strings.TrimRight(s, " ")
					}
					want = filter.StringValue(s)
				}
				if m[c] != want {
					t.Fatalf("row %s column %s: %q; stored %q", k, c, m[c], want)
				}
			}
		}

		for range filtersPer {
			e := canonical(t, randFilter(r, 4, 0.1))
			var want []string
			for k, row := range all {
				ok, err := filter.Eval(e, row)
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					want = append(want, k)
				}
			}
			var gotKeys []string
			rep, err := src.Scan(context.Background(), Query{Filter: e}, func(row *Row) error {
				gotKeys = append(gotKeys, row.Pos().Key)
				return nil
			})
			if err != nil {
				t.Fatalf("batch %d, filter %s: %v", batch, e, err)
			}
			slices.Sort(want)
			slices.Sort(gotKeys)
			if !slices.Equal(gotKeys, want) {
				pl, _ := buildPlan(d, "t", randSchema, testColumns(d), "", Query{Filter: e})
				var diff []string
				for _, k := range symDiff(gotKeys, want) {
					diff = append(diff, fmt.Sprintf("rk %s %q", k, inserted[k]))
				}
				t.Fatalf("%s selects differently from filter.Eval\nfilter: %s\nSQL: %s %v\ngot %d rows, want %d; differing rows:\n%s",
					db.name(), e, pl.sql, pl.args, len(gotKeys), len(want), strings.Join(diff, "\n"))
			}
			cases++
			if rep.Pushdown == "all" {
				exact++
			}
		}
	}
	t.Logf("%s: %d random filters, %d run wholly in the database, each selected what filter.Eval selects", db.name(), cases, exact)
	if exact < cases/2 || exact > cases*9/10 {
		t.Errorf("%d of %d filters ran wholly in the database: the test must cover both kinds", exact, cases)
	}
}

func symDiff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			out = append(out, x)
		}
	}
	return out
}

// ---- declared types, malformed rows, invalid IDs ----

func TestDBTypes(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *testDB) {
		if db.d == postgres {
			db.exec(t, `CREATE TABLE `+db.table("typed")+` (rk bigint, id char(18), n_text text, n_num numeric(20,2), n_big bigint, name varchar(10))`)
		} else {
			db.exec(t, "CREATE TABLE "+db.table("typed")+" (rk BIGINT, id CHAR(18), n_text VARCHAR(32), n_num DECIMAL(20,2), n_big BIGINT UNSIGNED, name VARCHAR(10))")
		}
		s := Schema{Columns: []Column{
			{Name: "id", Kind: KindID, Required: true},
			{Name: "n_text", Kind: KindInt},
			{Name: "n_num", Kind: KindInt},
			{Name: "n_big", Kind: KindInt, Required: true},
			{Name: "name", Kind: KindString},
		}}
		ins := "INSERT INTO " + db.table("typed") + " VALUES (" + db.placeholders(6) + ")"
		lower := strings.ToLower(xID)
		for _, row := range [][]any{
			{1, tianhe, " 12 ", "5.00", 7, "a"},
			{2, nil, "1", "1", 1, "a"},                       // invalid ID: empty
			{3, "440106199001011236", "1", "1", 1, "a"},      // invalid ID: check digit
			{4, haizhu, "x1", "1", 1, "b"},                   // malformed: not an int
			{5, lower, "7", "2.50", 1, "b"},                  // malformed: not whole
			{6, tianhe, "99999999999999999999", "1", 1, "b"}, // malformed: range
			{7, tianhe, "", "-3", nil, "b"},                  // malformed: "" is not an int; null required
			{8, lower, nil, nil, 1, nil},                     // fine, nulls
		} {
			db.exec(t, ins, row...)
		}
		cfg := db.config(t, "typed")
		cfg.RowKey = "rk"
		src := db.mustOpen(t, cfg, s, Options{})
		q := Query{Columns: []string{"id", "n_text", "n_num", "n_big", "name"}}
		rows, rep, err := collect(t, src, q)
		var me *MalformedError
		if !errors.As(err, &me) || me.Count != 4 {
			t.Fatalf("err = %v", err)
		}
		K := func(k string) Position { return Position{KeyColumn: "rk", Key: k} }
		wantErrs := []RowError{
			{Pos: K("4"), Column: "n_text", Msg: msgNotInt},
			{Pos: K("5"), Column: "n_num", Msg: "not a whole number (money is in fen)"},
			{Pos: K("6"), Column: "n_text", Msg: msgIntRange},
			{Pos: K("7"), Column: "n_text", Msg: msgNotInt},
		}
		wantInv := []RowError{
			{Pos: K("2"), Column: "id", Msg: "empty"},
			{Pos: K("3"), Column: "id", Msg: "bad check digit"},
		}
		// Row order is the database's: compare by key.
		sortErrs := func(es []RowError) {
			for i := range es {
				es[i].Pos.Row = 0
			}
			slices.SortFunc(es, func(a, b RowError) int { return strings.Compare(a.Pos.Key, b.Pos.Key) })
		}
		sortErrs(rep.Errors)
		sortErrs(rep.InvalidIDExamples)
		if !slices.Equal(rep.Errors, wantErrs) || !slices.Equal(rep.InvalidIDExamples, wantInv) || rep.Read != 8 || rep.InvalidIDs != 2 {
			t.Errorf("report %+v", rep)
		}
		for _, secret := range []string{"x1", "2.50", "99999999999999999999", "440106199001011236"} {
			if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprint(rep), secret) {
				t.Errorf("the report quotes a value: %s", secret)
			}
		}
		if len(rows) > 2 {
			t.Errorf("%d rows passed on", len(rows))
		}
		// The filter runs in the database: rows it does not return are not
		// read, so not checked.
		rows, rep, err = collect(t, src, Query{Columns: q.Columns, Filter: mustParse(t, "name = 'a' OR name IN ('c')")})
		if err != nil || rep.Pushdown != "all" || rep.Read != 3 || len(rows) != 1 {
			t.Fatalf("rows %v, report %+v, err %v", rows, rep, err)
		}
		S, I := filter.StringValue, filter.IntValue
		if want := []filter.Value{S(tianhe), I(12), I(5), I(7), S("a")}; !slices.Equal(rows[0].vals, want) {
			t.Errorf("values %v; want %v", rows[0].vals, want)
		}
		// n_num and id compare here, after their checks (rk 8's null name
		// is not != 'b').
		rows, rep, err = collect(t, src, Query{Columns: []string{"n_big"}, Filter: mustParse(t, "name != 'b' AND (n_num = 5 OR id = '"+xID+"')")})
		if err != nil || rep.Pushdown != "part" || len(rows) != 1 || rows[0].vals[0] != filter.IntValue(7) {
			t.Fatalf("rows %v, report %+v, err %v", rows, rep, err)
		}
		if db.d == mysql {
			db.exec(t, "INSERT INTO "+db.table("typed")+" VALUES (9, ?, '1', '1', 18446744073709551615, 'c')", tianhe)
			_, _, err := collect(t, src, Query{Columns: []string{"n_big"}, Filter: mustParse(t, "name = 'c'")})
			if !errors.As(err, &me) || me.Errors[0].Msg != msgIntRange || me.Errors[0].Pos.Key != "9" {
				t.Errorf("unsigned bigint over int64: %v", err)
			}
		}
	})
}

func TestDBSchemaChecks(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *testDB) {
		db.exec(t, "CREATE TABLE "+db.table("owners")+" (id_number varchar(18), district integer, "+db.d.quote("Property_Count")+" integer, note varchar(10))")
		s := Schema{Columns: []Column{
			{Name: "id_number", Kind: KindID, Required: true},
			{Name: "district", Kind: KindString},
			{Name: "property_count", Kind: KindInt},
			{Name: "missing_col", Kind: KindInt},
		}}
		_, err := db.open(context.Background(), db.config(t, "owners"), s, Options{})
		if err == nil {
			t.Fatal("a mismatched table opens")
		}
		msg := err.Error()
		for _, want := range []string{"has no column missing_col", "column district has type", "a string column needs"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q lacks %q", msg, want)
			}
		}
		if db.d == postgres && !strings.Contains(msg, "has no column property_count (it has Property_Count") {
			t.Errorf("PostgreSQL error %q lacks the case hint", msg)
		}
		if _, err := db.open(context.Background(), db.config(t, "nosuch"), s, Options{}); err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("missing table: %v", err)
		}
		good := Schema{Columns: []Column{{Name: "id_number", Kind: KindID}, {Name: "note", Kind: KindString}}}
		cfg := db.config(t, "owners")
		cfg.RowKey = "nosuch"
		if _, err := db.open(context.Background(), cfg, good, Options{}); err == nil || !strings.Contains(err.Error(), "row key") {
			t.Errorf("missing row key: %v", err)
		}
		src := db.mustOpen(t, db.config(t, "owners"), good, Options{})
		// Scans and a Validate may run at once (go test -race).
		errs := make(chan error, 5)
		for range 4 {
			go func() {
				_, err := src.Scan(context.Background(), Query{Columns: []string{"note"}, Filter: mustParse(t, "note = 'x'")}, func(*Row) error { return nil })
				errs <- err
			}()
		}
		errs <- src.Validate(context.Background())
		for range 5 {
			if err := <-errs; err != nil {
				t.Errorf("concurrent use: %v", err)
			}
		}
		// A column dropped after the open is found by Validate.
		db.exec(t, "ALTER TABLE "+db.table("owners")+" DROP COLUMN note")
		if err := src.Validate(context.Background()); err == nil || !strings.Contains(err.Error(), "has no column note") {
			t.Errorf("Validate after DROP COLUMN: %v", err)
		}
	})
}

// ---- injection, as an attacker would try it ----

func TestDBInjection(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *testDB) {
		db.exec(t, "CREATE TABLE "+db.table("victim")+" (x integer)")
		db.exec(t, "CREATE TABLE "+db.table("r")+" (k integer, s1 varchar(64), "+db.d.quote("select")+" varchar(10))")
		evil := []string{"'; DROP TABLE " + db.table("victim") + "; --", `"; DROP TABLE victim; --`, "`; DROP TABLE victim; --", `\'; DROP TABLE victim; --`, "a' OR '1'='1"}
		for i, v := range evil {
			db.exec(t, "INSERT INTO "+db.table("r")+" VALUES ("+db.placeholders(3)+")", i, v, "k")
		}
		db.exec(t, "INSERT INTO "+db.table("r")+" VALUES ("+db.placeholders(3)+")", 99, "other", "k")
		// A column named by a keyword is quoted, like every identifier.
		s := Schema{Columns: []Column{{Name: "k", Kind: KindInt}, {Name: "s1", Kind: KindString}, {Name: "select", Kind: KindString}}}
		src := db.mustOpen(t, db.config(t, "r"), s, Options{})
		for i, v := range evil {
			f := "s1 = " + filter.StringValue(v).String() + " AND select = 'k'"
			rows, _, err := collect(t, src, Query{Columns: []string{"k"}, Filter: mustParse(t, f)})
			if err != nil || len(rows) != 1 || rows[0].vals[0] != filter.IntValue(int64(i)) {
				t.Errorf("%s: rows %v, err %v", f, rows, err)
			}
			rows, _, err = collect(t, src, Query{Columns: []string{"k"}, Filter: mustParse(t, "s1 IN ("+filter.StringValue(v).String()+", 'x') OR s1 < "+filter.StringValue(v).String())})
			if err != nil {
				t.Errorf("%s: %v", v, err)
			}
		}
		if err := db.try("SELECT x FROM " + db.table("victim")); err != nil {
			t.Fatalf("the victim table is gone: %v", err)
		}
		// Identifiers that are not declared columns are refused before
		// any SQL is built.
		for _, q := range []Query{
			{Columns: []string{"k FROM r; DROP TABLE victim; --"}},
			{Columns: []string{"k"}, Filter: filter.Compare{Column: "s1 = s1 OR 1", Op: filter.OpEq, Value: filter.StringValue("x")}},
			{Filter: filter.In{Column: "victim", Values: []filter.Value{filter.IntValue(1)}}},
		} {
			if _, _, err := collect(t, src, q); err == nil || !strings.Contains(err.Error(), "does not declare") && !strings.Contains(err.Error(), "unknown column") {
				t.Errorf("%+v: %v", q, err)
			}
		}
		cfg := db.config(t, "r")
		for _, tbl := range []string{"r; DROP TABLE victim", `r" ; DROP TABLE victim; --`, "r`", "a.b.c"} {
			cfg.Table = tbl
			if _, err := db.open(context.Background(), cfg, s, Options{}); err == nil || !strings.Contains(err.Error(), "table") {
				t.Errorf("table %q: %v", tbl, err)
			}
		}
		if err := db.try("SELECT x FROM " + db.table("victim")); err != nil {
			t.Fatalf("the victim table is gone: %v", err)
		}
	})
}

// ---- a large table: bounded memory, cancellation, timeouts ----

const bigRows = 1_000_000

var bigSchema = Schema{Columns: []Column{
	{Name: "id_number", Kind: KindID, Required: true},
	{Name: "district", Kind: KindString},
	{Name: "property_count", Kind: KindInt},
	{Name: "assessed_value_fen", Kind: KindInt},
}}

// bigFilter selects about 27% of the big table.
const bigFilter = "district IN ('天河区', '白云区') AND property_count >= 2"

// bigRowBytes is a big row's size as data: an 18-byte ID, a 9-byte
// district, a 4- and an 8-byte int, and an 8-byte row key.
const bigRowBytes = 18 + 9 + 4 + 8 + 8

// testIDs returns n valid, distinct ID numbers.
func testIDs(t testing.TB, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		id, err := idnum.Make("440106", time.Date(1950+i%60, time.Month(1+i%12), 1+i%28, 0, 0, 0, 0, time.UTC), i%1000)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	return ids
}

// makeBig fills table "big" with bigRows rows, generated by the database
// from 1000 ID numbers.
func makeBig(t testing.TB, db *testDB) {
	t.Helper()
	ids := testIDs(t, 1000)
	if db.d == postgres {
		db.exec(t, "CREATE TABLE "+db.table("ids")+" (n integer, id varchar(18))")
		db.exec(t, "INSERT INTO "+db.table("ids")+" SELECT g - 1, ($1::text[])[g] FROM generate_series(1, 1000) g", ids)
		db.exec(t, "CREATE TABLE "+db.table("big")+" (rk bigint, id_number varchar(18), district varchar(32), property_count integer, assessed_value_fen bigint)")
		db.exec(t, "INSERT INTO "+db.table("big")+` SELECT g, ids.id, (ARRAY['天河区','白云区','海珠区','越秀区','番禺区'])[1 + g % 5], 1 + g % 3, (g % 100000) * 1000
			FROM generate_series(1, `+strconv.Itoa(bigRows)+`) g JOIN `+db.table("ids")+` ids ON ids.n = g % 1000`)
		db.exec(t, "ANALYZE "+db.table("big"))
		return
	}
	db.exec(t, "CREATE TABLE "+db.table("ids")+" (n INT PRIMARY KEY, id VARCHAR(18))")
	var vals []string
	var args []any
	for i, id := range ids {
		vals = append(vals, "(?, ?)")
		args = append(args, i, id)
	}
	db.exec(t, "INSERT INTO "+db.table("ids")+" VALUES "+strings.Join(vals, ", "), args...)
	db.exec(t, "CREATE TABLE "+db.table("big")+" (rk BIGINT, id_number VARCHAR(18), district VARCHAR(32), property_count INT, assessed_value_fen BIGINT)")
	db.exec(t, "INSERT INTO "+db.table("big")+` SELECT a.n * 1000 + b.n + 1, b.id,
		ELT(1 + (a.n * 1000 + b.n + 1) % 5, '天河区','白云区','海珠区','越秀区','番禺区'), 1 + (a.n * 1000 + b.n + 1) % 3, ((a.n * 1000 + b.n + 1) % 100000) * 1000
		FROM `+db.table("ids")+` a CROSS JOIN `+db.table("ids")+` b`)
}

// writeBigCSV writes the same rows to a CSV file.
func writeBigCSV(t testing.TB) string {
	t.Helper()
	ids := testIDs(t, 1000)
	p := filepath.Join(t.TempDir(), "big.csv")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	w := bufioWriter(f)
	fmt.Fprintln(w, "rk,id_number,district,property_count,assessed_value_fen")
	districts := []string{"天河区", "白云区", "海珠区", "越秀区", "番禺区"}
	for g := 1; g <= bigRows; g++ {
		fmt.Fprintf(w, "%d,%s,%s,%d,%d\n", g, ids[g%1000], districts[g%5], 1+g%3, (g%100000)*1000)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// scanBounded scans every row of src and checks that the live heap grows
// by far less than the data: a source that gathered the rows (or a driver
// that buffered the result) would grow by at least bigRows*bigRowBytes.
func scanBounded(t *testing.T, src Source) {
	base := liveHeap()
	var peak uint64
	var sum int64
	rep, err := src.Scan(context.Background(), Query{Columns: []string{"id_number", "assessed_value_fen"}}, func(r *Row) error {
		sum += r.Value(1).Int()
		if r.Pos().Row%100_000 == 0 {
			peak = max(peak, liveHeap())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Selected != bigRows {
		t.Fatalf("selected %d rows", rep.Selected)
	}
	data := uint64(bigRows * bigRowBytes)
	growth := int64(peak) - int64(base)
	t.Logf("%d rows (%d MB as data): live heap grew by at most %d KB during the scan", bigRows, data>>20, growth>>10)
	if growth > int64(data/50) {
		t.Errorf("live heap grew by %d bytes during the scan; the data is %d bytes", growth, data)
	}
}

func TestBigScanBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("a million rows")
	}
	t.Run("csv", func(t *testing.T) {
		p := writeBigCSV(t)
		src, _, err := OpenCSV(context.Background(), nil, p, bigSchema, Options{})
		if err != nil {
			t.Fatal(err)
		}
		scanBounded(t, src)
	})
	forEachDB(t, func(t *testing.T, db *testDB) {
		makeBig(t, db)
		cfg := db.config(t, "big")
		cfg.RowKey = "rk"
		scanBounded(t, db.mustOpen(t, cfg, bigSchema, Options{}))
	})
}

func TestDBCancel(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *testDB) {
		// 200k rows, and a view that sleeps 10ms a row.
		db.exec(t, "CREATE TABLE "+db.table("many")+" (id_number varchar(18), district varchar(32), property_count integer, assessed_value_fen bigint)")
		id := testIDs(t, 1)[0]
		if db.d == postgres {
			db.exec(t, "INSERT INTO "+db.table("many")+" SELECT $1::text, 'd', g, g FROM generate_series(1, 200000) g", id)
			db.exec(t, "CREATE FUNCTION "+db.table("nap")+"(x integer) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$ BEGIN PERFORM pg_sleep(0.05); RETURN true; END $$")
			db.exec(t, "CREATE VIEW "+db.table("slow")+" AS SELECT * FROM "+db.table("many")+" WHERE "+db.table("nap")+"(property_count)")
		} else {
			db.exec(t, "INSERT INTO "+db.table("many")+" WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 1000) SELECT ?, 'd', (a.n - 1) * 1000 + b.n, 1 FROM g a, g b WHERE a.n <= 200", id)
			db.exec(t, "CREATE VIEW "+db.table("slow")+" AS SELECT * FROM "+db.table("many")+" WHERE SLEEP(0.01) = 0")
		}
		src := db.mustOpen(t, db.config(t, "many"), bigSchema, Options{})

		// Cancelled by the consumer: no row is passed on after the next
		// check, and the rest is not read.
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		rep, err := src.Scan(ctx, Query{Columns: []string{"property_count"}}, func(*Row) error {
			calls++
			if calls == 500 {
				cancel()
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) || calls > 1024 || rep.Read > 1024 {
			t.Errorf("cancelled: err %v, calls %d, read %d", err, calls, rep.Read)
		}
		// An error from the consumer stops the scan at once.
		stop := errors.New("stop")
		calls = 0
		_, err = src.Scan(context.Background(), Query{}, func(*Row) error {
			calls++
			if calls == 3 {
				return stop
			}
			return nil
		})
		if err != stop || calls != 3 {
			t.Errorf("consumer error: %v after %d calls", err, calls)
		}
		// The source is still usable after both.
		if _, rep, err := collect(t, src, Query{Filter: mustParse(t, "property_count <= 10")}); err != nil || rep.Selected != 10 {
			t.Errorf("after cancellation: %v %+v", err, rep)
		}

		// Cancelled while the database works: the slow view would take
		// over half an hour.
		slow := db.mustOpen(t, db.config(t, "slow"), bigSchema, Options{})
		ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err = slow.Scan(ctx, Query{}, func(*Row) error { return nil })
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("deadline: %v", err)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("the cancelled scan returned after %v", d)
		}
		// And the database stopped the statement (it would otherwise run on,
		// holding its locks, until it next wrote to the dropped connection).
		running := "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%unseen_scan%' AND pid <> pg_backend_pid()"
		if db.d == mysql {
			running = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '%slow%' AND ID <> CONNECTION_ID()"
		}
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			n := db.count(t, running)
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%d statements still running 5s after the scan was cancelled", n)
				break
			}
		}

		// The statement timeout stops it too, with an error that says so.
		cfg := db.config(t, "slow")
		cfg.StatementTimeout = 300 * time.Millisecond
		slow = db.mustOpen(t, cfg, bigSchema, Options{})
		_, err = slow.Scan(context.Background(), Query{}, func(*Row) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "statement timeout") {
			t.Errorf("statement timeout: %v", err)
		}
	})
}

func bufioWriter(f *os.File) *bufio.Writer { return bufio.NewWriterSize(f, 1<<20) }
