package psi

import (
	"context"
	"fmt"
	"math/bits"
	"sort"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// observer records, independently of Run's routing, what every party
// handles. It knows all keys and IDs (tests only), so it can name every
// element by (ID, set of keys applied) — its blinding degree — and check
// the privacy properties against what the parties actually saw.
type observer struct {
	n     int
	ids   []map[string]bool   // per party: its de-duplicated IDs
	table map[Element]elemTag // every H(id)^{Π_{j∈S} k_j}, S ⊆ parties

	mu         sync.Mutex
	violations []string
	full       []map[int]bool // party -> lists it handled at full degree
}

type elemTag struct {
	id   string
	keys uint // bit j set: party j's key applied
}

func (o *observer) fullMask() uint { return 1<<o.n - 1 }

// newObserver builds the table of every blinding of every ID: 2^n − 1
// scalar multiplications per distinct ID.
func newObserver(t *testing.T, jobID string, secrets [][]byte, ids [][][]byte) *observer {
	t.Helper()
	n := len(secrets)
	o := &observer{n: n, table: map[Element]elemTag{}}
	keys := make([]*Key, n)
	for j := range n {
		k, err := DeriveKey(secrets[j], jobID, testSpecHash)
		require.NoError(t, err)
		keys[j] = k
	}
	all := map[string]bool{}
	for j := range n {
		o.ids = append(o.ids, map[string]bool{})
		o.full = append(o.full, map[int]bool{})
		for _, id := range ids[j] {
			o.ids[j][string(id)] = true
			all[string(id)] = true
		}
	}
	for id := range all {
		vals := make([]Element, 1<<n)
		vals[0] = HashID(jobID, []byte(id))
		for s := uint(1); s < 1<<n; s++ {
			j := bits.TrailingZeros(s)
			require.NoError(t, keys[j].blindOne(&vals[s], &vals[s&^(1<<j)]))
		}
		for s, v := range vals {
			if prev, dup := o.table[v]; dup {
				t.Fatalf("table collision: %v and %v", prev, elemTag{id, uint(s)})
			}
			o.table[v] = elemTag{id, uint(s)}
		}
	}
	return o
}

func (o *observer) violate(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.violations = append(o.violations, fmt.Sprintf(format, args...))
}

// tag names e, recording a violation if e is not a known blinding, or is an
// unblinded H(id) (degree 0), or is not an ID of the list it is said to be.
func (o *observer) tag(party, list int, where string, e Element) (elemTag, bool) {
	tg, ok := o.table[e]
	switch {
	case !ok:
		o.violate("party %d %s list %d: unknown element %x (raw ID or garbage)", party, where, list, e[:8])
	case tg.keys == 0:
		o.violate("party %d %s list %d: unblinded H(%q)", party, where, list, tg.id)
	case !o.ids[list][tg.id]:
		o.violate("party %d %s list %d: element of ID %q, not in that list", party, where, list, tg.id)
	case tg.keys&(1<<list) == 0:
		o.violate("party %d %s list %d: element not blinded by the list's owner", party, where, list)
	default:
		return tg, true
	}
	return tg, false
}

func (o *observer) sawFull(party, list int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.full[party][list] = true
}

// check returns every violation, including the per-party ones that need
// the whole run: a party handling its own list fully blinded, or more than
// one fully blinded list.
func (o *observer) check() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	v := append([]string(nil), o.violations...)
	for p, lists := range o.full {
		if lists[p] {
			v = append(v, fmt.Sprintf("party %d handled its own list fully blinded", p))
		}
		if len(lists) > 1 {
			var ls []int
			for l := range lists {
				ls = append(ls, l)
			}
			sort.Ints(ls)
			v = append(v, fmt.Sprintf("party %d handled %d fully blinded lists %v", p, len(ls), ls))
		}
	}
	return v
}

// observedParty wraps a LocalParty and reports what crosses its boundary,
// both directions (its outputs are also what Run receives).
type observedParty struct {
	*LocalParty
	o *observer
}

func (p observedParty) Own(ctx context.Context, offset, n int) (Chunk, error) {
	ch, err := p.LocalParty.Own(ctx, offset, n)
	me := p.Self()
	for _, e := range ch.Elements {
		if tg, ok := p.o.tag(me, me, "returned (own)", e); ok && tg.keys != 1<<me {
			p.o.violate("party %d returned own element blinded by %b, want only its own key", me, tg.keys)
		}
	}
	return ch, err
}

func (p observedParty) Reblind(ctx context.Context, list, offset int, inc Chunk) (Chunk, error) {
	in := inc.Elements
	me := p.Self()
	if list == me {
		p.o.violate("party %d asked to reblind its own list", me)
	}
	if list < 0 || list >= p.o.n {
		p.o.violate("party %d asked to reblind list %d", me, list)
		return p.LocalParty.Reblind(ctx, list, offset, inc)
	}
	inTags := make([]elemTag, len(in))
	for i, e := range in {
		tg, ok := p.o.tag(me, list, "received", e)
		inTags[i] = tg
		if !ok {
			continue
		}
		if tg.keys&(1<<me) != 0 {
			p.o.violate("party %d received list %d already blinded by itself", me, list)
		}
		if tg.keys == p.o.fullMask() {
			p.o.sawFull(me, list)
		}
	}
	outc, err := p.LocalParty.Reblind(ctx, list, offset, inc)
	out := outc.Elements
	for i, e := range out {
		tg, ok := p.o.tag(me, list, "returned", e)
		if !ok {
			continue
		}
		if want := inTags[i].keys | 1<<me; tg.keys != want || tg.id != inTags[i].id {
			p.o.violate("party %d output %d is %v, want %q with keys %b", me, i, tg, inTags[i].id, want)
		}
		if tg.keys == p.o.fullMask() {
			p.o.sawFull(me, list)
		}
	}
	return outc, err
}
