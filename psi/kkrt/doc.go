// Package kkrt is a second PSI engine for Unseen: semi-honest two-party
// private set intersection from the batched, related-key OPRF of
// Kolesnikov, Kumaresan, Rosulek and Trieu ("Efficient Batched Oblivious
// PRF with Applications to Private Set Intersection", CCS 2016, eprint
// 2016/799; "KKRT" below), built on IKNP-style OT extension, in pure Go.
// Where package psi (commutative blinding on X25519) pays about four
// scalar multiplications per element pair, this engine pays a few AES and
// SHA-256 blocks, and runs many times faster (BenchmarkRun reports the
// ratio to the X25519 limit measured in the same run).
//
// # Roles
//
// Two nodes run the protocol; the coordinator relays their messages (the
// caller encrypts them end to end) and joins the results.
//
//   - The receiver (Receiver) holds set X. It cuckoo-hashes X, is the
//     OT-extension receiver, and sends one OPRF output per item to the
//     coordinator.
//   - The sender (Sender) holds set Y and the OPRF key s. For every item it
//     sends the coordinator three OPRF values, one per candidate bin.
//   - The coordinator joins outputs and values (Join, Joiner) and learns
//     which receiver positions match which sender positions.
//
// # Protocol
//
// Both nodes hold a 32-byte session key K that the coordinator does not
// know, fresh for every job (reusing it would give two jobs the same
// partition and cuckoo functions), and agree on public Params (both set sizes; the receiver's first
// message carries them, and the sender refuses a mismatch). HKDF-SHA256
// derives from K: an 8-byte session tag carried by every message; an AES
// key for the partition function; four AES keys for the pseudo-random
// code; and, per partition p and attempt a, the key of the cuckoo hash
// functions.
//
//  1. Base OTs (Setup, Reply, Seeds; see baseot.go): w = 512 random OTs in
//     which the receiver holds seed pairs (k_i^0, k_i^1) and the sender
//     random choice bits s ∈ {0,1}^512 and k_i^{s_i}. Only κ = 128 are
//     public-key OTs (circl's ot/simot, Chou–Orlandi "simplest OT" over
//     Ristretto255, the sender as base-OT sender); one IKNP step, with
//     SHA-256 as its random oracle, extends them to 512. G(k) is
//     AES-128-CTR under key k from counter 0: an unbounded stream in which
//     row r of column i is bit r of G(k_i^·).
//  2. Partitions: each node splits its set by P(x) = ⌊LE64(AES_Kp(x)[0:8])·P
//     / 2^64⌋ (Partitioner) and runs one OPRF instance per partition, with
//     the same base OTs: partition p owns rows [p·m, (p+1)·m) of the
//     extension matrix, m = Plan.Bins, so no row is ever used twice.
//  3. Cuckoo hashing (package psi/cuckoo): the receiver places each item of
//     partition p in one of three distinct candidate bins, stash-less, in
//     m bins. If no placement exists (probability ≤ 2^-40), it tries the
//     next key, a = 1, 2, …; the attempt travels in every correction chunk.
//  4. Correction (Chunk → Apply): for bins b of the partition, the receiver
//     sends, column by column, u^i = G(k_i^0) ⊕ G(k_i^1) ⊕ c^i, where row b
//     of the matrix c is C(x_b) for the item x_b in bin b (zero if empty),
//     in chunks of Plan.ChunkRows rows (1 MiB by default, at most 4 MiB).
//     The sender computes q^i = G(k_i^{s_i}) ⊕ s_i·u^i, so that row b is
//     q_b = t_b ⊕ (C(x_b) ∧ s), with t_b row b of G(k^0).
//  5. Outputs: the receiver sends the coordinator, for each item x_b, H(p, b,
//     t_b) with its position. The sender sends, for each item y with
//     candidate bins b₁, b₂, b₃, the three values H(p, b_j, q_{b_j} ⊕ (C(y) ∧ s)),
//     sorted, with its position. These agree exactly when y = x_b and b is
//     the bin x_b sits in: then q_b ⊕ (C(y) ∧ s) = t_b.
//  6. Join: the coordinator sorts both lists by value and merges them.
//
// # Instantiation
//
//   - Pseudo-random code: C(x) = AES_{K0}(x) ‖ AES_{K1}(x) ‖ AES_{K2}(x) ‖
//     AES_{K3}(x), w = 512 bits, for 16-byte items x. KKRT (§5, table of
//     code lengths) need w between 424 and 448 bits for 2^-40 statistical
//     security at 2^8 … 2^24 OPRF instances; we take four AES blocks. What
//     the proof needs is that every pair of code words that meet in the
//     protocol (≤ n_X·3n_Y pairs, 2^55.6 at MaxSetSize) differ in at least
//     κ = 128 bits: Pr[Bin(512, ½) < 128] = 2^-102.3 per pair, so all pairs
//     do except with probability ≤ 2^-46.7 (TestCodeDistanceBound).
//   - PRG G: AES-128-CTR (crypto/aes, AES-NI), keyed by the base-OT seeds.
//   - H: the first 16 bytes of SHA-256(tag ‖ uint32 p ‖ uint32 b ‖ row).
//     KKRT's proof needs H correlation robust for correlations of Hamming
//     weight ≥ κ and shows a random oracle is; we use SHA-256 (SHA-NI) as
//     that random oracle rather than a fixed-key-AES construction, whose
//     wide-input variants lack a proof in this setting. It costs about a
//     quarter of the engine's CPU (profile of BenchmarkRun at 2^20); a
//     proven fixed-key AES hash is the one optimisation left with a large
//     gain.
//   - Outputs are 16 bytes: a false match among n_X·3n_Y ≤ 2^55.6
//     comparisons has probability ≤ 2^-72.
//   - Items are 16 bytes (Item). Callers map IDs to items with a keyed
//     hash that both nodes share and the coordinator does not know
//     (HashItem); the engine requires items to be distinct within a set
//     and refuses duplicates (Run de-duplicates first, keeping the first
//     occurrence, and renumbers positions so that gaps reveal nothing).
//
// # Parameters
//
// P = ⌈max(n_X, n_Y)/PartitionSize⌉ partitions (PartitionSize 2^15 by
// default, the fastest setting measured; up to 2^20 allowed), so that
// memory is O(partition) on both nodes and the coordinator. Every partition has the same Capacity, the least c such
// that some partition gets more than c receiver items with probability
// ≤ 2^-40 (Bernstein's inequality with a union bound), and the same number
// of bins m = Bins(Capacity) rounded up to a multiple of 128 (psi/cuckoo:
// 1.27·c for large partitions, a rigorous bound for small ones). Message
// sizes therefore depend on n_X and n_Y only. A partition over capacity is
// an error (ErrPartitionOverflow), never a larger table.
//
// # Who learns what
//
// Semi-honest model: both nodes follow the protocol; the coordinator does
// not collude with a node; the caller encrypts node-to-node messages end
// to end, so the coordinator (and anyone relaying) sees their sizes only.
//
//   - The sender learns n_X (public, in Params) and nothing else: the
//     base-OT messages hide the receiver's choice bits Δ, and the
//     correction chunks are pseudo-random (each column is masked by
//     G(k_i^{1−s_i}), a stream it cannot compute) and their sizes depend
//     on the Params only. The cuckoo attempt counter reveals that a
//     placement failed, an event of probability ≤ 2^-40 per partition.
//   - The receiver learns n_Y (public) and nothing else: it receives only
//     base-OT messages from the sender (which hide s), and no value
//     computed from Y.
//   - The coordinator learns n_X, n_Y, the partition of every position
//     (partitions are a keyed function it cannot compute, so they are
//     random labels to it), and which receiver positions match which
//     sender positions: hence the intersection size. The values of a
//     non-matching item are outputs of H on rows masked by G streams it
//     cannot compute, so they are pseudo-random and independent across
//     sessions (fresh base-OT seeds every session; TestCoordinatorView).
//     It learns no bin and no hash-function index: bins are keyed by the
//     session key, and an item's three values are sorted, so which of them
//     matched says nothing about which hash function placed the item.
//   - Positions are whatever the callers attach (in Unseen, positions in a
//     node's secret order), so a match tells the coordinator nothing about
//     an ID until the receiver maps positions back.
//
// A malicious node (wrong Params, invented items, inconsistent chunks) is
// outside this model; the engine only guarantees that bad messages are
// refused with an error, never a panic, and that a message is never
// applied twice.
//
// # API
//
// Everything is a message ([]byte, versioned, length-checked; see wire.go
// for the layout), so a relay can carry it, and each side's state stays
// in its own process:
//
//	receiver                                 sender
//	r := NewReceiver(params, K)              s := NewSender(params, K)
//	                                 ◀────── setup := s.Setup()
//	reply := r.Reply(setup)          ──────▶ seeds := s.Seeds(reply)
//	r.Finish(seeds)                  ◀──────
//	per partition p (any order, concurrently):
//	rp := r.Partition(p, items, pos)         sp := s.Partition(p)
//	chunk := rp.Chunk(c), every c    ──────▶ sp.Apply(chunk)
//	rp.Outputs() ──▶ coordinator             sp.Values(items, pos) ──▶ coordinator
//
//	coordinator: j := NewJoiner(plan.Partitions); matches := j.Add(msg)
//
// Run drives both nodes and the coordinator in-process, for tests and
// benchmarks.
package kkrt
