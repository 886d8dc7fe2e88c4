package source

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/unseen-data/unseen/policy/filter"
)

// Valid numbers whose check digits are worked by hand in idnum's tests.
const (
	tianhe = "440106199001011235"
	haizhu = "440105200002290044"
	xID    = "11010519491231002X"
)

var benefits = Schema{Columns: []Column{
	{Name: "id_number", Kind: KindID, Required: true},
	{Name: "name", Kind: KindString},
	{Name: "district", Kind: KindString, Required: true},
	{Name: "monthly_benefit_fen", Kind: KindInt, Required: true},
	{Name: "household_size", Kind: KindInt},
}}

func memCSV(t *testing.T, content string, s Schema, opts Options) (*CSV, *Report, error) {
	t.Helper()
	fsys := fstest.MapFS{"d.csv": {Data: []byte(content)}}
	return OpenCSV(context.Background(), fsys, "d.csv", s, opts)
}

func mustParse(t testing.TB, f string) filter.Expr {
	t.Helper()
	e, err := filter.Parse(f)
	if err != nil {
		t.Fatalf("Parse(%q): %v", f, err)
	}
	return e
}

type got struct {
	pos  Position
	vals []filter.Value
}

// collect scans src and returns each selected row's position and values.
func collect(t testing.TB, src Source, q Query) ([]got, *Report, error) {
	t.Helper()
	var out []got
	rep, err := src.Scan(context.Background(), q, func(r *Row) error {
		g := got{pos: r.Pos()}
		for i := range r.Len() {
			g.vals = append(g.vals, r.Value(i))
		}
		out = append(out, g)
		return nil
	})
	return out, rep, err
}

func TestCSVGood(t *testing.T) {
	// A BOM, CRLF line ends, columns in another order, an extra column, a
	// quoted field with a comma, padding, a lower-case x, an empty optional
	// field and a blank line.
	in := "\uFEFFdistrict, id_number ,note,monthly_benefit_fen,household_size,name\r\n" +
		"天河区,440106199001011235,\"a, b\",150000,3,陈嘉怡\r\n" +
		"\r\n" +
		" 海珠区 ,  440105200002290044 ,,120000,,\"黄 志强\"\r\n" +
		"越秀区,11010519491231002x,x,-5,1,\r\n"
	src, rep, err := memCSV(t, in, benefits, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Report{Read: 3, Selected: 3, Pushdown: "none"}); !reflect.DeepEqual(*rep, want) {
		t.Errorf("open report = %+v; want %+v", *rep, want)
	}
	rows, _, err := collect(t, src, Query{Columns: []string{"household_size", "id_number", "name", "district", "monthly_benefit_fen"}})
	if err != nil {
		t.Fatal(err)
	}
	S, I, N := filter.StringValue, filter.IntValue, filter.Null()
	want := []got{
		{Position{Line: 2, Row: 1}, []filter.Value{I(3), S(tianhe), S("陈嘉怡"), S("天河区"), I(150000)}},
		{Position{Line: 4, Row: 2}, []filter.Value{N, S(haizhu), S("黄 志强"), S("海珠区"), I(120000)}},
		{Position{Line: 5, Row: 3}, []filter.Value{I(1), S(xID), N, S("越秀区"), I(-5)}},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("rows:\n%v\nwant\n%v", rows, want)
	}
	if _, _, err := collect(t, src, Query{Columns: []string{"note"}}); err == nil {
		t.Error("an undeclared column can be read")
	}
}

