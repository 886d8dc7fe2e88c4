package node

import (
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/unseen-data/unseen/compute/dataset"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/filter"
)

// Table is one loaded dataset of the node.
type Table struct {
	name   string
	t      *dataset.Table
	report *dataset.Report
}

// openFile opens a dataset file from fsys if set, else from the OS.
func openFile(fsys fs.FS, path string) (io.ReadCloser, error) {
	if fsys != nil {
		return fsys.Open(path)
	}
	return os.Open(path)
}

// LoadTable loads a declared dataset from its CSV file. Malformed rows fail
// the load (with line numbers); rows with invalid ID numbers are counted and
// skipped.
func LoadTable(dc *DatasetConfig, path string, fsys fs.FS) (*Table, error) {
	s := dataset.Schema{}
	for _, c := range dc.Columns {
		s.Columns = append(s.Columns, dataset.Column{Name: c.Name, Kind: dataset.Kind(c.Kind), Required: c.Kind == policy.KindID})
	}
	f, err := openFile(fsys, path)
	if err != nil {
		return nil, fmt.Errorf("node: dataset %s: %w", dc.Name, err)
	}
	defer f.Close()
	t, rep, err := dataset.LoadCSV(f, s, dataset.Options{MaxRows: int(dc.MaxRows)})
	if err != nil {
		return nil, fmt.Errorf("node: dataset %s (%s): %w", dc.Name, path, err)
	}
	return &Table{name: dc.Name, t: t, report: rep}, nil
}

// Len is the number of loaded rows.
func (t *Table) Len() int { return t.t.Len() }

// InvalidIDs is the number of rows skipped for an invalid ID number.
func (t *Table) InvalidIDs() int { return t.report.InvalidIDs }

// Report is the load report.
func (t *Table) Report() *dataset.Report { return t.report }

// Select applies a filter (empty: every row) and returns the row indexes.
func (t *Table) Select(filterText string) ([]int, error) {
	e, err := filter.Parse(filterText)
	if err != nil {
		return nil, fmt.Errorf("filter on %s: %w", t.name, err)
	}
	if e != nil {
		if err := filter.Check(e, t.t.Kinds()); err != nil {
			return nil, fmt.Errorf("filter on %s: %w", t.name, err)
		}
	}
	rows, err := t.t.Select(e)
	if err != nil {
		return nil, fmt.Errorf("filter on %s: %w", t.name, err)
	}
	return rows, nil
}

// KeyIDs returns the distinct normalised IDs of the key column over the rows
// the filter selects.
func (t *Table) KeyIDs(key, filterText string) ([][]byte, error) {
	rows, err := t.Select(filterText)
	if err != nil {
		return nil, err
	}
	keys, err := t.t.DistinctKeys(rows, key)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = []byte(k)
	}
	return out, nil
}
