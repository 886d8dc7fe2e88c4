// Package benchfed is the machinery of `unseen bench`: it lays out a
// federation of separate processes on loopback (department data streamed to
// CSV files or loaded into PostgreSQL, node and coordinator configurations
// and keys), runs and stops the children, and measures them (peak RSS and
// CPU from wait4, figures scraped from /metrics, the X25519 costs measured
// in the same run). The command in cmd/unseen drives the job through the
// HTTP API, as an analyst and a reviewer would; this package imports no
// API package.
package benchfed

import (
	"bufio"
	"fmt"
	"os"
	"time"

	"github.com/unseen-data/unseen/compute/idnum"
)

// ID returns the i-th synthetic ID number (valid check digit): a pure
// function of i, so no list is ever held in memory.
func ID(i int) string {
	// 1,000 sequence numbers a day over 36,525 days from 1900 (birth dates
	// the nodes accept), then the next region code.
	const days = 36525
	birth := time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, (i/1000)%days)
	id, err := idnum.Make(fmt.Sprintf("44%04d", i/(1000*days)), birth, i%1000)
	if err != nil {
		panic(fmt.Sprintf("benchfed: ID %d: %v", i, err)) // a bug: i is ours, never input
	}
	return id
}

// Index is the ID index of party's row i of n: the first half of every
// list is common to all parties, the rest its own, so the intersection
// has n/2 entries.
func Index(party, n, i int) int {
	if i < n/2 {
		return i
	}
	return (party+1)*n + i
}

// MaxSize is the largest list per party (indices reach (parties+2)·n,
// well within the 10^4 region codes of ID).
const MaxSize = 100_000_000

// WriteCSV streams party's list of n IDs to path (header id_number).
func WriteCSV(path string, party, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("id_number\n")
	for i := range n {
		w.WriteString(ID(Index(party, n, i)))
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