func TestCSVMalformedRows(t *testing.T) {
	in := strings.Join([]string{
		"id_number,name,district,monthly_benefit_fen,household_size", // 1
		tianhe + ",张三,天河区,150000,1",                                  // 2 fine
		tianhe + ",张三,天河区,150000",                                    // 3 too few fields
		tianhe + ",\"多行\n姓名\",天河区,150000,2",                          // 4-5 fine, spans two lines
		tianhe + ",李四,天河区,1500.00,1",                                 // 6 decimal money
		tianhe + ",王\"五,天河区,150000,1",                                // 7 bare quote
		tianhe + ",赵六,,150000,1",                                     // 8 empty required
		tianhe + ",\xd5\xc5\xc8\xfd,天河区,150000,1",                    // 9 GBK, not UTF-8
		tianhe + ",钱七,天河区,99999999999999999999,1",                    // 10 overflow
		tianhe + ",孙八,天河区,150000,1,extra",                            // 11 too many fields
		"bad-id,周九,天河区,abc,1",                                        // 12 malformed wins over invalid ID
		haizhu + ",吴十,海珠区,150000,1",                                  // 13 fine
	}, "\n") + "\n"
	src, rep, err := memCSV(t, in, benefits, Options{})
	if src != nil {
		t.Error("source returned despite malformed rows")
	}
	var me *MalformedError
	if !errors.As(err, &me) {
		t.Fatalf("err = %v; want *MalformedError", err)
	}
	L := func(n int64) Position { return Position{Line: n} }
	want := []RowError{
		{Pos: L(3), Msg: "has 4 fields; the header has 5"},
		{Pos: L(6), Column: "monthly_benefit_fen", Msg: "not an integer (whole numbers only; money is in fen)"},
		{Pos: L(7), Msg: `bare " in non-quoted-field`},
		{Pos: L(8), Column: "district", Msg: "empty, but the column is required"},
		{Pos: L(9), Column: "name", Msg: "not valid UTF-8 (if the file is GBK-encoded, save it as UTF-8)"},
		{Pos: L(10), Column: "monthly_benefit_fen", Msg: "integer out of the int64 range"},
		{Pos: L(11), Msg: "has 6 fields; the header has 5"},
		{Pos: L(12), Column: "monthly_benefit_fen", Msg: "not an integer (whole numbers only; money is in fen)"},
	}
	for i := range rep.Errors {
		rep.Errors[i].Pos.Row = 0 // ordinals are checked below
	}
	if !reflect.DeepEqual(rep.Errors, want) {
		t.Errorf("errors:\n%v\nwant\n%v", rep.Errors, want)
	}
	if me.Count != 8 || rep.Malformed != 8 || rep.Read != 11 || rep.InvalidIDs != 0 {
		t.Errorf("count %d, report %+v", me.Count, rep)
	}
	wantMsg := "source: 8 malformed rows: line 3: has 4 fields; the header has 5; " +
		"line 6: column monthly_benefit_fen: not an integer (whole numbers only; money is in fen); " +
		`line 7: bare " in non-quoted-field; ` +
		"line 8: column district: empty, but the column is required; " +
		"line 9: column name: not valid UTF-8 (if the file is GBK-encoded, save it as UTF-8); and 3 more"
	if err.Error() != wantMsg {
		t.Errorf("message:\n%s\nwant\n%s", err, wantMsg)
	}
	if strings.Contains(err.Error(), "bad-id") || strings.Contains(err.Error(), "1500.00") {
		t.Error("the error quotes a value")
	}
}

func TestCSVInvalidIDsSkipped(t *testing.T) {
	in := "id_number,name,district,monthly_benefit_fen,household_size\n" +
		tianhe + ",a,天河区,1,1\n" +
		"440106199001011236,b,天河区,2,1\n" + // bad check digit
		",c,天河区,3,1\n" + // empty required id
		haizhu + ",d,海珠区,4,1\n"
	src, rep, err := memCSV(t, in, benefits, Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantEx := []RowError{
		{Pos: Position{Line: 3, Row: 2}, Column: "id_number", Msg: "bad check digit"},
		{Pos: Position{Line: 4, Row: 3}, Column: "id_number", Msg: "empty"},
	}
	if rep.InvalidIDs != 2 || rep.Selected != 2 || !reflect.DeepEqual(rep.InvalidIDExamples, wantEx) {
		t.Errorf("report %+v", rep)
	}
	// A filter that would match the skipped rows still does not select them.
	rows, rep, err := collect(t, src, Query{Columns: []string{"monthly_benefit_fen"}, Filter: mustParse(t, "district = '天河区'")})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].vals[0] != filter.IntValue(1) || rep.InvalidIDs != 2 {
		t.Errorf("rows %v report %+v", rows, rep)
	}
	for _, e := range rep.InvalidIDExamples {
		if strings.Contains(e.String(), "440106199001011236") {
			t.Error("an invalid ID is quoted")
		}
	}
}

