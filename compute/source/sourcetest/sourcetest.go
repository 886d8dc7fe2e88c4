// Package sourcetest gives tests a real PostgreSQL and a real MySQL or
// MariaDB, each test with a schema (database) of its own.
//
// Postgres and MySQL pick, in order:
//  1. $UNSEEN_TEST_POSTGRES / $UNSEEN_TEST_MYSQL (a DSN): it must answer,
//     or the test fails — a CI job that asked for a database must never
//     silently skip;
//  2. a server already answering on the local default (PostgreSQL on
//     127.0.0.1:5432 with trust authentication, user postgres or root,
//     database test or postgres; MariaDB on 127.0.0.1:3306, user root
//     without a password);
//  3. the machine's own service, started (PostgreSQL with
//     `pg_ctlcluster --skip-systemctl-redirect VERSION main start` for each
//     cluster version in /etc/postgresql; MariaDB with `start-stop-daemon
//     --start --oknodo --background --exec /usr/sbin/mariadbd`), then the
//     local default again. A service started here is a system service and
//     is left running;
//  4. otherwise the test is skipped, saying how to provide one.
//
// Each test gets a fresh schema (PostgreSQL) or database (MySQL) named
// unseentest_<random>, dropped when the test ends, so tests share servers
// safely with other packages tested in parallel.
package sourcetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// Environment variables naming the servers a test run must use.
const (
	PostgresEnv = "UNSEEN_TEST_POSTGRES" // e.g. postgres://user@host:5432/db?sslmode=disable
	MySQLEnv    = "UNSEEN_TEST_MYSQL"    // e.g. root@tcp(127.0.0.1:3306)/test
)

// Local defaults, tried in order.
var (
	localPostgres = []string{
		"postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
		"postgres://root@127.0.0.1:5432/test?sslmode=disable",
		"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
	}
	localMySQL = []string{
		"root@tcp(127.0.0.1:3306)/test",
		"root@tcp(127.0.0.1:3306)/",
	}
)

// PostgresDB is a schema of the test's own on a PostgreSQL server.
type PostgresDB struct {
	DSN    string    // a DSN for the server's database holding Schema
	Schema string    // the test's schema, dropped (CASCADE) when it ends
	Conn   *pgx.Conn // an administrative connection, closed when it ends
}

// MySQLDB is a database of the test's own on a MySQL or MariaDB server.
type MySQLDB struct {
	DSN      string  // a DSN with Database as its default database
	Database string  // the test's database, dropped when it ends
	DB       *sql.DB // connections to it, closed when the test ends
}

// found caches, per process, which server answered (or why none did).
type found struct {
	once sync.Once
	dsn  string
	skip string
}

var pgFound, myFound found

// Postgres returns a fresh schema on a PostgreSQL server (see the package
// doc for which server).
func Postgres(t testing.TB) *PostgresDB {
	t.Helper()
	dsn := pick(t, &pgFound, PostgresEnv, localPostgres, pingPostgres, startPostgres,
		"no PostgreSQL: set "+PostgresEnv+"=postgres://user@host:port/db, run one on 127.0.0.1:5432 with trust authentication, or install the postgresql package")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("sourcetest: PostgreSQL: %v", err)
	}
	d := &PostgresDB{DSN: dsn, Schema: "unseentest_" + randHex(6), Conn: conn}
	d.Exec(t, "CREATE SCHEMA "+d.Schema)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+d.Schema+" CASCADE"); err != nil {
			t.Errorf("sourcetest: dropping schema %s: %v", d.Schema, err)
		}
		conn.Close(ctx)
	})
	return d
}

// Exec runs statements on the administrative connection, failing the test
// on error.
func (d *PostgresDB) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := d.Conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("sourcetest: %s: %v", sql, err)
	}
}

