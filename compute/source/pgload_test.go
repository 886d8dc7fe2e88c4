package source_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/unseen-data/unseen/compute/source"
	"github.com/unseen-data/unseen/compute/source/sourcetest"
)

// LoadPostgresIDs (the bench's loader) fills a table by COPY, replacing
// one of the same name, and refuses names that are not simple.
func TestLoadPostgresIDs(t *testing.T) {
	db := sourcetest.Postgres(t)
	ctx := context.Background()
	table := db.Schema + ".ids"
	for _, n := range []int{5, 1000} {
		if err := source.LoadPostgresIDs(ctx, db.DSN, table, "id_number", n, func(i int) string { return fmt.Sprint("id", i) }); err != nil {
			t.Fatal(err)
		}
		var count int
		var last string
		if err := db.Conn.QueryRow(ctx, "SELECT count(*), max(id_number) FROM "+table).Scan(&count, &last); err != nil {
			t.Fatal(err)
		}
		if count != n || last != "id999" && n == 1000 {
			t.Fatalf("%d rows (max %s), want %d", count, last, n)
		}
	}
	for _, bad := range []string{"ids", "a.b.c", `x."y"`, "X.y"} {
		if err := source.LoadPostgresIDs(ctx, db.DSN, bad, "id_number", 1, func(int) string { return "" }); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
}
