package source

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is a dataset in a PostgreSQL table or view.
type Postgres struct {
	pool   *pgxpool.Pool
	cfg    SQLConfig
	schema Schema
	opts   Options
	name   []string     // the table's parts, unquoted
	table  string       // quoted
	mu     sync.RWMutex // guards cols and key, which Validate renews
	cols   []dbColumn
	key    string // the row key's SELECT expression, or ""
}

var _ Source = (*Postgres)(nil)

// OpenPostgres connects to the database named by cfg's DSN and checks the
// table against the schema (Validate).
func OpenPostgres(ctx context.Context, cfg SQLConfig, s Schema, opts Options) (*Postgres, error) {
	name, err := cfg.check(s)
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	dsn, err := cfg.readDSN()
	if err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgconn's error shows the DSN with its password redacted.
		return nil, fmt.Errorf("source: the PostgreSQL DSN does not parse: %w", err)
	}
	pc.MaxConnLifetime = cfg.MaxConnLifetime
	pc.MaxConns = int32(cfg.MaxConns)
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	// On cancellation, ask the server to stop the statement (rather than
	// only dropping the connection, which a busy backend may not notice
	// until its statement ends), and drop the connection if it has not
	// answered within 5s.
	pc.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: 5 * time.Second}
	}
	if _, ok := pc.ConnConfig.RuntimeParams["application_name"]; !ok {
		pc.ConnConfig.RuntimeParams["application_name"] = "unseen-node"
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("source: PostgreSQL: %w", err)
	}
	p := &Postgres{pool: pool, cfg: cfg, schema: s, opts: opts.withDefaults(), name: name, table: postgres.quoteTable(name)}
	if err := p.Validate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return p, nil
}

// Close closes the connections.
func (p *Postgres) Close() error {
	p.pool.Close()
	return nil
}

// Type OIDs of PostgreSQL's built-in types (domains are resolved to their
// base type).
const (
	oidInt8    = 20
	oidInt2    = 21
	oidInt4    = 23
	oidText    = 25
	oidBpchar  = 1042
	oidVarchar = 1043
	oidNumeric = 1700
)

const pgColumnsSQL = `SELECT a.attname, COALESCE(NULLIF(t.typbasetype, 0), t.oid)::int8, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`

// Validate checks that the table or view exists, has every declared column
// (and the row key) with a compatible type, and can be read.
func (p *Postgres) Validate(ctx context.Context) error {
	var exists bool
	if err := p.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", p.table).Scan(&exists); err != nil {
		return p.dbError(ctx, err)
	}
	if !exists {
		return fmt.Errorf("source: PostgreSQL table or view %s does not exist (names are case-sensitive: an unquoted name in SQL is folded to lower case)", strings.Join(p.name, "."))
	}
	rows, err := p.pool.Query(ctx, pgColumnsSQL, p.table)
	if err != nil {
		return p.dbError(ctx, err)
	}
	type colType struct {
		oid int64
		typ string
	}
	have := map[string]colType{}
	for rows.Next() {
		var n string
		var ct colType
		if err := rows.Scan(&n, &ct.oid, &ct.typ); err != nil {
			rows.Close()
			return p.dbError(ctx, err)
		}
		have[n] = ct
	}
	if err := rows.Err(); err != nil {
		return p.dbError(ctx, err)
	}
	var problems []string
	missing := func(name string) {
		msg := fmt.Sprintf("has no column %s", name)
		for n := range have {
			if strings.EqualFold(n, name) {
				msg += fmt.Sprintf(" (it has %s: names are case-sensitive)", n)
			}
		}
		problems = append(problems, msg)
	}
	cols := make([]dbColumn, len(p.schema.Columns))
	for i, c := range p.schema.Columns {
		ct, ok := have[c.Name]
		if !ok {
			missing(c.Name)
			continue
		}
		dc, err := pgColumn(c, ct.oid, ct.typ)
		if err != nil {
			problems = append(problems, err.Error())
		}
		cols[i] = dc
	}
	key := ""
	if k := p.cfg.RowKey; k != "" {
		ct, ok := have[k]
		switch {
		case !ok:
			missing(k + " (the row key)")
		case ct.oid == oidBpchar:
			key = postgres.quote(k) + "::text"
		case ct.oid == oidInt2 || ct.oid == oidInt4 || ct.oid == oidInt8 || ct.oid == oidText || ct.oid == oidVarchar || ct.oid == oidNumeric:
			key = postgres.quote(k)
		default:
			problems = append(problems, fmt.Sprintf("row key %s has type %s; it must be an integer or text", k, ct.typ))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("source: PostgreSQL %s: %s", strings.Join(p.name, "."), strings.Join(problems, "; "))
	}
	p.mu.Lock()
	p.cols, p.key = cols, key
	p.mu.Unlock()
	// Reading nothing still checks the privilege to read.
	all := Query{}
	for _, c := range p.schema.Columns {
		all.Columns = append(all.Columns, c.Name)
	}
	pl, err := buildPlan(postgres, p.table, p.schema, cols, key, all)
	if err != nil {
		return err
	}
	tx, err := p.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return p.dbError(ctx, err)
	}
	defer rollback(tx)
	if _, err := tx.Exec(ctx, pl.sql+" LIMIT 0"); err != nil {
		return p.dbError(ctx, err)
	}
	return nil
}

