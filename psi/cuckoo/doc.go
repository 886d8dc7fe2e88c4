// Package cuckoo implements the keyed, stash-less three-way cuckoo hashing
// with which psi/kkrt gives every receiver item a bin of its own.
//
// # Hash functions
//
// A Hasher holds a 16-byte key and a table size m. For an item x (16
// bytes), v = AES-128_key(x); the three 42-bit slices of v pick three
// distinct bins by multiply-shift, the second among the m−1 bins other than
// the first and the third among the m−2 others (Candidates). AES under a
// secret key is a pseudo-random permutation, so without the key the bins
// of an item are unpredictable; psi/kkrt derives the key from the session
// key that only the two nodes hold, so the relay cannot tell which bin an
// item went to. Distinct candidates also mean that an item never offers the
// same bin twice, which removes the most likely small failures below.
//
// # Placement
//
// Build inserts items one at a time. An item whose candidates are all full
// starts a breadth-first search for a chain of moves that ends in an empty
// bin (an augmenting path of the bipartite item–bin graph). Such a chain
// exists whenever all items so far can be placed, so Build fails
// (ErrNoAssignment) exactly when no placement exists, that is when some k
// items have fewer than k candidate bins between them (Hall's condition);
// it never fails because a random walk gave up. There is no stash: on
// failure the caller re-hashes with a fresh key (psi/kkrt derives the next
// one deterministically from the session key and an attempt counter).
//
// # Failure probability and table size
//
// Bins(n) is chosen so that, for hash functions modelled as random, Build
// fails with probability at most 2^-40:
//
//   - n ≤ LargeTable (2048): a failure needs k ≥ 4 items whose 3k
//     candidates lie in some k−1 bins, so, by the union bound,
//     P ≤ Σ_{k=4..n} C(n,k)·C(m,k−1)·(C(k−1,3)/C(m,3))^k. smallBins holds,
//     for n = 2^j, the least m for which this is ≤ 2^-40 (41 bins for 4
//     items … 3225 for 2048, about 1.57n); the bound is rigorous, and
//     TestSmallBinsCertified recomputes it. The same bound cannot certify
//     1.27n for large n (the first moment is dominated by sets of about n/2
//     items that almost never occur), so large tables rely on measurement.
//   - n > LargeTable: m = ⌈1.27·n⌉, the factor Pinkas, Schneider,
//     Tkachenko and Yanai determined for three hash functions and no stash
//     at statistical security 40 by measuring failure rates where they are
//     observable and extrapolating (PSTY19: "Efficient Circuit-based PSI
//     with Linear Communication", Eurocrypt 2019, eprint 2019/241, §3.2;
//     later OT-based PSI work uses the same 1.27n). TestFailureTrend
//     repeats that experiment at small n: near the load threshold
//     (1/0.918 ≈ 1.09 bins per item) log₂ P falls linearly or faster in ε,
//     ever more steeply as n grows, and at a fixed ε P falls with n. A
//     straight-line extrapolation from the measured points, conservative
//     because the curves bend downwards, gives P(1.27) ≈ 2^-36 at n = 512,
//     2^-54 at n = 1024 and 2^-85 at n = 2048 (we measured these once at
//     more trials than the test runs), so 2^-40 holds with margin above
//     LargeTable. The small structures that the straight line cannot see
//     are bounded rigorously: the union-bound terms for k ≤ 32 at ε = 1.27
//     are below 2^-54 for every n ≥ 2048.
//
// The bounds assume the items are distinct; psi/kkrt refuses duplicates.
//
// The cost of a failure is one re-hash, and the only thing it reveals is
// the attempt counter that the receiver must send to the sender: one event
// of probability ≤ 2^-40 per table.
package cuckoo
