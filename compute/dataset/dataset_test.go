package dataset

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/unseen-data/unseen/compute/idnum"
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

func mustLoad(t *testing.T, csv string, s Schema, opts Options) (*Table, *Report) {
	t.Helper()
	tab, rep, err := LoadCSV(strings.NewReader(csv), s, opts)
	if err != nil {
		t.Fatalf("LoadCSV: %v", err)
	}
	return tab, rep
}

func TestLoadGood(t *testing.T) {
	// A BOM, CRLF line ends, columns in another order, an extra column, a
	// quoted field with a comma, padding, a lower-case x, an empty optional
	// field and a blank line.
	in := "\uFEFFdistrict, id_number ,note,monthly_benefit_fen,household_size,name\r\n" +
		"天河区,440106199001011235,\"a, b\",150000,3,陈嘉怡\r\n" +
		"\r\n" +
		" 海珠区 ,  440105200002290044 ,,120000,,\"黄 志强\"\r\n" +
		"越秀区,11010519491231002x,x,-5,1,\r\n"
	tab, rep := mustLoad(t, in, benefits, Options{})
	if want := (Report{Rows: 3, Loaded: 3}); !reflect.DeepEqual(*rep, want) {
		t.Errorf("report = %+v; want %+v", *rep, want)
	}
	if tab.Len() != 3 {
		t.Fatalf("Len = %d", tab.Len())
	}
	for _, tc := range []struct {
		row  int
		col  string
		want filter.Value
	}{
		{0, "id_number", filter.StringValue(tianhe)},
		{0, "name", filter.StringValue("陈嘉怡")},
		{0, "district", filter.StringValue("天河区")},
		{0, "monthly_benefit_fen", filter.IntValue(150000)},
		{0, "household_size", filter.IntValue(3)},
		{1, "id_number", filter.StringValue(haizhu)},
		{1, "district", filter.StringValue("海珠区")},
		{1, "name", filter.StringValue("黄 志强")},
		{1, "household_size", filter.Null()},
		{2, "id_number", filter.StringValue(xID)},
		{2, "monthly_benefit_fen", filter.IntValue(-5)},
		{2, "name", filter.Null()},
	} {
		got, err := tab.Value(tc.row, tc.col)
		if err != nil || got != tc.want {
			t.Errorf("Value(%d, %s) = %v, %v; want %v", tc.row, tc.col, got, err, tc.want)
		}
	}
	// Line numbers count the blank line.
	if got := []int{tab.Line(0), tab.Line(1), tab.Line(2)}; !reflect.DeepEqual(got, []int{2, 4, 5}) {
		t.Errorf("lines = %v", got)
	}
	if _, err := tab.Value(0, "note"); err == nil {
		t.Error("undeclared column is readable")
	}
	if _, err := tab.Value(3, "name"); err == nil {
		t.Error("row out of range is readable")
	}
}

func TestHeaderOnly(t *testing.T) {
	tab, rep := mustLoad(t, "id_number,name,district,monthly_benefit_fen,household_size\n", benefits, Options{})
	if tab.Len() != 0 || rep.Rows != 0 {
		t.Errorf("Len %d, report %+v", tab.Len(), rep)
	}
}

func TestMalformedRows(t *testing.T) {
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
	tab, rep, err := LoadCSV(strings.NewReader(in), benefits, Options{})
	if tab != nil {
		t.Error("table returned despite malformed rows")
	}
	var me *MalformedError
	if !errors.As(err, &me) {
		t.Fatalf("err = %v; want *MalformedError", err)
	}
	want := []RowError{
		{Line: 3, Msg: "has 4 fields; the header has 5"},
		{Line: 6, Column: "monthly_benefit_fen", Msg: "not an integer (whole numbers only; money is in fen)"},
		{Line: 7, Msg: `bare " in non-quoted-field`},
		{Line: 8, Column: "district", Msg: "empty, but the column is required"},
		{Line: 9, Column: "name", Msg: "not valid UTF-8 (if the file is GBK-encoded, save it as UTF-8)"},
		{Line: 10, Column: "monthly_benefit_fen", Msg: "integer out of the int64 range"},
		{Line: 11, Msg: "has 6 fields; the header has 5"},
		{Line: 12, Column: "monthly_benefit_fen", Msg: "not an integer (whole numbers only; money is in fen)"},
	}
	if !reflect.DeepEqual(rep.Errors, want) {
		t.Errorf("errors:\n%v\nwant\n%v", rep.Errors, want)
	}
	if me.Count != 8 || rep.Malformed != 8 || rep.Rows != 11 || rep.InvalidIDs != 0 {
		t.Errorf("count %d, report %+v", me.Count, rep)
	}
	wantMsg := "dataset: 8 malformed rows: line 3: has 4 fields; the header has 5; " +
		"line 6: column monthly_benefit_fen: not an integer (whole numbers only; money is in fen); " +
		`line 7: bare " in non-quoted-field; ` +
		"line 8: column district: empty, but the column is required; " +
		"line 9: column name: not valid UTF-8 (if the file is GBK-encoded, save it as UTF-8); and 3 more"
	if err.Error() != wantMsg {
		t.Errorf("message:\n%s\nwant\n%s", err, wantMsg)
	}
}

func TestMalformedCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("id_number,name,district,monthly_benefit_fen,household_size\n")
	for range 50 {
		b.WriteString(tianhe + ",x,天河区,NaN,1\n")
	}
	_, rep, err := LoadCSV(strings.NewReader(b.String()), benefits, Options{MaxReported: 3})
	if err == nil || rep.Malformed != 50 || len(rep.Errors) != 3 || rep.Errors[2].Line != 4 {
		t.Errorf("err %v, report %+v", err, rep)
	}
	if !strings.HasSuffix(err.Error(), "; and 47 more") {
		t.Errorf("message %q", err)
	}
}

func TestQuoteErrorAcrossLines(t *testing.T) {
	// An unterminated quote runs to the end of the file; the error points at
	// the line where the row started.
	in := "id_number,name,district,monthly_benefit_fen,household_size\n" +
		tianhe + ",a,天河区,1,1\n" +
		tianhe + ",\"never closed,天河区,1,1\n" +
		tianhe + ",b,天河区,1,1\n"
	_, rep, err := LoadCSV(strings.NewReader(in), benefits, Options{})
	if err == nil || len(rep.Errors) != 1 || rep.Errors[0].Line != 3 || !strings.Contains(rep.Errors[0].Msg, "(at line 4)") {
		t.Errorf("err %v, errors %v", err, rep.Errors)
	}
}

func TestInvalidIDsSkipped(t *testing.T) {
	badCheck := "440106199001011234"             // tianhe with the wrong check digit
	badDate := withCheck(t, "44010619900230123") // 30 February
	in := strings.Join([]string{
		"id_number,name,district,monthly_benefit_fen,household_size",
		tianhe + ",甲,天河区,100,1",   // 2
		badCheck + ",乙,天河区,100,1", // 3
		haizhu + ",丙,海珠区,100,1",   // 4
		badDate + ",丁,天河区,100,1",  // 5
		",戊,天河区,100,1",            // 6 empty, and required
		"12345,己,天河区,100,1",       // 7
	}, "\r\n")
	tab, rep := mustLoad(t, in, benefits, Options{})
	if tab.Len() != 2 || rep.Loaded != 2 || rep.Rows != 6 || rep.InvalidIDs != 4 || rep.Malformed != 0 {
		t.Errorf("Len %d, report %+v", tab.Len(), rep)
	}
	want := []RowError{
		{Line: 3, Column: "id_number", Msg: "bad check digit"},
		{Line: 5, Column: "id_number", Msg: idnum.ErrBirthDate.Error()[len("idnum: "):]},
		{Line: 6, Column: "id_number", Msg: "empty"},
		{Line: 7, Column: "id_number", Msg: "must be 18 characters"},
	}
	if !reflect.DeepEqual(rep.InvalidIDExamples, want) {
		t.Errorf("examples %v; want %v", rep.InvalidIDExamples, want)
	}
	// The personal data itself is nowhere in the report.
	dump := fmt.Sprintf("%+v", *rep)
	for _, id := range []string{badCheck, badDate, "12345"} {
		if strings.Contains(dump, id) {
			t.Errorf("report contains %s", id)
		}
	}
	keys, err := tab.DistinctKeys(all(tab), "id_number")
	if err != nil || !reflect.DeepEqual(keys, []string{haizhu, tianhe}) {
		t.Errorf("keys %v, %v", keys, err)
	}
}

func TestOptionalIDColumn(t *testing.T) {
	s := Schema{Columns: []Column{{Name: "id", Kind: KindID}, {Name: "spouse", Kind: KindID}}}
	tab, rep := mustLoad(t, "id,spouse\n"+tianhe+",\n"+haizhu+",bad\n", s, Options{})
	if tab.Len() != 1 || rep.InvalidIDs != 1 || rep.InvalidIDExamples[0].Column != "spouse" {
		t.Errorf("Len %d, report %+v", tab.Len(), rep)
	}
	if v, _ := tab.Value(0, "spouse"); !v.IsNull() {
		t.Errorf("empty optional id = %v; want null", v)
	}
}