// MySQL returns a fresh database on a MySQL or MariaDB server (see the
// package doc for which server).
func MySQL(t testing.TB) *MySQLDB {
	t.Helper()
	dsn := pick(t, &myFound, MySQLEnv, localMySQL, pingMySQL, startMySQL,
		"no MySQL/MariaDB: set "+MySQLEnv+"=user:password@tcp(host:port)/db, run one on 127.0.0.1:3306 (root, no password), or install the mariadb-server package")
	admin, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatalf("sourcetest: MySQL: %v", err)
	}
	defer admin.Close()
	name := "unseentest_" + randHex(6)
	if _, err := admin.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4"); err != nil {
		t.Fatalf("sourcetest: creating database %s: %v", name, err)
	}
	cfg, err := mysqldrv.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("sourcetest: %v", err)
	}
	cfg.DBName = name
	d := &MySQLDB{DSN: cfg.FormatDSN(), Database: name}
	if d.DB, err = sql.Open("mysql", d.DSN); err != nil {
		t.Fatalf("sourcetest: MySQL: %v", err)
	}
	t.Cleanup(func() {
		d.DB.Close()
		admin, err := sql.Open("mysql", dsn)
		if err == nil {
			_, err = admin.Exec("DROP DATABASE " + name)
			admin.Close()
		}
		if err != nil {
			t.Errorf("sourcetest: dropping database %s: %v", name, err)
		}
	})
	return d
}

// Exec runs a statement on the test's database, failing the test on error.
func (d *MySQLDB) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := d.DB.Exec(sql, args...); err != nil {
		t.Fatalf("sourcetest: %s: %v", sql, err)
	}
}

// pick returns the DSN of a server that answers, failing if the env var
// names one that does not and skipping if none can be found or started.
func pick(t testing.TB, f *found, env string, local []string, ping func(string) error, start func() error, how string) string {
	t.Helper()
	if dsn := os.Getenv(env); dsn != "" {
		if err := ping(dsn); err != nil {
			t.Fatalf("%s is set but the server does not answer: %v", env, err)
		}
		return dsn
	}
	f.once.Do(func() {
		try := func() bool {
			for _, dsn := range local {
				if ping(dsn) == nil {
					f.dsn = dsn
					return true
				}
			}
			return false
		}
		if try() {
			return
		}
		// A start can fail because another test process has just started
		// the service ("already running"), so poll whatever it says.
		startErr := start()
		wait := 30 * time.Second
		if errors.Is(startErr, errNoService) {
			wait = 0
		}
		for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
			if try() {
				return
			}
		}
		if startErr != nil {
			f.skip = fmt.Sprintf("%s (starting the local service: %v)", how, startErr)
		} else {
			f.skip = how + " (the local service was started but did not answer within 30s)"
		}
	})
	if f.dsn == "" {
		t.Skip(f.skip)
	}
	return f.dsn
}

func pingPostgres(dsn string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	return c.Ping(ctx)
}

func pingMySQL(dsn string) error {
	cfg, err := mysqldrv.ParseDSN(dsn)
	if err != nil {
		return err
	}
	cfg.Timeout = 3 * time.Second
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

// startPostgres starts the machine's PostgreSQL clusters named main.
func startPostgres() error {
	bin, err := exec.LookPath("pg_ctlcluster")
	if err != nil {
		return fmt.Errorf("%w: %v", errNoService, err)
	}
	vers, _ := filepath.Glob("/etc/postgresql/*/main")
	if len(vers) == 0 {
		return fmt.Errorf("%w: no cluster in /etc/postgresql/*/main", errNoService)
	}
	sort.Strings(vers)
	var last error
	for _, v := range vers {
		ver := filepath.Base(filepath.Dir(v))
		out, err := exec.Command(bin, "--skip-systemctl-redirect", ver, "main", "start").CombinedOutput()
		if err == nil {
			return nil
		}
		last = fmt.Errorf("pg_ctlcluster %s main start: %v: %s", ver, err, out)
	}
	return last
}

// startMySQL starts the machine's MariaDB server in the background.
func startMySQL() error {
	const daemon = "/usr/sbin/mariadbd"
	if _, err := os.Stat(daemon); err != nil {
		return fmt.Errorf("%w: %v", errNoService, err)
	}
	bin, err := exec.LookPath("start-stop-daemon")
	if err != nil {
		return fmt.Errorf("%w: %v", errNoService, err)
	}
	out, err := exec.Command(bin, "--start", "--oknodo", "--background", "--exec", daemon).CombinedOutput()
	if err != nil {
		return fmt.Errorf("start-stop-daemon: %v: %s", err, out)
	}
	return nil
}

// errNoService is a machine without the service to start.
var errNoService = errors.New("not installed")

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
