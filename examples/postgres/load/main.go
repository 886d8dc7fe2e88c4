// Command load puts the housing department's example dataset into
// PostgreSQL, so a node can read it where it lives instead of from CSV:
//
//	UNSEEN_HOUSING_DSN='postgres://postgres@127.0.0.1:5432/unseen_housing?sslmode=disable' \
//	    go run ./examples/postgres/load
//
// It creates the DSN's database if it does not exist (connecting to the
// server's "postgres" database to do so), creates the table
// <schema>.property_owners if it does not exist, and replaces its rows with
// those of examples/data/housing/property_owners.csv in one transaction, so
// running it again leaves the same table. Fields are loaded as the file has
// them (an empty field as NULL): checking them is the node's job.
package main

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	dsnEnv := flag.String("dsn-env", "UNSEEN_HOUSING_DSN", "environment variable holding the target database's DSN")
	file := flag.String("csv", "examples/data/housing/property_owners.csv", "the CSV file to load")
	schema := flag.String("schema", "public", "the schema to hold the table")
	flag.Parse()
	dsn := os.Getenv(*dsnEnv)
	if dsn == "" {
		fmt.Fprintf(os.Stderr, "load: set %s to the target database's DSN, e.g. postgres://postgres@127.0.0.1:5432/unseen_housing?sslmode=disable\n", *dsnEnv)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n, err := Load(ctx, dsn, *schema, *file)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
	slog.Info("loaded", "table", *schema+".property_owners", "rows", n, "from", *file)
}

// Load creates the database (if missing) and the table, and replaces the
// table's rows with the file's. It returns the rows loaded.
func Load(ctx context.Context, dsn, schema, file string) (int64, error) {
	if !ident(schema) {
		return 0, fmt.Errorf("schema %q is not an identifier", schema)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return 0, err
	}
	if err := createDatabase(ctx, cfg); err != nil {
		return 0, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())

	rows, err := readCSV(file)
	if err != nil {
		return 0, err
	}
	table := pgx.Identifier{schema, "property_owners"}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.Background())
	for _, stmt := range []string{
		"CREATE SCHEMA IF NOT EXISTS " + pgx.Identifier{schema}.Sanitize(),
		// row_no is the row key: the file's line, so a problem the node
		// reports can be found without showing a value.
		`CREATE TABLE IF NOT EXISTS ` + table.Sanitize() + ` (
			row_no             bigint PRIMARY KEY,
			id_number          varchar(18),
			district           text,
			property_count     integer,
			assessed_value_fen bigint
		)`,
		"CREATE INDEX IF NOT EXISTS property_owners_district ON " + table.Sanitize() + " (district)",
		"TRUNCATE " + table.Sanitize(),
	} {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return 0, err
		}
	}
	n, err := tx.CopyFrom(ctx, table, []string{"row_no", "id_number", "district", "property_count", "assessed_value_fen"}, pgx.CopyFromRows(rows))
	if err != nil {
		return 0, err
	}
	return n, tx.Commit(ctx)
}

// createDatabase creates cfg's database unless it exists.
func createDatabase(ctx context.Context, cfg *pgx.ConnConfig) error {
	if cfg.Database == "" || cfg.Database == "postgres" {
		return nil
	}
	admin := cfg.Copy()
	admin.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return fmt.Errorf("connecting to the server to create database %s: %w", cfg.Database, err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", cfg.Database).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{cfg.Database}.Sanitize()+" ENCODING 'UTF8' TEMPLATE template0")
	return err
}

// readCSV reads the file's rows: line number, then the four columns, an
// empty field as NULL and the ints as int64.
func readCSV(file string) ([][]any, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cr := csv.NewReader(f)
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: header: %w", file, err)
	}
	want := []string{"id_number", "district", "property_count", "assessed_value_fen"}
	pos := make([]int, len(want))
	for i, w := range want {
		pos[i] = -1
		for j, h := range header {
			if strings.TrimSpace(strings.TrimPrefix(h, "\uFEFF")) == w {
				pos[i] = j
			}
		}
		if pos[i] < 0 {
			return nil, fmt.Errorf("%s: no column %s", file, w)
		}
	}
	var rows [][]any
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		line, _ := cr.FieldPos(0)
		row := []any{int64(line)}
		for i, p := range pos {
			v := strings.TrimSpace(rec[p])
			switch {
			case v == "":
				row = append(row, nil)
			case i >= 2:
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("%s: line %d: column %s is not an integer", file, line, want[i])
				}
				row = append(row, n)
			default:
				row = append(row, v)
			}
		}
		rows = append(rows, row)
	}
}

func ident(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
