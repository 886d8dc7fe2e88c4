package node

// The node's own ledger (node.db, bbolt): what it has agreed to, kept
// whatever the coordinator says, across restarts.
//
//   - jobs: each job id is bound, the first time the node sees it, to one
//     spec hash and one requester; a later step of the same id under
//     another spec or requester is refused at every attempt, so a known job
//     id cannot be re-run with a filter narrowed by one person.
//   - admissions: the first time a job uses one of the node's datasets it
//     is charged, once, to that dataset's privacy budget (per analyst as the
//     job names them, and in total) and rate limits (per analyst and in
//     total); retries of the job are not charged again.
//   - attempts: the newest attempt of each job the node has prepared a PSI
//     list for; a restarted node (whose sessions, with the positions they
//     reblinded, are gone) prepares no attempt twice, so no position of a
//     list is reblinded twice in one attempt.
//   - sealed: the psi_members list sealed to the analyst, kept until a
//     reviewer's signed approval releases it (Deliver).
//   - sketches: the differencing sketch of each recent job's input of each
//     dataset (disclosure.go).
//
// One bbolt transaction per decision, fsynced: a crash never leaves a job
// admitted but uncharged.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

var (
	bucketJobs       = []byte("jobs")
	bucketAdmissions = []byte("admissions") // job \x00 dataset → time
	bucketBudgets    = []byte("budgets")    // dataset \x00 analyst (or "*") → µε spent
	bucketRates      = []byte("rates")      // dataset \x00 analyst (or "*") → JSON []unix seconds
	bucketAttempts   = []byte("attempts")   // job → newest attempt prepared (8 bytes)
	bucketSealed     = []byte("sealed")     // job → JSON sealedList
)

// stateDB is the node's ledger.
type stateDB struct{ db *bolt.DB }

func openState(path string) (*stateDB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("node: state %s: %w (is another node process using it?)", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketJobs, bucketAdmissions, bucketBudgets, bucketRates, bucketAttempts, bucketSealed, bucketSketches} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("node: state %s: %w", path, err)
	}
	return &stateDB{db: db}, nil
}

func (st *stateDB) Close() error { return st.db.Close() }

// binding is what a job id is bound to at this node.
type binding struct {
	SpecHash  attest.Digest    `json:"spec_hash"`
	Requester policy.Requester `json:"requester"`
	First     time.Time        `json:"first"`
}

// errSpecConflict: the job id is bound to another spec or requester here.
var errSpecConflict = errors.New("node: job id bound to another spec")

// bind binds job to (spec hash, requester) the first time and checks it
// every later time.
func (st *stateDB) bind(job string, spec attest.Digest, req policy.Requester, now time.Time) error {
	return st.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJobs)
		if old := b.Get([]byte(job)); old != nil {
			var have binding
			if err := json.Unmarshal(old, &have); err != nil {
				return fmt.Errorf("node: state: job %s: %w", job, err)
			}
			if have.SpecHash != spec || have.Requester != req {
				return fmt.Errorf("%w: job %s was first run here (%s) with spec %.12s… for %s/%s; it cannot be run under another spec or requester",
					errSpecConflict, job, have.First.Format(time.RFC3339), have.SpecHash, have.Requester.User, have.Requester.Department)
			}
			return nil
		}
		v, _ := json.Marshal(binding{SpecHash: spec, Requester: req, First: now.UTC()})
		return b.Put([]byte(job), v)
	})
}

// bound returns a job's binding, if any.
func (st *stateDB) bound(job string) (*binding, error) {
	var out *binding
	err := st.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketJobs).Get([]byte(job))
		if v == nil {
			return nil
		}
		out = new(binding)
		return json.Unmarshal(v, out)
	})
	return out, err
}

// admissionRefusal says which of the owner's limits a job would exceed.
type admissionRefusal struct {
	Rule string // "dp_budget", "dp_total_budget", "rate_limit", "rate_limit_total"
	Msg  string
}

func (e *admissionRefusal) Error() string { return e.Msg }

