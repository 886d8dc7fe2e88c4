package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// Spec is where a dataset's rows are, as a node configuration declares it
// (a dataset's `source:` section):
//
//	source: {kind: csv, file: ../data/housing/property_owners.csv}
//	source: {kind: postgres, table: public.property_owners, dsn_env: UNSEEN_HOUSING_DSN, row_key: row_no}
//	source: {kind: mysql, table: housing.property_owners, dsn_file: /etc/unseen/housing.dsn}
//
// A DSN is never written in the configuration: it is read from dsn_env or
// dsn_file when the source is opened.
type Spec struct {
	Kind             string        `yaml:"kind" json:"kind"` // csv, postgres or mysql
	File             string        `yaml:"file,omitempty" json:"file,omitempty"`
	Table            string        `yaml:"table,omitempty" json:"table,omitempty"`
	DSNEnv           string        `yaml:"dsn_env,omitempty" json:"dsn_env,omitempty"`
	DSNFile          string        `yaml:"dsn_file,omitempty" json:"dsn_file,omitempty"`
	RowKey           string        `yaml:"row_key,omitempty" json:"row_key,omitempty"`
	StatementTimeout time.Duration `yaml:"statement_timeout,omitempty" json:"statement_timeout,omitempty"`
	MaxConnLifetime  time.Duration `yaml:"max_conn_lifetime,omitempty" json:"max_conn_lifetime,omitempty"`
	MaxConns         int           `yaml:"max_conns,omitempty" json:"max_conns,omitempty"`
	FetchRows        int           `yaml:"fetch_rows,omitempty" json:"fetch_rows,omitempty"`
}

// Source kinds.
const (
	SpecCSV      = "csv"
	SpecPostgres = "postgres"
	SpecMySQL    = "mysql"
)

// Validate checks the spec's shape, without opening anything.
func (s Spec) Validate() error {
	switch s.Kind {
	case SpecCSV:
		if s.File == "" {
			return errors.New("source: a csv source needs file")
		}
		if s.Table != "" || s.DSNEnv != "" || s.DSNFile != "" || s.RowKey != "" || s.StatementTimeout != 0 || s.MaxConnLifetime != 0 || s.MaxConns != 0 || s.FetchRows != 0 {
			return errors.New("source: a csv source takes only file")
		}
		return nil
	case SpecPostgres, SpecMySQL:
		if s.File != "" {
			return fmt.Errorf("source: a %s source takes table, not file", s.Kind)
		}
		if (s.DSNEnv == "") == (s.DSNFile == "") {
			return fmt.Errorf("source: a %s source needs one of dsn_env and dsn_file", s.Kind)
		}
		if s.Kind == SpecMySQL && s.FetchRows != 0 {
			return errors.New("source: fetch_rows is for postgres (MySQL rows are streamed unbuffered)")
		}
		_, err := s.sql().check(Schema{Columns: []Column{{Name: "x", Kind: KindString}}})
		return err
	}
	return fmt.Errorf("source: kind %q is not csv, postgres or mysql", s.Kind)
}

func (s Spec) sql() SQLConfig {
	return SQLConfig{Table: s.Table, DSNEnv: s.DSNEnv, DSNFile: s.DSNFile, RowKey: s.RowKey,
		StatementTimeout: s.StatementTimeout, MaxConnLifetime: s.MaxConnLifetime, MaxConns: s.MaxConns, FetchRows: s.FetchRows}
}

// Open opens the source a spec names. Paths (file, dsn_file) are used as
// given: resolve them against the configuration's folder first. A CSV file
// is read from fsys when it is not nil. The report is that of a CSV file's
// validating pass (nil for a database).
func Open(ctx context.Context, spec Spec, fsys fs.FS, s Schema, opts Options) (Source, *Report, error) {
	if err := spec.Validate(); err != nil {
		return nil, nil, err
	}
	switch spec.Kind {
	case SpecCSV:
		src, rep, err := OpenCSV(ctx, fsys, spec.File, s, opts)
		if err != nil {
			return nil, rep, err
		}
		return src, rep, nil
	case SpecPostgres:
		src, err := OpenPostgres(ctx, spec.sql(), s, opts)
		if err != nil {
			return nil, nil, err
		}
		return src, nil, nil
	}
	src, err := OpenMySQL(ctx, spec.sql(), s, opts)
	if err != nil {
		return nil, nil, err
	}
	return src, nil, nil
}
