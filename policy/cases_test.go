package policy

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// policyCase is one scenario, as data: the datasets declared, a job, who
// asks, and the decision expected (OPA-style test cases).
type policyCase struct {
	Description string    `yaml:"description"`
	Datasets    []Dataset `yaml:"datasets"`
	Job         Spec      `yaml:"job"`
	Requester   Requester `yaml:"requester"`
	OnlyLocal   bool      `yaml:"only_local"`
	Expect      struct {
		Allow        bool     `yaml:"allow"`
		Violations   []string `yaml:"violations"` // rule or rule@dataset or rule@dataset.column
		NeedsConsent []string `yaml:"needs_consent"`
	} `yaml:"expect"`
}

func TestPolicyCases(t *testing.T) {
	files, err := filepath.Glob("testdata/cases/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			b, err := os.ReadFile(file)
			require.NoError(t, err)
			dec := yaml.NewDecoder(bytes.NewReader(b))
			dec.KnownFields(true)
			var c policyCase
			require.NoError(t, dec.Decode(&c))
			cat := Catalog{}
			for i := range c.Datasets {
				require.NoError(t, c.Datasets[i].Validate())
				cat[c.Datasets[i].Name] = &c.Datasets[i]
			}
			d := Decide(cat, &c.Job, c.Requester, c.OnlyLocal)
			var got []string
			for _, v := range d.Violations {
				s := v.Rule
				if v.Dataset != "" {
					s += "@" + v.Dataset
					if v.Column != "" {
						s += "." + v.Column
					}
				}
				got = append(got, s)
			}
			require.Equal(t, c.Expect.Allow, d.Allow, "%s: violations %v", c.Description, d.Violations)
			require.Equal(t, c.Expect.Violations, got, c.Description)
			require.Equal(t, c.Expect.NeedsConsent, d.NeedsConsent, c.Description)
			if d.Allow {
				for _, ds := range c.Job.Datasets() {
					if _, ok := cat[ds]; ok {
						require.Equal(t, cat[ds].Version(), d.Versions[ds], "each decision records the policy version in force")
					}
				}
			}
		})
	}
}
