package node

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/unseen-data/unseen/psi"
	"github.com/unseen-data/unseen/psi/kkrt"
)

func TestItemHasherIsHashItem(t *testing.T) {
	key := bytes.Repeat([]byte{3}, 32)
	h := newItemHasher(key)
	for _, id := range []string{"", "440106199001011236", "x"} {
		if h.item([]byte(id)) != kkrt.HashItem(key, []byte(id)) {
			t.Fatalf("item(%q) differs from kkrt.HashItem", id)
		}
	}
}

// The spill file gives every partition exactly what memory gives: the
// same items at the same positions, ascending.
func TestOTPartsSpillMatchesMemory(t *testing.T) {
	var ids [][]byte
	for i := range 20000 {
		ids = append(ids, []byte(fmt.Sprintf("id-%d", i)))
	}
	party, err := psi.NewLocalParty(bytes.Repeat([]byte{1}, 32), "j", make([]byte, 32), 0, ids)
	if err != nil {
		t.Fatal(err)
	}
	ss := &session{party: party}
	params := kkrt.Params{ReceiverSize: 20000, SenderSize: 20000, PartitionSize: 1000, ChunkRows: 1024}
	plan, err := params.Plan()
	if err != nil {
		t.Fatal(err)
	}
	sk, ik := bytes.Repeat([]byte{5}, 32), bytes.Repeat([]byte{6}, 32)
	build := func(spillAbove int) *otParts {
		old := otSpillAbove
		otSpillAbove = spillAbove
		defer func() { otSpillAbove = old }()
		ps, err := buildOTParts(context.Background(), ss, params, sk, ik, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	mem, disk := build(1<<30), build(100)
	defer disk.Close()
	if mem.f != nil || disk.f == nil {
		t.Fatal("the threshold did not pick memory and disk")
	}
	pt, _ := kkrt.NewPartitioner(params, sk)
	total := 0
	for p := range plan.Partitions {
		mi, mp, err := mem.Partition(p)
		if err != nil {
			t.Fatal(err)
		}
		di, dp, err := disk.Partition(p)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(mi, mp) != fmt.Sprint(di, dp) {
			t.Fatalf("partition %d differs between memory and disk", p)
		}
		for i := range mi {
			if i > 0 && mp[i] <= mp[i-1] {
				t.Fatalf("partition %d: positions not ascending", p)
			}
			if pt.Of(&mi[i]) != p || mi[i] != kkrt.HashItem(ik, party.IDAt(int(mp[i]))) {
				t.Fatalf("partition %d: item %d is not its position's ID's", p, i)
			}
		}
		total += len(mi)
		if _, _, err := disk.Partition(p); err == nil && len(disk.segs[p]) != 0 {
			t.Fatal("a partition was kept after it was read")
		}
	}
	if total != 20000 {
		t.Fatalf("%d items of 20000", total)
	}
}