func TestAsOf(t *testing.T) {
	young := withCheck(t, "44010620260601123")
	in := "id_number,name,district,monthly_benefit_fen,household_size\n" + young + ",婴,天河区,0,1\n"
	_, rep := mustLoad(t, in, benefits, Options{})
	if rep.Loaded != 1 {
		t.Errorf("default reference: %+v", rep)
	}
	_, rep = mustLoad(t, in, benefits, Options{AsOf: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)})
	if rep.Loaded != 0 || rep.InvalidIDs != 1 {
		t.Errorf("AsOf before birth: %+v", rep)
	}
}

func TestHeaderErrors(t *testing.T) {
	for _, tc := range []struct{ in, msg string }{
		{"", "empty file: no header row"},
		{"\uFEFF", "empty file: no header row"},
		{"id_number,name\n", "header lacks declared column(s) district, monthly_benefit_fen, household_size"},
		{"id_number,name,district,monthly_benefit_fen,household_size,name\n", "header names column name more than once"},
		{"id_number,\"name\n", "header row: "},
	} {
		_, _, err := LoadCSV(strings.NewReader(tc.in), benefits, Options{})
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("LoadCSV(%q) = %v; want %q", tc.in, err, tc.msg)
		}
	}
	// A repeated column that is not declared is ignored.
	if _, _, err := LoadCSV(strings.NewReader("id_number,name,district,monthly_benefit_fen,household_size,x,x\n"), benefits, Options{}); err != nil {
		t.Error(err)
	}
}

func TestSchemaValidate(t *testing.T) {
	for _, tc := range []struct {
		s   Schema
		msg string
	}{
		{Schema{}, "no columns"},
		{Schema{Columns: []Column{{Name: "a b", Kind: KindInt}}}, "must match"},
		{Schema{Columns: []Column{{Name: "1a", Kind: KindInt}}}, "must match"},
		{Schema{Columns: []Column{{Name: "地区", Kind: KindString}}}, "must match"},
		{Schema{Columns: []Column{{Name: "a", Kind: KindInt}, {Name: "a", Kind: KindString}}}, "declared twice"},
		{Schema{Columns: []Column{{Name: "a", Kind: "money"}}}, `kind "money"`},
	} {
		if err := tc.s.Validate(); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Validate(%+v) = %v; want %q", tc.s, err, tc.msg)
		}
		if _, _, err := LoadCSV(strings.NewReader("a\n"), tc.s, Options{}); err == nil {
			t.Errorf("LoadCSV accepted schema %+v", tc.s)
		}
	}
	if err := benefits.Validate(); err != nil {
		t.Error(err)
	}
}

func TestLimits(t *testing.T) {
	head := "id_number,name,district,monthly_benefit_fen,household_size\n"
	row := tianhe + ",甲,天河区,100,1\n"

	_, _, err := LoadCSV(strings.NewReader(head+strings.Repeat(row, 3)), benefits, Options{MaxRows: 3})
	if err != nil {
		t.Errorf("3 rows, limit 3: %v", err)
	}
	_, _, err = LoadCSV(strings.NewReader(head+strings.Repeat(row, 4)), benefits, Options{MaxRows: 3})
	if err == nil || !strings.Contains(err.Error(), "more than 3 data rows") {
		t.Errorf("4 rows, limit 3: %v", err)
	}

	long := tianhe + "," + strings.Repeat("名", 100) + ",天河区,100,1\n" // 300-byte name
	_, rep, err := LoadCSV(strings.NewReader(head+row+long), benefits, Options{MaxFieldBytes: 299})
	if err == nil || len(rep.Errors) != 1 || rep.Errors[0] != (RowError{Line: 3, Column: "name", Msg: "field is 300 bytes, over the 299-byte limit"}) {
		t.Errorf("long field: %v, %+v", err, rep)
	}

	// An endless row is refused after a bounded read, not buffered whole.
	src := &countingReader{r: io.MultiReader(strings.NewReader(head+row), endless{})}
	_, _, err = LoadCSV(src, benefits, Options{})
	if err == nil || !strings.Contains(err.Error(), "the row after line 2 is longer than") {
		t.Errorf("endless row: %v", err)
	}
	if src.n > 64<<10 {
		t.Errorf("read %d bytes of an endless row", src.n)
	}
	// Likewise an endless header.
	src = &countingReader{r: endless{}}
	if _, _, err = LoadCSV(src, benefits, Options{}); err == nil || src.n > 2*maxHeaderBytes {
		t.Errorf("endless header: %v after %d bytes", err, src.n)
	}
}

