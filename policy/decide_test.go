package policy

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func testCatalog() Catalog {
	hrss := &Dataset{Name: "hrss.benefits", Classification: "important", Sharing: "open",
		JobTypes: []JobType{PSICardinality, PSIMembers},
		Columns: []Column{
			{Name: "id_number", Kind: KindID, PII: true, Uses: []Use{UseKey}},
			{Name: "district", Kind: KindString, Uses: []Use{UseFilter, UseGroupBy}},
			{Name: "amount", Kind: KindInt, Uses: []Use{UseValue, UseFilter}},
			{Name: "name", Kind: KindString, PII: true},
		}}
	housing := &Dataset{Name: "housing.owners", Classification: "important", Sharing: "open",
		JobTypes:    []JobType{PSICardinality},
		Departments: []string{"hrss"},
		Columns:     []Column{{Name: "id_number", Kind: KindID, Uses: []Use{UseKey}}}}
	closed := &Dataset{Name: "tax.income", Classification: "core", Sharing: "closed",
		JobTypes: []JobType{PSICardinality},
		Columns:  []Column{{Name: "id_number", Kind: KindID, Uses: []Use{UseKey}}}}
	return Catalog{hrss.Name: hrss, housing.Name: housing, closed.Name: closed}
}

func TestDecide(t *testing.T) {
	req := Requester{User: "alice", Department: "hrss"}
	in := func(ds, key, filter string) Input { return Input{Dataset: ds, Key: key, Filter: filter} }
	cases := []struct {
		name  string
		spec  Spec
		req   Requester
		rules []string
	}{
		{"allowed", Spec{Type: PSICardinality, Purpose: "p", Inputs: []Input{in("hrss.benefits", "id_number", "district = '天河区'"), in("housing.owners", "id_number", "")}}, req, nil},
		{"unknown dataset", Spec{Type: PSICardinality, Purpose: "p", Inputs: []Input{in("hrss.benefits", "id_number", ""), in("tax.nothing", "id_number", "")}}, req, []string{"unknown_dataset"}},
		{"closed dataset", Spec{Type: PSICardinality, Purpose: "p", Inputs: []Input{in("hrss.benefits", "id_number", ""), in("tax.income", "id_number", "")}}, req, []string{"sharing_closed"}},
		{"job type", Spec{Type: PSIMembers, Purpose: "p", Inputs: []Input{in("hrss.benefits", "id_number", ""), in("housing.owners", "id_number", "")}}, req, []string{"job_type"}},
		{"department", Spec{Type: PSICardinality, Purpose: "p", Inputs: []Input{in("hrss.benefits", "id_number", ""), in("housing.owners", "id_number", "")}}, Requester{User: "bob", Department: "civil"}, []string{"department"}},
		{"key not allowed", Spec{Type: PSICardinality, Purpose: "p", Inputs: []Input{in("hrss.benefits", "district", ""), in("housing.owners", "id_number", "")}}, req, []string{"column_use"}},
		{"unknown key", Spec{Type: PSICardinality, Purpose: "p", Inputs: []Input{in("hrss.benefits", "nope", ""), in("housing.owners", "id_number", "")}}, req, []string{"unknown_column"}},
		{"filter on PII column", Spec{Type: PSICardinality, Purpose: "p", Inputs: []Input{in("hrss.benefits", "id_number", "name = 'x'"), in("housing.owners", "id_number", "")}}, req, []string{"column_use"}},
		{"filter type mismatch", Spec{Type: PSICardinality, Purpose: "p", Inputs: []Input{in("hrss.benefits", "id_number", "amount = 'x'"), in("housing.owners", "id_number", "")}}, req, []string{"filter"}},
		{"filter syntax", Spec{Type: PSICardinality, Purpose: "p", Inputs: []Input{in("hrss.benefits", "id_number", "amount >"), in("housing.owners", "id_number", "")}}, req, []string{"filter"}},
		{"members of another department", Spec{Type: PSIMembers, Purpose: "p", Inputs: []Input{in("hrss.benefits", "id_number", ""), in("housing.owners", "id_number", "")}}, Requester{User: "h", Department: "housing"}, []string{"members_own_dataset", "job_type"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Decide(testCatalog(), &c.spec, c.req, false)
			var rules []string
			for _, v := range d.Violations {
				rules = append(rules, v.Rule)
				require.NotEmpty(t, v.Message)
			}
			require.Equal(t, c.rules, rules, "violations: %v", d.Violations)
			require.Equal(t, len(c.rules) == 0, d.Allow)
			if d.Allow {
				require.Len(t, d.Versions, 2)
			} else {
				require.Contains(t, d.Error(), c.rules[0])
			}
		})
	}
}