// pgColumn maps a declared column onto a PostgreSQL column of the given
// base type.
func pgColumn(c Column, oid int64, typ string) (dbColumn, error) {
	q := postgres.quote(c.Name)
	switch oid {
	case oidInt2, oidInt4, oidInt8:
		if c.Kind == KindInt {
			return dbColumn{sel: q, cmp: q}, nil
		}
	case oidNumeric:
		if c.Kind == KindInt {
			// Compared here, after the whole-number check.
			return dbColumn{sel: q, dec: decDecimal}, nil
		}
	case oidText, oidVarchar, oidBpchar:
		sel := q
		if oid == oidBpchar {
			sel = q + "::text" // without the pad spaces, as char(n) compares
		}
		switch c.Kind {
		case KindInt:
			return dbColumn{sel: sel, dec: decTrimInt}, nil
		case KindID:
			return dbColumn{sel: sel}, nil // compared by its normalised form, here
		}
		dc := dbColumn{sel: sel, cmp: "(" + sel + ` COLLATE "C")`}
		if oid != oidBpchar {
			dc.hint = q
		}
		return dc, nil
	}
	want := "text, varchar or char"
	if c.Kind == KindInt {
		want = "smallint, integer, bigint, numeric or a text type"
	}
	return dbColumn{}, fmt.Errorf("column %s has type %s; a%s %s column needs %s", c.Name, typ, map[bool]string{true: "n", false: ""}[c.Kind == KindInt || c.Kind == KindID], c.Kind, want)
}

func rollback(tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = tx.Rollback(ctx) // read-only: nothing to keep; a dead connection is dropped
}

// cursorName is the scan's cursor; each scan has its own transaction.
const cursorName = "unseen_scan"

// Scan runs q's filter in PostgreSQL through a server-side cursor and
// streams the rows to fn, FetchRows at a time.
func (p *Postgres) Scan(ctx context.Context, q Query, fn func(*Row) error) (*Report, error) {
	if err := p.schema.check(q); err != nil {
		return nil, err
	}
	p.mu.RLock()
	cols, key := p.cols, p.key
	p.mu.RUnlock()
	pl, err := buildPlan(postgres, p.table, p.schema, cols, key, q)
	if err != nil {
		return nil, err
	}
	sc := newScanner(ctx, p.schema, pl.read, q, p.opts, fn)
	sc.recheck = pl.recheck
	sc.rep.Pushdown = pl.pushdown
	sc.row.keyCol = p.cfg.RowKey
	decs := make([]decoding, len(pl.read))
	for i, c := range pl.read {
		decs[i] = cols[c].dec
	}

	tx, err := p.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return sc.rep, p.dbError(ctx, err)
	}
	defer rollback(tx)
	ms := strconv.FormatInt(p.cfg.StatementTimeout.Milliseconds(), 10)
	if _, err := tx.Exec(ctx, "SELECT set_config('statement_timeout', $1, true)", ms); err != nil {
		return sc.rep, p.dbError(ctx, err)
	}
	args := append([]any{pgx.QueryExecModeExec}, pl.args...)
	if _, err := tx.Exec(ctx, "DECLARE "+cursorName+" NO SCROLL CURSOR FOR "+pl.sql, args...); err != nil {
		return sc.rep, p.dbError(ctx, err)
	}
	fetch := fmt.Sprintf("FETCH FORWARD %d FROM %s", p.cfg.FetchRows, cursorName)
	n := len(pl.read)
	for {
		// The simple protocol returns every column as text, which is what
		// the decoders read.
		rows, err := tx.Query(ctx, fetch, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			return sc.rep, p.dbError(ctx, err)
		}
		got := 0
		for rows.Next() {
			got++
			raw := rows.RawValues()
			sc.start(0)
			for i := range n {
				v, bad, inv := decodeDB(raw[i], raw[i] == nil, sc.cols[i], decs[i], p.opts)
				sc.set(i, v, bad, inv)
			}
			if key != "" {
				sc.row.keyRaw, sc.row.keyNull = raw[n], raw[n] == nil
			}
			if err := sc.finish(); err != nil {
				rows.Close()
				if ctx.Err() != nil {
					return sc.rep, fmt.Errorf("source: scan stopped: %w", ctx.Err())
				}
				return sc.rep, err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return sc.rep, p.dbError(ctx, err)
		}
		if got < p.cfg.FetchRows {
			break
		}
	}
	return sc.done()
}

// dbError describes a database error without quoting data: a data
// exception's message can quote a value (from a view that converts one).
func (p *Postgres) dbError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("source: scan stopped: %w", ctx.Err())
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "57014":
			return fmt.Errorf("source: PostgreSQL cancelled the statement (statement timeout %v) (SQLSTATE %s)", p.cfg.StatementTimeout, pe.Code)
		case strings.HasPrefix(pe.Code, "22"), strings.HasPrefix(pe.Code, "23"):
			return fmt.Errorf("source: PostgreSQL: a data error reading %s (SQLSTATE %s; the message is not shown, as it may quote a value)", strings.Join(p.name, "."), pe.Code)
		}
		return fmt.Errorf("source: PostgreSQL: %s (SQLSTATE %s)", pe.Message, pe.Code)
	}
	return fmt.Errorf("source: PostgreSQL: %w", err)
}
