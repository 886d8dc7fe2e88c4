package node

// Disclosure control at the node, on its own rows (policy/disclosure), for
// every job whatever the coordinator says — because the coordinator sees
// every total before any reviewer does:
//
//   - at most max_rows_per_key rows per person (the first in file order,
//     after the filter) reach an aggregate or intersection_stats job, and
//     every value summed is clamped to the dataset's dp.value_bound when it
//     declares one, before anything is encrypted: the sensitivity the
//     coordinator's noise and k assume (disclosure.Plan) then holds;
//   - differencing: the node keeps, per dataset, an IBLT sketch of the
//     people in each job's filtered input (keyed hashes of their IDs, under
//     a key derived from the node's secret) in its node.db for
//     disclosure.DefaultWindow (at most disclosure.DefaultPerDataset jobs),
//     and refuses (code differencing) a job whose input differs from an
//     earlier job's by 1 to k−1 people — or, where the dataset's policy
//     says differencing: flag, takes part and reports the overlap (the
//     earlier jobs and the size of the difference) for the reviewer.
//
// Who learns what: the sketches never leave the node. A refusal says only
// that the difference is below k (not its size); a flag tells the
// coordinator and the reviewer the earlier jobs and the size.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/hkdf"

	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/disclosure"
	"github.com/unseen-data/unseen/policy/disclosure/iblt"
)

// bucketSketches holds the differencing sketches: dataset \x00 time (8
// bytes, big-endian unix nanoseconds, so a dataset's entries sort oldest
// first) job → iblt encoding.
var bucketSketches = []byte("sketches")

// Differencing history bounds (policy/disclosure's defaults).
var (
	differencingWindow     = disclosure.DefaultWindow
	differencingPerDataset = disclosure.DefaultPerDataset
)

// capRows keeps at most the dataset's max_rows_per_key rows per person, the
// first in the given (file) order: rows are the filtered rows, keyCol the
// column naming the person ("" when the dataset has none: each row is its
// own person). It returns the rows kept and the distinct people among them
// (their keys), for the k check and the differencing sketch.
func capRows(t *rowSet, ds *policy.Dataset, rows []int, keyCol string) ([]int, []string, error) {
	keys := make([]string, len(rows))
	for k, i := range rows {
		if keyCol == "" {
			keys[k] = fmt.Sprintf("\x00row:%d", i)
			continue
		}
		v, err := t.Value(i, keyCol)
		if err != nil {
			return nil, nil, refuse(KindBadRequest, "bad_input", "%s: %v", ds.Name, err)
		}
		if v.IsNull() { // no person named: a person of its own
			keys[k] = fmt.Sprintf("\x00row:%d", i)
			continue
		}
		keys[k] = v.Str()
	}
	keep := disclosure.CapPerKey(keys, disclosure.LimitsFor(ds).MaxRowsPerKey)
	out := make([]int, len(keep))
	people := make([]string, 0, len(keep))
	for j, k := range keep {
		out[j] = rows[k]
		people = append(people, keys[k])
	}
	slices.Sort(people)
	return out, slices.Compact(people), nil
}

// clampValues returns xs clamped to the dataset's dp.value_bound (in a
// copy: xs stays as read, for histogram buckets, whose counts do not depend
// on a value's size) and how many values were changed; xs itself when the
// dataset declares no bound.
func clampValues(ds *policy.Dataset, xs []int64) ([]int64, int) {
	b := disclosure.LimitsFor(ds).ValueBound
	if b <= 0 {
		return xs, 0
	}
	out := slices.Clone(xs)
	n, _ := disclosure.ClampAll(out, b) // b > 0: no error
	return out, n
}

// aggregateInput applies the node's limits to an aggregate's filtered rows
// (he.groups, he.aggregate): the per-person row cap, k counted in people,
// and the differencing check, which records the input's sketch. It returns
// the rows kept and, in flag mode, the overlaps to report.
func (s *Service) aggregateInput(job string, tbl *rowSet, ds *policy.Dataset, rows []int, detail map[string]string) ([]int, []disclosure.Overlap, error) {
	kept, people, err := capRows(tbl, ds, rows, disclosure.PersonKey(ds))
	if err != nil {
		return nil, nil, err
	}
	if capped := len(rows) - len(kept); capped > 0 {
		detail["rows_capped"] = fmt.Sprint(capped)
	}
	if k := ds.EffectiveMinCount(); len(people) < k {
		return nil, nil, refuse(KindForbidden, "input_below_k", "the filter on %s leaves fewer than its k = %d people: node %s does not take part in a result that could single out a person", ds.Name, k, s.cfg.Department)
	}
	ov, err := s.differencing(job, ds, func(add func([]byte)) {
		for _, p := range people {
			add([]byte(p))
		}
	}, detail)
	return kept, ov, err
}

// differencingKey is the key of the node's ID hashes for its sketches.
func (s *Service) differencingKey() ([]byte, error) {
	key := make([]byte, iblt.MinKeyLen)
	_, err := io.ReadFull(hkdf.New(sha256.New, s.secret, nil, []byte("unseen/node/differencing/v1")), key)
	return key, err
}