func TestDecideOnlyLocal(t *testing.T) {
	cat := testCatalog()
	delete(cat, "housing.owners")
	s := Spec{Type: PSICardinality, Purpose: "p", Inputs: []Input{{Dataset: "hrss.benefits", Key: "id_number"}, {Dataset: "housing.owners", Key: "id_number"}}}
	require.True(t, Decide(cat, &s, Requester{User: "a", Department: "hrss"}, true).Allow, "a node judges only its own datasets")
	require.False(t, Decide(cat, &s, Requester{User: "a", Department: "hrss"}, false).Allow)
}

func TestVersionChangesWithPolicy(t *testing.T) {
	a := testCatalog()["hrss.benefits"]
	b := *a
	b.MinCount = 20
	require.NotEqual(t, a.Version(), b.Version())
	require.Equal(t, a.Version(), testCatalog()["hrss.benefits"].Version())
}

func TestDecodeSpec(t *testing.T) {
	good := `{"type":"psi_cardinality","purpose":"p","inputs":[{"dataset":"a.b","key":"id"},{"dataset":"c.d","key":"id"}]}`
	s, err := DecodeSpec([]byte(good))
	require.NoError(t, err)
	again, err := DecodeSpec(s.Encode())
	require.NoError(t, err)
	require.Equal(t, s, again)

	bad := map[string]string{
		"unknown field":                  `{"type":"psi_cardinality","purpose":"p","inputs":[],"extra":1}`,
		"trailing":                       good + `{}`,
		"unknown type":                   `{"type":"nope","purpose":"p","inputs":[{"dataset":"a.b","key":"id"},{"dataset":"c.d","key":"id"}]}`,
		"no purpose":                     `{"type":"psi_cardinality","purpose":"  ","inputs":[{"dataset":"a.b","key":"id"},{"dataset":"c.d","key":"id"}]}`,
		"one input":                      `{"type":"psi_cardinality","purpose":"p","inputs":[{"dataset":"a.b","key":"id"}]}`,
		"bad dataset":                    `{"type":"psi_cardinality","purpose":"p","inputs":[{"dataset":"ab","key":"id"},{"dataset":"c.d","key":"id"}]}`,
		"repeated dataset":               `{"type":"psi_cardinality","purpose":"p","inputs":[{"dataset":"a.b","key":"id"},{"dataset":"a.b","key":"id"}]}`,
		"one department twice":           `{"type":"psi_cardinality","purpose":"p","inputs":[{"dataset":"a.b","key":"id"},{"dataset":"c.d","key":"id"},{"dataset":"a.e","key":"id"}]}`,
		"aggregate one department twice": `{"type":"aggregate","purpose":"p","inputs":[{"dataset":"a.b"},{"dataset":"a.c"}],"stats":["count"]}`,
		"psi with value":                 `{"type":"psi_cardinality","purpose":"p","inputs":[{"dataset":"a.b","key":"id"},{"dataset":"c.d","key":"id"}],"value":{"dataset":"a.b","column":"x"}}`,
		"stats no value":                 `{"type":"intersection_stats","purpose":"p","inputs":[{"dataset":"a.b","key":"id"},{"dataset":"c.d","key":"id"}],"stats":["sum"]}`,
		"value elsewhere":                `{"type":"intersection_stats","purpose":"p","inputs":[{"dataset":"a.b","key":"id"},{"dataset":"c.d","key":"id"}],"stats":["sum"],"value":{"dataset":"x.y","column":"v"}}`,
		"not json":                       `{`,
		"histogram no bins":              `{"type":"aggregate","purpose":"p","inputs":[{"dataset":"a.b"}],"stats":["histogram"],"value":{"dataset":"a.b","column":"v"}}`,
		"bins no histogram":              `{"type":"aggregate","purpose":"p","inputs":[{"dataset":"a.b"}],"stats":["sum"],"value":{"dataset":"a.b","column":"v"},"bins":[1]}`,
		"bins descending":                `{"type":"aggregate","purpose":"p","inputs":[{"dataset":"a.b"}],"stats":["histogram"],"value":{"dataset":"a.b","column":"v"},"bins":[5,1]}`,
		"histogram of psi":               `{"type":"intersection_stats","purpose":"p","inputs":[{"dataset":"a.b","key":"id"},{"dataset":"c.d","key":"id"}],"stats":["histogram"],"value":{"dataset":"a.b","column":"v"},"bins":[1]}`,
		"too large":                      `{"type":"psi_cardinality","purpose":"` + strings.Repeat("x", MaxSpecBytes) + `"}`,
	}
	for name, b := range bad {
		_, err := DecodeSpec([]byte(b))
		require.ErrorIs(t, err, ErrSpec, name)
	}
}

