package audit

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLineage(t *testing.T) {
	at := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	es := []Entry{
		{Time: at, Action: "psi.prepare", Job: "j1", Datasets: []string{"hrss.b"}, Detail: map[string]string{"requester": "alice", "purpose": "audit", "type": "psi_cardinality", "key": "id_number", "filter_columns": "district"}},
		{Time: at, Action: "psi.own", Job: "j1", Datasets: []string{"hrss.b"}},
		{Time: at.Add(time.Minute), Action: "psi.refused", Job: "j2", Datasets: []string{"hrss.b"}, Detail: map[string]string{"requester": "bob", "purpose": "curiosity", "type": "psi_members", "reason": "job type"}},
		{Time: at.Add(2 * time.Minute), Action: "psi.prepare", Job: "j3", Datasets: []string{"other.x"}},
		{Time: at.Add(3 * time.Minute), Action: "he.values", Job: "j1", Datasets: []string{"hrss.b"}, Detail: map[string]string{"key": "id_number", "value": "amount", "group_by": "district"}},
		{Time: at.Add(3 * time.Minute), Action: "job.finish", Job: "j1", Datasets: []string{"hrss.b"}, Detail: map[string]string{"outcome": "ok"}},
	}
	rows := Lineage(es, "hrss.b")
	require.Len(t, rows, 2)
	require.Equal(t, LineageRow{Job: "j1", First: "2026-11-01T08:00:00Z", Requester: "alice", Purpose: "audit", Type: "psi_cardinality", Columns: "id_number,district,amount", Outcome: "finished: ok"}, rows[0])
	require.Equal(t, "refused", rows[1].Outcome)
	require.Equal(t, "job type", rows[1].Refused)
	require.Empty(t, Lineage(es, "nope.x"))
}
