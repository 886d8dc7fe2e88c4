package sourcetest

import (
	"context"
	"testing"
)

// Each test's schema (database) exists during the test and is gone after.
func TestCleanup(t *testing.T) {
	var pg *PostgresDB
	t.Run("postgres", func(t *testing.T) {
		pg = Postgres(t)
		pg.Exec(t, "CREATE TABLE "+pg.Schema+".t (x int)")
	})
	if pg != nil {
		d := Postgres(t)
		var n int
		if err := d.Conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_namespace WHERE nspname = $1", pg.Schema).Scan(&n); err != nil || n != 0 {
			t.Errorf("schema %s left behind (%d, %v)", pg.Schema, n, err)
		}
	}
	var my *MySQLDB
	t.Run("mysql", func(t *testing.T) {
		my = MySQL(t)
		my.Exec(t, "CREATE TABLE t (x int)")
	})
	if my != nil {
		d := MySQL(t)
		var n int
		if err := d.DB.QueryRow("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", my.Database).Scan(&n); err != nil || n != 0 {
			t.Errorf("database %s left behind (%d, %v)", my.Database, n, err)
		}
	}
}
