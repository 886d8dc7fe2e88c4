package policy

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// aggCatalog: three departments, each with its own name for the value
// column.
func aggCatalog() Catalog {
	mk := func(name, value string, rows int64) *Dataset {
		return &Dataset{Name: name, Classification: "general", Sharing: "open", MaxRows: rows,
			JobTypes: []JobType{Aggregate, IntersectionStats},
			Columns: []Column{
				{Name: "id_number", Kind: KindID, Uses: []Use{UseKey}},
				{Name: "district", Kind: KindString, Uses: []Use{UseFilter, UseGroupBy}},
				{Name: value, Kind: KindInt, Uses: []Use{UseValue, UseFilter}},
				{Name: "note", Kind: KindInt},
			}}
	}
	c := Catalog{}
	for _, d := range []*Dataset{mk("civil.allowance", "monthly_allowance_fen", 1e8), mk("hrss.benefits", "allowance_fen", 1e8), mk("tax.income", "income_fen", 0)} {
		c[d.Name] = d
	}
	return c
}

func aggSpec(values ...string) Spec {
	s := Spec{Type: Aggregate, Purpose: "p", Stats: []string{"sum", "variance"}}
	for i, d := range []string{"civil.allowance", "hrss.benefits", "tax.income"}[:len(values)] {
		s.Inputs = append(s.Inputs, Input{Dataset: d, Value: values[i]})
	}
	return s
}

// Each input may name its own value column; the node's and the
// coordinator's checks see each one.
func TestPerInputValueColumns(t *testing.T) {
	req := Requester{User: "a", Department: "civil"}
	s := aggSpec("monthly_allowance_fen", "allowance_fen", "income_fen")
	require.NoError(t, s.Validate())
	d := Decide(aggCatalog(), &s, req, false)
	require.True(t, d.Allow, "%v", d.Violations)
	require.Equal(t, "allowance_fen", s.ValueColumn(1))

	// A column another dataset has is refused where it is missing, and a
	// column whose owner does not allow it as a value is refused too.
	bad := aggSpec("monthly_allowance_fen", "monthly_allowance_fen", "note")
	d = Decide(aggCatalog(), &bad, req, false)
	require.False(t, d.Allow)
	var got []string
	for _, v := range d.Violations {
		got = append(got, v.Rule+":"+v.Dataset+"."+v.Column)
	}
	require.Equal(t, []string{"unknown_column:hrss.benefits.monthly_allowance_fen", "column_use:tax.income.note"}, got)
	// A node judges only its own input's column.
	local := Catalog{"hrss.benefits": aggCatalog()["hrss.benefits"]}
	require.False(t, Decide(local, &bad, req, true).Allow)
	ok := aggSpec("x", "allowance_fen", "y")
	require.True(t, Decide(local, &ok, req, true).Allow)

	for name, c := range map[string]struct {
		spec Spec
		want string
	}{
		"some inputs only": {aggSpec("monthly_allowance_fen", "", "income_fen"), "names no value column"},
		"both ways": {func() Spec {
			s := aggSpec("monthly_allowance_fen", "allowance_fen")
			s.Value = &ColumnRef{Column: "allowance_fen"}
			return s
		}(), "one or the other"},
		"not a column name": {aggSpec("monthly allowance", "allowance_fen"), "not a column name"},
		"psi job":           {Spec{Type: PSICardinality, Purpose: "p", Inputs: []Input{{Dataset: "a.b", Key: "id", Value: "v"}, {Dataset: "c.d", Key: "id"}}}, "only aggregate and intersection_stats"},
		"two value inputs of intersection_stats": {Spec{Type: IntersectionStats, Purpose: "p", Stats: []string{"sum"},
			Inputs: []Input{{Dataset: "a.b", Key: "id", Value: "v"}, {Dataset: "c.d", Key: "id", Value: "w"}}}, "at most one"},
	} {
		err := c.spec.Validate()
		require.ErrorIs(t, err, ErrSpec, name)
		require.Contains(t, err.Error(), c.want, name)
	}

	// intersection_stats: the input naming a value is the value dataset.
	is := Spec{Type: IntersectionStats, Purpose: "p", Stats: []string{"mean"},
		Inputs: []Input{{Dataset: "civil.allowance", Key: "id_number"}, {Dataset: "hrss.benefits", Key: "id_number", Value: "allowance_fen"}}}
	require.NoError(t, is.Validate())
	require.Equal(t, "hrss.benefits", is.ValueDataset())
	require.Equal(t, "", is.ValueColumn(0))
	require.Equal(t, "allowance_fen", is.ValueColumn(1))
	require.True(t, Decide(aggCatalog(), &is, req, false).Allow)
}

