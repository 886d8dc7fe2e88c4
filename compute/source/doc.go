// Package source reads a department's dataset where it lives — a CSV file,
// a PostgreSQL table or view, a MySQL/MariaDB table or view — and streams
// the rows a job's filter selects to the node, one at a time: a scan holds
// O(1) rows in memory however large the table.
//
// A Source has three methods:
//
//	Scan(ctx, Query, func(*Row) error) (*Report, error)
//	Validate(ctx) error
//	Close() error
//
// A Query names the declared columns the caller wants and a parsed filter
// (policy/filter), which is type-checked against the declared kinds before
// anything is read. Every row is checked against the declaration as it is
// read, with the rules compute/dataset has applied to CSV files:
//
//   - a malformed row (a value that is not an int64 in an int column, a
//     missing value in a required column, text that is not UTF-8 or longer
//     than Options.MaxFieldBytes) fails the scan with a *MalformedError
//     listing the first few by position. Rows are never silently dropped: a
//     dataset with a hole in it gives wrong answers that look right. Once a
//     malformed row is seen the callback is not called again, but reading
//     goes on to count them all;
//   - a row whose id column is not a valid resident ID number (idnum) is
//     counted and skipped, and reported by position and reason only, never
//     by value, since the value is personal data.
//
// Positions are CSV line numbers; in a database, the value of a declared
// row key column (a surrogate key, never personal data) when there is one,
// else the row's ordinal in the scan.
//
// # Databases
//
// A database dataset is a table or view named by identifiers (quoted, never
// free SQL), reached with a DSN read from an environment variable or a file,
// so the secret is never in the node's configuration. The filter runs in
// the database as SQL with bound parameters only: identifiers come from the
// declaration, literals are parameters, and the SQL text does not depend on
// the literals' values. Its meaning is exactly filter.Eval's:
//
//   - nulls follow three-valued logic in both;
//   - strings compare byte-wise, as Go does: COLLATE "C" in PostgreSQL,
//     binary strings in MySQL (whose default collations ignore case and
//     trailing spaces). An equality also gets a plain comparison in the
//     column's own collation, true for every byte-equal pair, so the
//     database can use an index;
//   - int parameters are int64 (cast to int8 in PostgreSQL, whose inference
//     would otherwise give a parameter the column's narrower type).
//
// A comparison the database cannot do exactly — on an id column (compared
// by its normalised form), an int stored as text or decimal (which must be
// parsed and checked here), an unsigned 64-bit int — is relaxed to TRUE or
// FALSE, whichever keeps every selected row (by its polarity under NOTs),
// and the whole filter is evaluated again here on the rows returned.
//
// Text is taken as the database stores it: spaces are data, and an empty
// string is not null (unlike a CSV field). CHAR(n) values lose their pad
// spaces, as both databases treat them.
//
// PostgreSQL rows are read through a server-side cursor (DECLARE … NO
// SCROLL CURSOR in a read-only transaction, FETCH in batches), each FETCH
// bounded by the statement timeout. MySQL rows are read unbuffered from a
// single SELECT in a read-only transaction, which the statement timeout
// bounds as a whole (MariaDB's max_statement_time, MySQL's
// max_execution_time).
package source
