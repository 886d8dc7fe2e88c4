package source

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"
)

// MySQL is a dataset in a MySQL or MariaDB table or view.
type MySQL struct {
	db      *sql.DB
	conn    driver.Connector
	cfg     SQLConfig
	schema  Schema
	opts    Options
	name    []string     // database and table, unquoted
	table   string       // quoted
	mu      sync.RWMutex // guards cols and key, which Validate renews
	cols    []dbColumn
	key     string
	mariadb bool
}

var _ Source = (*MySQL)(nil)

// OpenMySQL connects to the database named by cfg's DSN (the driver's
// user:password@tcp(host:port)/dbname form) and checks the table against
// the schema (Validate). Whatever the DSN says, parameters are bound by the
// server (never interpolated into the SQL text by the client), one
// statement is sent at a time, and the connection's character set is
// utf8mb4.
func OpenMySQL(ctx context.Context, cfg SQLConfig, s Schema, opts Options) (*MySQL, error) {
	name, err := cfg.check(s)
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	dsn, err := cfg.readDSN()
	if err != nil {
		return nil, err
	}
	mc, err := mysqldrv.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("source: the MySQL DSN does not parse: %w", err)
	}
	mc.InterpolateParams = false
	mc.MultiStatements = false
	mc.ParseTime = false
	if mc.Timeout == 0 {
		mc.Timeout = 10 * time.Second
	}
	if err := mc.Apply(mysqldrv.Charset("utf8mb4", "")); err != nil {
		return nil, fmt.Errorf("source: MySQL: %w", err)
	}
	conn, err := mysqldrv.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("source: MySQL: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetConnMaxLifetime(cfg.MaxConnLifetime)
	db.SetMaxOpenConns(cfg.MaxConns)
	db.SetMaxIdleConns(cfg.MaxConns)
	m := &MySQL{db: db, conn: conn, cfg: cfg, schema: s, opts: opts.withDefaults()}
	if len(name) == 1 {
		var cur sql.NullString
		if err := db.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&cur); err != nil {
			db.Close()
			return nil, m.dbError(ctx, err)
		}
		if !cur.Valid {
			db.Close()
			return nil, fmt.Errorf("source: MySQL table %s: the DSN names no database; write database.table", name[0])
		}
		name = []string{cur.String, name[0]}
	}
	m.name, m.table = name, mysql.quoteTable(name)
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		db.Close()
		return nil, m.dbError(ctx, err)
	}
	m.mariadb = strings.Contains(strings.ToLower(version), "mariadb")
	if err := m.Validate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return m, nil
}

// Close closes the connections.
func (m *MySQL) Close() error { return m.db.Close() }

const myColumnsSQL = `SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, COALESCE(CHARACTER_SET_NAME, '')
FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`