// admit charges job's use of dataset, once: ε to the analyst's and the
// dataset's total budget, one job to the analyst's and the total rate
// windows. A job already admitted for the dataset is not charged again.
func (st *stateDB) admit(job, dataset string, req policy.Requester, ds *policy.Dataset, now time.Time) error {
	key := []byte(job + "\x00" + dataset)
	return st.db.Update(func(tx *bolt.Tx) error {
		adm := tx.Bucket(bucketAdmissions)
		if adm.Get(key) != nil {
			return nil
		}
		if dp := ds.DP; dp != nil {
			charge := policy.MicroEpsilon(dp.Epsilon)
			b := tx.Bucket(bucketBudgets)
			mine, all := counterKey(dataset, req.User), counterKey(dataset, "*")
			spent, total := getInt(b, mine), getInt(b, all)
			if spent+charge > policy.MicroEpsilon(dp.Budget) {
				return &admissionRefusal{"dp_budget", fmt.Sprintf("analyst %s has spent ε %.6g of the budget %.6g on %s; this job needs %.6g more", req.User, float64(spent)/1e6, dp.Budget, dataset, dp.Epsilon)}
			}
			if dp.TotalBudget > 0 && total+charge > policy.MicroEpsilon(dp.TotalBudget) {
				return &admissionRefusal{"dp_total_budget", fmt.Sprintf("all analysts together have spent ε %.6g of the dataset's total budget %.6g on %s", float64(total)/1e6, dp.TotalBudget, dataset)}
			}
			if err := putInt(b, mine, spent+charge); err != nil {
				return err
			}
			if err := putInt(b, all, total+charge); err != nil {
				return err
			}
		}
		if rl := ds.RateLimit; rl != nil {
			b := tx.Bucket(bucketRates)
			mine, err := window(b, counterKey(dataset, req.User), now, rl.Per)
			if err != nil {
				return err
			}
			all, err := window(b, counterKey(dataset, "*"), now, rl.Per)
			if err != nil {
				return err
			}
			if len(mine) >= rl.Jobs {
				return &admissionRefusal{"rate_limit", fmt.Sprintf("analyst %s has run %d jobs on %s in the last %s (limit %d)", req.User, len(mine), dataset, rl.Per, rl.Jobs)}
			}
			if rl.TotalJobs > 0 && len(all) >= rl.TotalJobs {
				return &admissionRefusal{"rate_limit_total", fmt.Sprintf("%d jobs of all analysts have used %s in the last %s (limit %d)", len(all), dataset, rl.Per, rl.TotalJobs)}
			}
			if err := putWindow(b, counterKey(dataset, req.User), append(mine, now.Unix())); err != nil {
				return err
			}
			if err := putWindow(b, counterKey(dataset, "*"), append(all, now.Unix())); err != nil {
				return err
			}
		}
		var t [8]byte
		binary.BigEndian.PutUint64(t[:], uint64(now.Unix()))
		return adm.Put(key, t[:])
	})
}

// spent reports the ε (µε) charged to an analyst ("*": everyone) on a dataset.
func (st *stateDB) spent(dataset, analyst string) (int64, error) {
	var n int64
	err := st.db.View(func(tx *bolt.Tx) error {
		n = getInt(tx.Bucket(bucketBudgets), counterKey(dataset, analyst))
		return nil
	})
	return n, err
}

func counterKey(dataset, who string) []byte { return []byte(dataset + "\x00" + who) }

func getInt(b *bolt.Bucket, k []byte) int64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func putInt(b *bolt.Bucket, k []byte, n int64) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(n))
	return b.Put(k, v[:])
}

// window returns the times (unix seconds) within per before now.
func window(b *bolt.Bucket, k []byte, now time.Time, per time.Duration) ([]int64, error) {
	var ts []int64
	if v := b.Get(k); v != nil {
		if err := json.Unmarshal(v, &ts); err != nil {
			return nil, fmt.Errorf("node: state: rate window: %w", err)
		}
	}
	cut := now.Add(-per).Unix()
	out := ts[:0]
	for _, t := range ts {
		if t > cut {
			out = append(out, t)
		}
	}
	return out, nil
}

func putWindow(b *bolt.Bucket, k []byte, ts []int64) error {
	v, _ := json.Marshal(ts)
	return b.Put(k, v)
}

// errAttemptUsed: the attempt (or a newer one) was prepared here before.
var errAttemptUsed = errors.New("node: attempt already prepared")

// prepareAttempt records that the node prepares job's list at attempt,
// refusing an attempt not newer than one it prepared before.
func (st *stateDB) prepareAttempt(job string, attempt int) error {
	return st.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAttempts)
		if err := attemptFree(b, job, attempt); err != nil {
			return err
		}
		return putInt(b, []byte(job), int64(attempt))
	})
}

// checkAttempt is prepareAttempt's check alone.
func (st *stateDB) checkAttempt(job string, attempt int) error {
	return st.db.View(func(tx *bolt.Tx) error { return attemptFree(tx.Bucket(bucketAttempts), job, attempt) })
}

func attemptFree(b *bolt.Bucket, job string, attempt int) error {
	if have := getInt(b, []byte(job)); have >= int64(attempt) {
		return fmt.Errorf("%w: job %s was prepared here at attempt %d (before this node restarted, or by another request); it needs a newer attempt", errAttemptUsed, job, have)
	}
	return nil
}

// sealedList is a psi_members list sealed to the analyst, as the node
// keeps it until a reviewer releases it.
type sealedList struct {
	Attempt   int           `json:"attempt"`
	SpecHash  attest.Digest `json:"spec_hash"`
	Dataset   string        `json:"dataset"`
	Count     int           `json:"count"`
	Recipient string        `json:"recipient"`
	// RecipientKey is the SHA-256 of the public key the list is sealed to.
	RecipientKey attest.Digest `json:"recipient_key_sha256"`
	Sealed       attest.Digest `json:"sealed_sha256"`
	Ciphertext   []byte        `json:"ciphertext"`
	At           time.Time     `json:"at"`
}

// putSealed keeps a job's sealed list (replacing an earlier one: the
// result under review names the one it means by its digest).
func (st *stateDB) putSealed(job string, l *sealedList) error {
	v, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return st.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSealed).Put([]byte(job), v) })
}

// sealed returns a job's sealed list, if any.
func (st *stateDB) sealed(job string) (*sealedList, error) {
	var out *sealedList
	err := st.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSealed).Get([]byte(job))
		if v == nil {
			return nil
		}
		out = new(sealedList)
		return json.Unmarshal(v, out)
	})
	return out, err
}