// The existing forms keep their meaning and their hashes: a spec that
// names no per-input value encodes exactly as before.
func TestPerInputValueCompatible(t *testing.T) {
	old := `{"type":"aggregate","purpose":"p","inputs":[{"dataset":"a.b"},{"dataset":"c.d"}],"value":{"dataset":"","column":"v"},"stats":["sum"]}`
	s, err := DecodeSpec([]byte(old))
	require.NoError(t, err)
	require.Equal(t, old, string(s.Encode()))
	require.Equal(t, "v", s.ValueColumn(0))
	require.Equal(t, "v", s.ValueColumn(1))
	// Pinned: the hash of a spec from before per-input values.
	require.Equal(t, "27f8a641", hexPrefix(s.Hash())) // SHA-256("unseen/spec/v1\x00" ‖ old), as before

	one := Spec{Type: IntersectionStats, Purpose: "p", Stats: []string{"sum"}, Value: &ColumnRef{Dataset: "c.d", Column: "v"},
		Inputs: []Input{{Dataset: "a.b", Key: "id"}, {Dataset: "c.d", Key: "id"}}}
	require.Equal(t, "", one.ValueColumn(0))
	require.Equal(t, "v", one.ValueColumn(1))

	// Naming the value per input is another spec (another hash).
	per := *s
	per.Value = nil
	per.Inputs = []Input{{Dataset: "a.b", Value: "v"}, {Dataset: "c.d", Value: "v"}}
	require.NoError(t, per.Validate())
	require.NotEqual(t, s.Hash(), per.Hash())
	require.True(t, strings.Contains(string(per.Encode()), `"value":"v"`))
}

func hexPrefix(h [SpecHashSize]byte) string {
	const digits = "0123456789abcdef"
	var b []byte
	for _, x := range h[:4] {
		b = append(b, digits[x>>4], digits[x&15])
	}
	return string(b)
}

// A homomorphic job that cannot run on the declared sizes is refused by
// Decide (at submission), with the reason.
func TestSizeViolations(t *testing.T) {
	req := Requester{User: "a", Department: "civil"}
	cat := aggCatalog()
	s := aggSpec("monthly_allowance_fen", "allowance_fen", "income_fen")
	require.True(t, Decide(cat, &s, req, false).Allow, "3 × 10^8 declared rows fit 2^30")

	cat["hrss.benefits"].MaxRows = 5e8 // more than 2^30/3
	d := Decide(cat, &s, req, false)
	require.False(t, d.Allow)
	require.Len(t, d.Violations, 1)
	v := d.Violations[0]
	require.Equal(t, "too_many_rows", v.Rule)
	require.Equal(t, "hrss.benefits", v.Dataset)
	require.Contains(t, v.Message, "at most 357913941 rows of each")
	// Two inputs: the share doubles and the job fits.
	two := aggSpec("monthly_allowance_fen", "allowance_fen")
	require.True(t, Decide(cat, &two, req, false).Allow)
	// A filtered input is checked by its node on the rows the filter leaves.
	s.Inputs[1].Filter = "district = '天河区'"
	require.True(t, Decide(cat, &s, req, false).Allow)
	// An operator's cap (he_max_rows_per_node) is applied at submission too.
	require.Len(t, SizeViolations(cat, &two, 1<<16), 2)
	require.Contains(t, SizeViolations(cat, &two, 1<<16)[0].Message, "he_max_rows_per_node")

	// intersection_stats: only the value input's rows are summed.
	cat["hrss.benefits"].MaxRows = 2e9
	is := Spec{Type: IntersectionStats, Purpose: "p", Stats: []string{"mean"},
		Inputs: []Input{{Dataset: "civil.allowance", Key: "id_number", Value: "monthly_allowance_fen"}, {Dataset: "hrss.benefits", Key: "id_number"}}}
	require.True(t, Decide(cat, &is, req, false).Allow)
	is.Inputs[0].Value, is.Inputs[1].Value = "", "allowance_fen"
	d = Decide(cat, &is, req, false)
	require.False(t, d.Allow)
	require.Equal(t, "too_many_rows", d.Violations[0].Rule)

	// A declared value bound past 2^40 cannot be summed exactly.
	cat = aggCatalog()
	cat["tax.income"].DP = &DP{Epsilon: 1, Budget: 10, ValueBound: 1 << 41}
	s = aggSpec("monthly_allowance_fen", "allowance_fen", "income_fen")
	d = Decide(cat, &s, req, false)
	require.False(t, d.Allow)
	require.Equal(t, "value_range", d.Violations[len(d.Violations)-1].Rule)
	// PSI jobs have no such limits.
	psi := Spec{Type: PSICardinality, Purpose: "p", Inputs: []Input{{Dataset: "civil.allowance", Key: "id_number"}, {Dataset: "hrss.benefits", Key: "id_number"}}}
	require.Empty(t, SizeViolations(cat, &psi, 1))
	require.Error(t, (&Dataset{Name: "a.b", Classification: "general", Sharing: "open", Columns: []Column{{Name: "x", Kind: KindInt}}, MaxRows: -1}).Validate())
}