// Validate checks that the table or view exists, has every declared column
// (and the row key) with a compatible type, and can be read.
func (m *MySQL) Validate(ctx context.Context) error {
	rows, err := m.db.QueryContext(ctx, myColumnsSQL, m.name[0], m.name[1])
	if err != nil {
		return m.dbError(ctx, err)
	}
	type colType struct{ name, data, full, charset string }
	var have []colType
	for rows.Next() {
		var ct colType
		if err := rows.Scan(&ct.name, &ct.data, &ct.full, &ct.charset); err != nil {
			rows.Close()
			return m.dbError(ctx, err)
		}
		ct.data = strings.ToLower(ct.data)
		have = append(have, ct)
	}
	if err := rows.Err(); err != nil {
		return m.dbError(ctx, err)
	}
	if len(have) == 0 {
		return fmt.Errorf("source: MySQL table or view %s does not exist, or the user may not read it", strings.Join(m.name, "."))
	}
	// MySQL column names are case-insensitive.
	find := func(name string) (colType, bool) {
		for _, ct := range have {
			if strings.EqualFold(ct.name, name) {
				return ct, true
			}
		}
		return colType{}, false
	}
	var problems []string
	cols := make([]dbColumn, len(m.schema.Columns))
	for i, c := range m.schema.Columns {
		ct, ok := find(c.Name)
		if !ok {
			problems = append(problems, fmt.Sprintf("has no column %s", c.Name))
			continue
		}
		dc, err := myColumn(c, ct.data, ct.full, ct.charset)
		if err != nil {
			problems = append(problems, err.Error())
		}
		cols[i] = dc
	}
	key := ""
	if k := m.cfg.RowKey; k != "" {
		ct, ok := find(k)
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("has no column %s (the row key)", k))
		case myInts[ct.data] || myTexts[ct.data] || ct.data == "decimal":
			key = mysql.quote(k)
		default:
			problems = append(problems, fmt.Sprintf("row key %s has type %s; it must be an integer or text", k, ct.full))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("source: MySQL %s: %s", strings.Join(m.name, "."), strings.Join(problems, "; "))
	}
	m.mu.Lock()
	m.cols, m.key = cols, key
	m.mu.Unlock()
	all := Query{}
	for _, c := range m.schema.Columns {
		all.Columns = append(all.Columns, c.Name)
	}
	pl, err := buildPlan(mysql, m.table, m.schema, cols, key, all)
	if err != nil {
		return err
	}
	probe, err := m.db.QueryContext(ctx, pl.sql+" LIMIT 0")
	if err != nil {
		return m.dbError(ctx, err)
	}
	probe.Close()
	return probe.Err()
}

var (
	myInts  = map[string]bool{"tinyint": true, "smallint": true, "mediumint": true, "int": true, "bigint": true}
	myTexts = map[string]bool{"char": true, "varchar": true, "tinytext": true, "text": true, "mediumtext": true, "longtext": true}
)

// myColumn maps a declared column onto a MySQL column.
func myColumn(c Column, data, full, charset string) (dbColumn, error) {
	q := mysql.quote(c.Name)
	switch {
	case myInts[data]:
		if c.Kind != KindInt {
			break
		}
		if data == "bigint" && strings.Contains(strings.ToLower(full), "unsigned") {
			// Values over 2^63-1 are malformed, found only here.
			return dbColumn{sel: q}, nil
		}
		return dbColumn{sel: q, cmp: q}, nil
	case data == "decimal":
		if c.Kind == KindInt {
			return dbColumn{sel: q, dec: decDecimal}, nil
		}
	case myTexts[data]:
		switch c.Kind {
		case KindInt:
			return dbColumn{sel: q, dec: decTrimInt}, nil
		case KindID:
			return dbColumn{sel: q}, nil
		}
		// Binary strings compare byte by byte with no padding: the default
		// collations ignore case and trailing spaces. CONVERT makes the
		// bytes UTF-8 whatever the column's character set.
		dc := dbColumn{sel: q, cmp: "CAST(CONVERT(" + q + " USING utf8mb4) AS BINARY)"}
		if strings.HasPrefix(charset, "utf8") {
			dc.hint = q
		}
		return dc, nil
	}
	want := "char, varchar or a text type"
	if c.Kind == KindInt {
		want = "an integer type, decimal or a text type"
	}
	return dbColumn{}, fmt.Errorf("column %s has type %s; a %s column needs %s", c.Name, full, c.Kind, want)
}