// differencing sketches the people of a job's filtered input of ds (each
// ID given once by each), compares the sketch with those of earlier jobs on
// ds within the window and records it. An earlier job whose input differs
// by 1 to k−1 people makes the node refuse (code differencing), or in flag
// mode report it. A refused job's sketch is not recorded.
func (s *Service) differencing(job string, ds *policy.Dataset, each func(add func(id []byte)), detail map[string]string) ([]disclosure.Overlap, error) {
	key, err := s.differencingKey()
	if err != nil {
		return nil, internal(err)
	}
	h, err := iblt.NewHasher(key)
	if err != nil {
		return nil, internal(err)
	}
	sk := iblt.New()
	each(func(id []byte) { sk.Insert(h.Sum64(id)) })
	k := ds.EffectiveMinCount()
	flag := ds.DifferencingMode() == policy.DifferencingFlag
	ov, err := s.state.difference(ds.Name, job, sk, k, !flag, s.clock(), differencingWindow, differencingPerDataset)
	if len(ov) > 0 {
		parts := make([]string, len(ov))
		for i, o := range ov {
			parts[i] = fmt.Sprintf("%s (%d)", o.Job, o.Difference)
		}
		detail["differencing"] = strings.Join(parts, ", ")
	}
	if errors.Is(err, errDifferencing) {
		jobs := make([]string, len(ov))
		for i, o := range ov {
			jobs[i] = o.Job
		}
		return nil, refuse(KindForbidden, "differencing", "the filtered input of %s differs from that of earlier job %s by fewer than its k = %d people (and by at least one): node %s takes no part, since subtracting the two results would single those people out",
			ds.Name, strings.Join(jobs, ", "), k, s.cfg.Department)
	}
	if err != nil {
		return nil, internal(err)
	}
	return ov, nil
}

// errDifferencing: a small difference, in refuse mode.
var errDifferencing = errors.New("node: input differs from an earlier job's by fewer than k people")

func sketchKey(dataset string, at time.Time, job string) []byte {
	k := make([]byte, 0, len(dataset)+1+8+len(job))
	k = append(k, dataset...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint64(k, uint64(at.UnixNano()))
	return append(k, job...)
}

// difference compares sk, job's sketch of its input of dataset, with the
// earlier jobs' sketches of dataset younger than window, and records it
// (replacing the job's own earlier sketch, dropping expired ones and the
// oldest beyond perDataset), in one transaction. It returns the overlaps
// (0 < |Δ| < k); with refuse set and any overlap it records nothing and
// returns errDifferencing with them.
func (st *stateDB) difference(dataset, job string, sk *iblt.Sketch, k int, refuse bool, now time.Time, window time.Duration, perDataset int) ([]disclosure.Overlap, error) {
	enc, err := sk.MarshalBinary()
	if err != nil {
		return nil, err
	}
	var out []disclosure.Overlap
	err = st.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketSketches)
		if err != nil {
			return err
		}
		prefix := append([]byte(dataset), 0)
		var drop, kept [][]byte
		c := b.Cursor()
		for key, v := c.Seek(prefix); key != nil && bytes.HasPrefix(key, prefix); key, v = c.Next() {
			rest := key[len(prefix):]
			if len(rest) < 8 {
				drop = append(drop, slices.Clone(key))
				continue
			}
			at := time.Unix(0, int64(binary.BigEndian.Uint64(rest[:8])))
			other := string(rest[8:])
			if now.Sub(at) > window || other == job {
				drop = append(drop, slices.Clone(key))
				continue
			}
			kept = append(kept, slices.Clone(key))
			var old iblt.Sketch
			if err := old.UnmarshalBinary(v); err != nil {
				drop = append(drop, slices.Clone(key)) // unreadable: nothing to compare with
				kept = kept[:len(kept)-1]
				continue
			}
			if d, small := iblt.SmallDifference(sk, &old, k); small {
				out = append(out, disclosure.Overlap{Job: other, Dataset: dataset, Difference: d})
			}
		}
		if len(out) > 0 && refuse {
			return errDifferencing
		}
		if n := len(kept) + 1 - perDataset; n > 0 {
			drop = append(drop, kept[:n]...)
		}
		for _, key := range drop {
			if err := b.Delete(key); err != nil {
				return err
			}
		}
		return b.Put(sketchKey(dataset, now, job), enc)
	})
	return out, err
}

// sketches counts the sketches the node keeps of dataset (for tests and
// operators).
func (st *stateDB) sketches(dataset string) (int, error) {
	n := 0
	err := st.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSketches)
		if b == nil {
			return nil
		}
		prefix := append([]byte(dataset), 0)
		c := b.Cursor()
		for key, _ := c.Seek(prefix); key != nil && bytes.HasPrefix(key, prefix); key, _ = c.Next() {
			n++
		}
		return nil
	})
	return n, err
}
