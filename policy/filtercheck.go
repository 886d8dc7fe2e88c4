package policy

import (
	"strings"

	"github.com/unseen-data/unseen/policy/filter"
)

// checkFilter parses a filter and checks that it names only columns the
// owner allows as filters, compared with literals of the column's kind.
func checkFilter(ds *Dataset, f string, add func(rule, ds, col, format string, args ...any)) {
	e, err := filter.Parse(f)
	if err != nil {
		add("filter", ds.Name, "", "%v", err)
		return
	}
	ok := true
	for _, col := range filter.Columns(e) {
		c, found := ds.Column(col)
		switch {
		case !found:
			add("unknown_column", ds.Name, col, "filter names a column the dataset does not declare; declared: %s", strings.Join(columnNames(ds), ", "))
			ok = false
		case !c.Allows(UseFilter):
			add("column_use", ds.Name, col, "may not be used in a filter; filter columns: %s", strings.Join(columnsAllowing(ds, UseFilter), ", "))
			ok = false
		}
	}
	if !ok {
		return
	}
	kinds := map[string]filter.Kind{}
	for _, c := range ds.Columns {
		k := filter.KindString
		if c.Kind == KindInt {
			k = filter.KindInt
		}
		kinds[c.Name] = k
	}
	if err := filter.Check(e, kinds); err != nil {
		add("filter", ds.Name, "", "%v", err)
	}
}