// The spec hash is the job's identity at every node: any change to what a
// job asks — a filter's text, a column, the purpose — changes it, and
// re-encoding a decoded spec does not.
func TestSpecHash(t *testing.T) {
	base := `{"type":"psi_cardinality","purpose":"p","inputs":[{"dataset":"a.b","key":"id","filter":"x > 1"},{"dataset":"c.d","key":"id"}]}`
	s, err := DecodeSpec([]byte(base))
	require.NoError(t, err)
	again, err := DecodeSpec(s.Encode())
	require.NoError(t, err)
	require.Equal(t, s.Hash(), again.Hash())
	for _, variant := range []string{
		`{"type":"psi_cardinality","purpose":"p","inputs":[{"dataset":"a.b","key":"id","filter":"x > 1 AND x != 5"},{"dataset":"c.d","key":"id"}]}`,
		`{"type":"psi_cardinality","purpose":"q","inputs":[{"dataset":"a.b","key":"id","filter":"x > 1"},{"dataset":"c.d","key":"id"}]}`,
		`{"type":"psi_members","purpose":"p","inputs":[{"dataset":"a.b","key":"id","filter":"x > 1"},{"dataset":"c.d","key":"id"}]}`,
		`{"type":"psi_cardinality","purpose":"p","inputs":[{"dataset":"c.d","key":"id"},{"dataset":"a.b","key":"id","filter":"x > 1"}]}`,
	} {
		v, err := DecodeSpec([]byte(variant))
		require.NoError(t, err)
		require.NotEqual(t, s.Hash(), v.Hash(), variant)
	}
}

func FuzzDecodeSpec(f *testing.F) {
	f.Add([]byte(`{"type":"psi_cardinality","purpose":"p","inputs":[{"dataset":"a.b","key":"id","filter":"x = 1"},{"dataset":"c.d","key":"id"}]}`))
	f.Add([]byte(`{"type":"aggregate","purpose":"p","inputs":[{"dataset":"a.b","value":"v"},{"dataset":"c.d","value":"w"}],"stats":["mean"]}`))
	f.Add([]byte(`{"type":"intersection_stats","purpose":"p","inputs":[{"dataset":"a.b","key":"id"},{"dataset":"c.d","key":"id"}],"stats":["sum","mean"],"value":{"dataset":"a.b","column":"v"},"group_by":{"dataset":"a.b","column":"g"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSpec(b)
		if err != nil {
			return
		}
		// Canonical: decode(encode(s)) == s and encode is a fixed point.
		enc := s.Encode()
		s2, err := DecodeSpec(enc)
		if err != nil {
			t.Fatalf("re-decoding canonical form: %v", err)
		}
		if string(s2.Encode()) != string(enc) {
			t.Fatalf("encoding not canonical")
		}
		_ = Decide(testCatalog(), s, Requester{User: "u", Department: "hrss"}, false)
	})
}

func TestBuckets(t *testing.T) {
	s := Spec{Bins: []int64{100, 200}}
	require.Equal(t, 3, s.Buckets())
	for x, b := range map[int64]int{-5: 0, 99: 0, 100: 1, 199: 1, 200: 2, 1 << 40: 2} {
		require.Equal(t, b, s.Bucket(x), x)
	}
	require.Equal(t, []string{"<100", "[100,200)", "≥200"}, []string{s.BucketLabel(0), s.BucketLabel(1), s.BucketLabel(2)})
	require.Zero(t, (&Spec{}).Buckets())
}

func TestDifferencingMode(t *testing.T) {
	d := Dataset{Name: "a.x", Classification: "general", Sharing: "open", Columns: []Column{{Name: "id_number", Kind: KindID}}}
	require.NoError(t, d.Validate())
	require.Equal(t, DifferencingRefuse, d.DifferencingMode(), "refusing is the default")
	d.Differencing = DifferencingFlag
	require.NoError(t, d.Validate())
	require.Equal(t, DifferencingFlag, d.DifferencingMode())
	d.Differencing = "ignore"
	require.ErrorContains(t, d.Validate(), `differencing "ignore" is not refuse or flag`)
}
