package source

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func decodeSpec(t *testing.T, y string) (Spec, error) {
	t.Helper()
	var s Spec
	dec := yaml.NewDecoder(bytes.NewReader([]byte(y)))
	dec.KnownFields(true)
	err := dec.Decode(&s)
	return s, err
}

func TestSpec(t *testing.T) {
	s, err := decodeSpec(t, "{kind: postgres, table: public.property_owners, dsn_env: UNSEEN_HOUSING_DSN, row_key: row_no, statement_timeout: 2m}")
	if err != nil || s.Validate() != nil {
		t.Fatalf("%+v %v %v", s, err, s.Validate())
	}
	if s.StatementTimeout != 2*time.Minute || s.sql().Table != "public.property_owners" {
		t.Errorf("%+v", s)
	}
	if _, err := decodeSpec(t, "{kind: postgres, table: t, dsn: 'postgres://u:pw@h/db'}"); err == nil {
		t.Error("a DSN in the configuration is accepted")
	}
	for _, bad := range []string{
		"{kind: csv}",
		"{kind: csv, file: a.csv, table: t}",
		"{kind: postgres, table: t}",
		"{kind: postgres, table: t, dsn_env: A, dsn_file: b}",
		"{kind: postgres, table: 't; DROP TABLE t', dsn_env: A}",
		"{kind: mysql, table: t, dsn_env: A, fetch_rows: 10}",
		"{kind: mysql, file: a.csv, dsn_env: A}",
		"{kind: oracle, table: t, dsn_env: A}",
	} {
		s, err := decodeSpec(t, bad)
		if err == nil {
			err = s.Validate()
		}
		if err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if _, _, err := Open(t.Context(), Spec{Kind: SpecCSV, File: "x.csv"}, nil, benefits, Options{}); err == nil || !strings.Contains(err.Error(), "x.csv") {
		t.Errorf("Open missing csv: %v", err)
	}
}
