package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/unseen-data/unseen/compute/dataset"
	"github.com/unseen-data/unseen/compute/idnum"
)

func TestDeterministic(t *testing.T) {
	a, err := generate(300, 7)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := generate(300, 7)
	c, _ := generate(300, 8)
	if len(a.files) != 4 {
		t.Fatalf("%d files", len(a.files))
	}
	for name, data := range a.files {
		if !bytes.Equal(data, b.files[name]) {
			t.Errorf("%s differs between two runs with the same seed", name)
		}
		if bytes.Equal(data, c.files[name]) {
			t.Errorf("%s is the same for seeds 7 and 8", name)
		}
	}
	if _, err := generate(minRows-1, 1); err == nil {
		t.Error("accepted too few rows")
	}
}

// Every ID is valid except the deliberately invalid ones, which fail only
// their check digit; every file loads with no malformed row, and the node
// skips exactly the invalid ones.
func TestFilesLoad(t *testing.T) {
	out, err := generate(500, 3)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range out.files {
		for _, id := range out.ids[name] {
			if got, err := idnum.Normalise(id); err != nil || got != id {
				t.Fatalf("%s: generated ID fails: %v", name, err)
			}
		}
		for _, id := range out.invalid[name] {
			if _, err := idnum.Normalise(id); !errors.Is(err, idnum.ErrCheckDigit) {
				t.Errorf("%s: invalid ID gives %v; want a bad check digit", name, err)
			}
		}
		tab, rep, err := dataset.LoadCSV(bytes.NewReader(data), schemas[name], dataset.Options{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if rep.Rows != out.rows[name] || rep.InvalidIDs != len(out.invalid[name]) || rep.InvalidIDs != invalidPerFile[name] {
			t.Errorf("%s: report %+v, %d rows, %d invalid", name, rep, out.rows[name], len(out.invalid[name]))
		}
		keys, err := tab.DistinctKeys(allRows(tab), "id_number")
		if err != nil || len(keys) != len(out.ids[name]) {
			t.Errorf("%s: %d distinct keys, %d people, %v", name, len(keys), len(out.ids[name]), err)
		}
	}
}

var schemas = map[string]dataset.Schema{
	fileBenefits: {Columns: []dataset.Column{
		{Name: "id_number", Kind: dataset.KindID, Required: true},
		{Name: "name", Kind: dataset.KindString, Required: true},
		{Name: "district", Kind: dataset.KindString, Required: true},
		{Name: "monthly_benefit_fen", Kind: dataset.KindInt, Required: true},
		{Name: "start_month", Kind: dataset.KindString, Required: true},
	}},
	fileProperty: {Columns: []dataset.Column{
		{Name: "id_number", Kind: dataset.KindID, Required: true},
		{Name: "district", Kind: dataset.KindString, Required: true},
		{Name: "property_count", Kind: dataset.KindInt, Required: true},
		{Name: "assessed_value_fen", Kind: dataset.KindInt, Required: true},
	}},
	fileAllow: {Columns: []dataset.Column{
		{Name: "id_number", Kind: dataset.KindID, Required: true},
		{Name: "district", Kind: dataset.KindString, Required: true},
		{Name: "household_size", Kind: dataset.KindInt, Required: true},
		{Name: "monthly_allowance_fen", Kind: dataset.KindInt, Required: true},
	}},
	fileBusiness: {Columns: []dataset.Column{
		{Name: "id_number", Kind: dataset.KindID, Required: true},
		{Name: "district", Kind: dataset.KindString, Required: true},
		{Name: "business_type", Kind: dataset.KindString, Required: true},
		{Name: "registered_capital_fen", Kind: dataset.KindInt, Required: true},
	}},
}

// The committed example data are what the generator makes with its
// defaults, have overlaps big enough to query in every district, and stay
// small.
func TestCommittedData(t *testing.T) {
	out, err := generate(defaultRows, defaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range out.files {
		got, err := os.ReadFile(filepath.Join("..", "data", filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("examples/data/%s is stale: run go run ./examples/gen", name)
		}
		if len(got) > 500<<10 {
			t.Errorf("%s is %d bytes", name, len(got))
		}
	}
	for _, file := range []string{fileProperty, fileAllow, fileBusiness} {
		for i, n := range out.overlaps[file] {
			if n < 30 {
				t.Errorf("only %d recipients in %s also in %s", n, districts[i].name, file)
			}
		}
	}
	// The overlaps are really there: count them from the files, as the
	// demo's plaintext check would.
	tabs := map[string]*dataset.Table{}
	for name, data := range out.files {
		tabs[name], _, err = dataset.LoadCSV(bytes.NewReader(data), schemas[name], dataset.Options{})
		if err != nil {
			t.Fatal(err)
		}
	}
	ben := tabs[fileBenefits]
	for _, file := range []string{fileProperty, fileAllow, fileBusiness} {
		keys, _ := tabs[file].DistinctKeys(allRows(tabs[file]), "id_number")
		in := map[string]bool{}
		for _, k := range keys {
			in[k] = true
		}
		counts := map[string]int{}
		for i := range ben.Len() {
			id, _ := ben.Value(i, "id_number")
			d, _ := ben.Value(i, "district")
			if in[id.Str()] {
				counts[d.Str()]++
			}
		}
		for i, d := range districts {
			if counts[d.name] != out.overlaps[file][i] {
				t.Errorf("%s ∩ %s in %s: %d in the files, %d generated", fileBenefits, file, d.name, counts[d.name], out.overlaps[file][i])
			}
		}
	}
}

func allRows(t *dataset.Table) []int {
	rows := make([]int, t.Len())
	for i := range rows {
		rows[i] = i
	}
	return rows
}

func TestRunWritesFiles(t *testing.T) {
	dir := t.TempDir()
	if err := run(dir, minRows, 5); err != nil {
		t.Fatal(err)
	}
	out, _ := generate(minRows, 5)
	for name, want := range out.files {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
