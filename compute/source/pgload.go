package source

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// LoadPostgresIDs (re)creates table (schema.table) with one text column
// and fills it by COPY with n values next(0), …, next(n-1), streamed: the
// synthetic departments of `unseen bench --source postgres`. The schema is
// created if missing. Never used on a department's data: the node only
// reads (Postgres.Scan, read-only transactions).
func LoadPostgresIDs(ctx context.Context, dsn, table, column string, n int, next func(i int) string) error {
	schema, name, ok := strings.Cut(table, ".")
	if !ok || !validIdent(schema) || !validIdent(name) || !validIdent(column) {
		return fmt.Errorf("source: %q.%q is not a simple schema.table and column", table, column)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("source: postgres: %w", err)
	}
	defer conn.Close(context.Background())
	ident := pgx.Identifier{schema, name}.Sanitize()
	for _, q := range []string{
		"CREATE SCHEMA IF NOT EXISTS " + pgx.Identifier{schema}.Sanitize(),
		"DROP TABLE IF EXISTS " + ident,
		"CREATE TABLE " + ident + " (" + pgx.Identifier{column}.Sanitize() + " text NOT NULL)",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("source: postgres: %w", err)
		}
	}
	i := 0
	_, err = conn.CopyFrom(ctx, pgx.Identifier{schema, name}, []string{column}, pgx.CopyFromFunc(func() ([]any, error) {
		if i >= n {
			return nil, nil
		}
		i++
		return []any{next(i - 1)}, nil
	}))
	if err != nil {
		return fmt.Errorf("source: postgres: copy into %s: %w", table, err)
	}
	return nil
}

func validIdent(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