type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestSelect(t *testing.T) {
	in := strings.Join([]string{
		"id_number,name,district,monthly_benefit_fen,household_size",
		tianhe + ",甲,天河区,150000,1",
		haizhu + ",乙,海珠区,90000,",
		tianhe + ",甲,天河区,120000,2", // a second record for the same person
		xID + ",丙,天河区,80000,3",
		haizhu + ",乙,天河区,200000,",
	}, "\n")
	tab, _ := mustLoad(t, in, benefits, Options{})
	sel := func(f string) []int {
		t.Helper()
		e, err := filter.Parse(f)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := tab.Select(e)
		if err != nil {
			t.Fatalf("Select(%q): %v", f, err)
		}
		return rows
	}
	for _, tc := range []struct {
		f    string
		want []int
	}{
		{"", []int{0, 1, 2, 3, 4}},
		{"district = '天河区' AND monthly_benefit_fen > 100000", []int{0, 2, 4}},
		{"household_size >= 2", []int{2, 3}}, // nulls are not selected
		{"NOT household_size >= 2", []int{0}},
		{"id_number = '11010519491231002X'", []int{3}},
		{"district IN ('海珠区', '越秀区')", []int{1}},
	} {
		if got := sel(tc.f); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Select(%q) = %v; want %v", tc.f, got, tc.want)
		}
	}

	rows := sel("district = '天河区' AND monthly_benefit_fen > 100000")
	keys, err := tab.DistinctKeys(rows, "id_number")
	if err != nil || !reflect.DeepEqual(keys, []string{haizhu, tianhe}) {
		t.Errorf("DistinctKeys = %v, %v", keys, err)
	}
	vals, err := tab.Ints(rows, "monthly_benefit_fen")
	if err != nil || !reflect.DeepEqual(vals, []int64{150000, 120000, 200000}) {
		t.Errorf("Ints = %v, %v", vals, err)
	}
	names, err := tab.Strings(rows, "district")
	if err != nil || !reflect.DeepEqual(names, []string{"天河区", "天河区", "天河区"}) {
		t.Errorf("Strings = %v, %v", names, err)
	}

	for _, tc := range []struct {
		err error
		msg string
	}{
		{selectErr(tab, "district = 1"), "column district is string but is compared with an integer literal"},
		{selectErr(tab, "nope = 1"), "unknown column nope"},
		{second(tab.Ints(rows, "household_size")), "line 6: column household_size is empty"},
		{second(tab.Ints(rows, "district")), "column district is string, not int"},
		{second(tab.Ints([]int{5}, "monthly_benefit_fen")), "row 5 out of range"},
		{second(tab.DistinctKeys(rows, "monthly_benefit_fen")), "is int and cannot be a key"},
		{second(tab.DistinctKeys(rows, "nope")), "no column nope"},
		{second(tab.Strings([]int{-1}, "name")), "row -1 out of range"},
		{second(tab.Strings(rows, "household_size")), "is int, not a string"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.msg) {
			t.Errorf("error %v; want %q", tc.err, tc.msg)
		}
	}
}

func selectErr(tab *Table, f string) error {
	e, err := filter.Parse(f)
	if err != nil {
		return err
	}
	_, err = tab.Select(e)
	return err
}

func second[T any](_ T, err error) error { return err }

func all(t *Table) []int {
	rows := make([]int, t.Len())
	for i := range rows {
		rows[i] = i
	}
	return rows
}

func withCheck(t *testing.T, first17 string) string {
	t.Helper()
	c, err := idnum.CheckDigit(first17)
	if err != nil {
		t.Fatal(err)
	}
	return first17 + string(c)
}

// No input makes LoadCSV panic, and what it loads is consistent.
func FuzzLoadCSV(f *testing.F) {
	f.Add("id_number,name,district,monthly_benefit_fen,household_size\n" + tianhe + ",甲,天河区,1,\n")
	f.Add("\uFEFFdistrict,id_number,monthly_benefit_fen,household_size,name\r\n天河区,11010519491231002x,-5,1,\"a\"\"b\"\r\n")
	f.Add("id_number,name,district,monthly_benefit_fen,household_size\nbad,\"x\n,,1.5\n")
	f.Fuzz(func(t *testing.T, in string) {
		tab, rep, err := LoadCSV(strings.NewReader(in), benefits, Options{MaxRows: 50, MaxFieldBytes: 64, MaxReported: 3})
		if err != nil {
			if tab != nil {
				t.Fatal("table with an error")
			}
			return
		}
		if rep.Rows != rep.Loaded+rep.InvalidIDs || rep.Loaded != tab.Len() || rep.Malformed != 0 {
			t.Fatalf("inconsistent report %+v, Len %d", rep, tab.Len())
		}
		for i := range tab.Len() {
			v, err := tab.Value(i, "id_number")
			if err != nil {
				t.Fatal(err)
			}
			if id, err := idnum.Normalise(v.Str()); err != nil || id != v.Str() {
				t.Fatalf("loaded ID %q is not normalised", v.Str())
			}
		}
	})
}