func TestCSVFilter(t *testing.T) {
	in := "id_number,name,district,monthly_benefit_fen,household_size\n" +
		tianhe + ",a,天河区,100,1\n" +
		haizhu + ",b,海珠区,200,\n" +
		xID + ",c,天河区,300,3\n"
	src, _, err := memCSV(t, in, benefits, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		f    string
		want []int64
	}{
		{"", []int64{100, 200, 300}},
		{"district = '天河区'", []int64{100, 300}},
		{"household_size >= 1", []int64{100, 300}},         // null is not selected
		{"NOT household_size >= 1", []int64{}},             // nor by its negation
		{"id_number = '11010519491231002X'", []int64{300}}, // normalised form
		{"monthly_benefit_fen IN (200, 300) OR name = 'a'", []int64{100, 200, 300}},
	} {
		var q Query
		if tc.f != "" {
			q.Filter = mustParse(t, tc.f)
		}
		q.Columns = []string{"monthly_benefit_fen"}
		rows, rep, err := collect(t, src, q)
		if err != nil {
			t.Fatalf("%s: %v", tc.f, err)
		}
		vals := []int64{}
		for _, r := range rows {
			vals = append(vals, r.vals[0].Int())
		}
		if !reflect.DeepEqual(vals, tc.want) || rep.Selected != int64(len(tc.want)) || rep.Read != 3 {
			t.Errorf("%s: %v (report %+v); want %v", tc.f, vals, rep, tc.want)
		}
	}
	for _, f := range []string{"nosuch = 1", "district = 1", "monthly_benefit_fen = 'x'"} {
		if _, _, err := collect(t, src, Query{Filter: mustParse(t, f)}); err == nil {
			t.Errorf("%s: accepted", f)
		}
	}
}

func TestCSVFromDisk(t *testing.T) {
	p := filepath.Join(t.TempDir(), "d.csv")
	in := "id_number,name,district,monthly_benefit_fen,household_size\n" + tianhe + ",a,天河区,100,1\n"
	if err := os.WriteFile(p, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	src, _, err := OpenCSV(context.Background(), nil, p, benefits, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Every scan reads the file afresh: a row appended after the open is
	// seen, and a malformed one fails the scan.
	if err := os.WriteFile(p, []byte(in+haizhu+",b,海珠区,200,1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, rep, err := collect(t, src, Query{}); err != nil || rep.Selected != 2 {
		t.Errorf("after append: %v %+v", err, rep)
	}
	if err := os.WriteFile(p, []byte(in+haizhu+",b,海珠区,2.5,1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var me *MalformedError
	if _, _, err := collect(t, src, Query{}); !errors.As(err, &me) || me.Errors[0].Pos.Line != 3 {
		t.Errorf("after a malformed append: %v", err)
	}
	if err := src.Validate(context.Background()); !errors.As(err, &me) {
		t.Errorf("Validate = %v", err)
	}
	if _, _, err := OpenCSV(context.Background(), nil, p+".missing", benefits, Options{}); err == nil {
		t.Error("a missing file opens")
	}
}

func TestCSVHeaderAndLimits(t *testing.T) {
	for _, tc := range []struct{ in, msg string }{
		{"", "empty file"},
		{"id_number,name\n", "lacks declared column(s) district, monthly_benefit_fen, household_size"},
		{"id_number,name,district,monthly_benefit_fen,household_size,name\n", "header names column name more than once"},
	} {
		if _, _, err := memCSV(t, tc.in, benefits, Options{}); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: %v; want %q", tc.in, err, tc.msg)
		}
	}
	head := "id_number,name,district,monthly_benefit_fen,household_size\n"
	row := tianhe + ",a,天河区,1,1\n"
	if _, _, err := memCSV(t, head+strings.Repeat(row, 3), benefits, Options{MaxRows: 3}); err != nil {
		t.Errorf("3 rows, limit 3: %v", err)
	}
	if _, _, err := memCSV(t, head+strings.Repeat(row, 4), benefits, Options{MaxRows: 3}); !errors.Is(err, errTooManyRows) {
		t.Errorf("4 rows, limit 3: %v", err)
	}
	long := tianhe + "," + strings.Repeat("长", 100000) + ",天河区,1,1\n"
	if _, _, err := memCSV(t, head+long, benefits, Options{MaxFieldBytes: 64}); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("an over-long record: %v", err)
	}
}

func TestCSVCallbackErrorAndCancel(t *testing.T) {
	var b strings.Builder
	b.WriteString("id_number,name,district,monthly_benefit_fen,household_size\n")
	for i := range 5000 {
		fmt.Fprintf(&b, "%s,n%d,天河区,%d,1\n", tianhe, i, i)
	}
	src, _, err := memCSV(t, b.String(), benefits, Options{})
	if err != nil {
		t.Fatal(err)
	}
	stop := errors.New("enough")
	calls := 0
	rep, err := src.Scan(context.Background(), Query{}, func(*Row) error {
		calls++
		if calls == 10 {
			return stop
		}
		return nil
	})
	if err != stop || calls != 10 || rep.Read != 10 {
		t.Errorf("err %v, calls %d, read %d", err, calls, rep.Read)
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls = 0
	rep, err = src.Scan(ctx, Query{}, func(*Row) error {
		calls++
		if calls == 100 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || rep.Read >= 5000 || calls > 1024 {
		t.Errorf("cancelled scan: err %v, read %d, calls %d", err, rep.Read, calls)
	}
}
