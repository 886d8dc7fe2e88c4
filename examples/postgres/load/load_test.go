package main

import (
	"context"
	"slices"
	"testing"

	"github.com/unseen-data/unseen/compute/source"
	"github.com/unseen-data/unseen/compute/source/sourcetest"
	"github.com/unseen-data/unseen/policy/filter"
)

const exampleCSV = "../../data/housing/property_owners.csv"

var housing = source.Schema{Columns: []source.Column{
	{Name: "id_number", Kind: source.KindID, Required: true},
	{Name: "district", Kind: source.KindString},
	{Name: "property_count", Kind: source.KindInt},
	{Name: "assessed_value_fen", Kind: source.KindInt},
}}

// The example dataset loads, twice to the same effect, and a node reading
// it from PostgreSQL selects exactly what it selects from the CSV file.
func TestLoadMatchesCSV(t *testing.T) {
	db := sourcetest.Postgres(t)
	ctx := context.Background()
	n1, err := Load(ctx, db.DSN, db.Schema, exampleCSV)
	if err != nil {
		t.Fatal(err)
	}
	n2, err := Load(ctx, db.DSN, db.Schema, exampleCSV)
	if err != nil {
		t.Fatal(err)
	}
	var count int64
	if err := db.Conn.QueryRow(ctx, "SELECT count(*) FROM "+db.Schema+".property_owners").Scan(&count); err != nil {
		t.Fatal(err)
	}
	if n1 != n2 || count != n1 || count < 1000 {
		t.Fatalf("loaded %d then %d rows; the table has %d", n1, n2, count)
	}

	csvSrc, csvRep, err := source.OpenCSV(ctx, nil, exampleCSV, housing, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("UNSEEN_LOAD_TEST_DSN", db.DSN)
	pg, err := source.OpenPostgres(ctx, source.SQLConfig{Table: db.Schema + ".property_owners", DSNEnv: "UNSEEN_LOAD_TEST_DSN", RowKey: "row_no"}, housing, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	for _, f := range []string{
		"",
		"district = '天河区'",
		"district IN ('白云区', '南沙区') AND property_count >= 2",
		"NOT district = '天河区' OR assessed_value_fen < 400000000",
		"id_number = '440111198411303229'",
	} {
		e, err := filter.Parse(f)
		if err != nil {
			t.Fatal(err)
		}
		q := source.Query{Columns: []string{"id_number", "assessed_value_fen"}, Filter: e}
		a, repA := scan(t, csvSrc, q)
		b, repB := scan(t, pg, q)
		if !slices.Equal(a, b) || len(a) == 0 {
			t.Errorf("%q: CSV selects %d rows, PostgreSQL %d", f, len(a), len(b))
		}
		if repA.InvalidIDs != csvRep.InvalidIDs || (f == "" && repB.InvalidIDs != csvRep.InvalidIDs) {
			t.Errorf("%q: invalid IDs: CSV %d, PostgreSQL %d, at open %d", f, repA.InvalidIDs, repB.InvalidIDs, csvRep.InvalidIDs)
		}
	}
}

func scan(t *testing.T, src source.Source, q source.Query) ([]string, *source.Report) {
	t.Helper()
	var out []string
	rep, err := src.Scan(context.Background(), q, func(r *source.Row) error {
		out = append(out, r.Value(0).Str()+"|"+r.Value(1).String())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out, rep
}
