package source

import (
	"context"
	"database/sql"
	"encoding/csv"
	"io"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BenchmarkScan scans a million-row table with bigFilter (about 27% of
// the rows selected) from each source, and reports
//
//   - rows/s: rows read per second (for a database, rows the filter let
//     through; for CSV, every row of the file);
//   - allocs/row: heap allocations per row read;
//   - x_floor: the scan's time over the floor's, measured in the same run,
//     interleaved: for a database the same SELECT read raw (PostgreSQL
//     COPY … TO STDOUT, MySQL rows scanned as bytes, no decoding, no
//     checks), for CSV the file parsed by encoding/csv alone.
//
// go test -run XXX -bench Scan -benchtime 3x ./compute/source/
func BenchmarkScan(b *testing.B) {
	b.Run("csv", func(b *testing.B) {
		p := writeBigCSV(b)
		src, _, err := OpenCSV(context.Background(), nil, p, bigSchema, Options{})
		if err != nil {
			b.Fatal(err)
		}
		benchScan(b, src, func() int64 { return csvFloor(b, p) })
	})
	for _, d := range []dialect{postgres, mysql} {
		name := map[dialect]string{postgres: "postgres", mysql: "mysql"}[d]
		b.Run(name, func(b *testing.B) {
			db := newTestDB(b, d)
			makeBig(b, db)
			cfg := db.config(b, "big")
			src := db.mustOpen(b, cfg, bigSchema, Options{})
			raw := "SELECT id_number, assessed_value_fen FROM " + db.table("big") + " WHERE district IN ('天河区', '白云区') AND property_count >= 2"
			var floor func() int64
			if d == postgres {
				conn, err := pgx.Connect(context.Background(), db.dsn)
				if err != nil {
					b.Fatal(err)
				}
				defer conn.Close(context.Background())
				floor = func() int64 {
					tag, err := conn.PgConn().CopyTo(context.Background(), io.Discard, "COPY ("+raw+") TO STDOUT")
					if err != nil {
						b.Fatal(err)
					}
					return tag.RowsAffected()
				}
			} else {
				sdb, err := sql.Open("mysql", db.dsn)
				if err != nil {
					b.Fatal(err)
				}
				defer sdb.Close()
				floor = func() int64 { return mysqlFloor(b, sdb, raw) }
			}
			benchScan(b, src, floor)
		})
	}
}

func benchScan(b *testing.B, src Source, floor func() int64) {
	q := Query{Columns: []string{"id_number", "assessed_value_fen"}, Filter: mustParse(b, bigFilter)}
	var read, selected int64
	var scanTime, floorTime time.Duration
	var mallocs uint64
	var ms runtime.MemStats
	b.ResetTimer()
	for b.Loop() {
		runtime.ReadMemStats(&ms)
		m0 := ms.Mallocs
		t0 := time.Now()
		var sum int64
		rep, err := src.Scan(context.Background(), q, func(r *Row) error {
			sum += r.Value(1).Int()
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		scanTime += time.Since(t0)
		runtime.ReadMemStats(&ms)
		mallocs += ms.Mallocs - m0
		read += rep.Read
		selected += rep.Selected

		b.StopTimer()
		t0 = time.Now()
		if n := floor(); n != rep.Selected && n != rep.Read {
			b.Fatalf("the floor read %d rows; the scan %d (%d selected)", n, rep.Read, rep.Selected)
		}
		floorTime += time.Since(t0)
		b.StartTimer()
	}
	b.ReportMetric(float64(read)/scanTime.Seconds(), "rows/s")
	b.ReportMetric(float64(mallocs)/float64(read), "allocs/row")
	b.ReportMetric(float64(scanTime)/float64(floorTime), "x_floor")
	b.ReportMetric(float64(selected)/float64(read), "selected/read")
}

// csvFloor parses the file with encoding/csv and nothing else.
func csvFloor(b *testing.B, p string) int64 {
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	cr := csv.NewReader(f)
	cr.ReuseRecord = true
	var n int64
	for {
		_, err := cr.Read()
		if err == io.EOF {
			return n - 1 // the header
		}
		if err != nil {
			b.Fatal(err)
		}
		n++
	}
}

// mysqlFloor reads a query's rows as raw bytes.
func mysqlFloor(b *testing.B, db *sql.DB, q string) int64 {
	rows, err := db.Query(q)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var x, y sql.RawBytes
	var n int64
	for rows.Next() {
		if err := rows.Scan(&x, &y); err != nil {
			b.Fatal(err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return n
}