// Scan runs q's filter in MySQL and streams the rows to fn as they arrive
// (the driver reads a result set unbuffered).
func (m *MySQL) Scan(ctx context.Context, q Query, fn func(*Row) error) (*Report, error) {
	if err := m.schema.check(q); err != nil {
		return nil, err
	}
	m.mu.RLock()
	cols, key := m.cols, m.key
	m.mu.RUnlock()
	pl, err := buildPlan(mysql, m.table, m.schema, cols, key, q)
	if err != nil {
		return nil, err
	}
	sc := newScanner(ctx, m.schema, pl.read, q, m.opts, fn)
	sc.recheck = pl.recheck
	sc.rep.Pushdown = pl.pushdown
	sc.row.keyCol = m.cfg.RowKey
	decs := make([]decoding, len(pl.read))
	for i, c := range pl.read {
		decs[i] = cols[c].dec
	}

	// Cancelling the scan's context makes the driver drop the connection,
	// so a scan stopped early does not read the rest of the result.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conn, err := m.db.Conn(sctx)
	if err != nil {
		return sc.rep, m.dbError(ctx, err)
	}
	defer conn.Close()
	// The driver drops the connection when the context ends, but the
	// server goes on with the statement until it next writes to it (while
	// holding its locks), so a scan that ends early also kills its
	// statement, from a connection of its own.
	var id int64
	if err := conn.QueryRowContext(sctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		return sc.rep, m.dbError(ctx, err)
	}
	// Deferred last, so it runs first: a scan that ends normally
	// unregisters the kill before its context is cancelled.
	stopKill := context.AfterFunc(sctx, func() { m.kill(id) })
	defer stopKill()
	var set string
	if m.mariadb {
		set = fmt.Sprintf("SET SESSION max_statement_time = %.3f", m.cfg.StatementTimeout.Seconds())
	} else {
		set = fmt.Sprintf("SET SESSION max_execution_time = %d", m.cfg.StatementTimeout.Milliseconds())
	}
	if _, err := conn.ExecContext(sctx, set); err != nil {
		return sc.rep, m.dbError(ctx, err)
	}
	tx, err := conn.BeginTx(sctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return sc.rep, m.dbError(ctx, err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(sctx, pl.sql, pl.args...)
	if err != nil {
		return sc.rep, m.dbError(ctx, err)
	}
	defer rows.Close()
	n := len(pl.read)
	raw := make([]sql.RawBytes, n+1)
	dest := make([]any, n, n+1)
	for i := range dest {
		dest[i] = &raw[i]
	}
	if key != "" {
		dest = append(dest, &raw[n])
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return sc.rep, m.dbError(ctx, err)
		}
		sc.start(0)
		for i := range n {
			v, bad, inv := decodeDB(raw[i], raw[i] == nil, sc.cols[i], decs[i], m.opts)
			sc.set(i, v, bad, inv)
		}
		if key != "" {
			sc.row.keyRaw, sc.row.keyNull = raw[n], raw[n] == nil
		}
		if err := sc.finish(); err != nil {
			cancel()
			if ctx.Err() != nil {
				return sc.rep, fmt.Errorf("source: scan stopped: %w", ctx.Err())
			}
			return sc.rep, err
		}
	}
	if err := rows.Err(); err != nil {
		return sc.rep, m.dbError(ctx, err)
	}
	return sc.done()
}

// kill stops connection id's statement. The connection is one the driver
// has already dropped (the scan's context ended), so its id names no other
// statement.
func (m *MySQL) kill(id int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := m.conn.Connect(ctx)
	if err != nil {
		return
	}
	defer c.Close()
	if ex, ok := c.(driver.ExecerContext); ok {
		_, _ = ex.ExecContext(ctx, fmt.Sprintf("KILL QUERY %d", id), nil)
	}
}

// Error numbers whose messages quote no data.
var mySafeErrors = map[uint16]bool{
	1044: true, 1045: true, 1049: true, 1054: true, 1064: true, 1142: true, 1143: true, 1146: true, 1356: true,
}

// dbError describes a database error without quoting data: some messages
// (a conversion in a view, say) can quote a value.
func (m *MySQL) dbError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("source: scan stopped: %w", ctx.Err())
	}
	var me *mysqldrv.MySQLError
	if errors.As(err, &me) {
		switch {
		case me.Number == 1969 || me.Number == 3024:
			return fmt.Errorf("source: MySQL stopped the statement after the statement timeout %v (error %d)", m.cfg.StatementTimeout, me.Number)
		case mySafeErrors[me.Number]:
			return fmt.Errorf("source: MySQL: %s (error %d)", me.Message, me.Number)
		}
		return fmt.Errorf("source: MySQL error %d reading %s (the message is not shown, as it may quote a value)", me.Number, strings.Join(m.name, "."))
	}
	return fmt.Errorf("source: MySQL: %w", err)
}
