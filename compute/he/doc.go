// Package he is Unseen's homomorphic layer: BGV over lattigo v5.0.7
// (he/heint, mhe). It and its subpackages are the only code in the project
// that imports lattigo; everything here is transport-agnostic bytes in,
// bytes out.
//
// Packages:
//
//	compute/he           parameter sets, wire shapes, range-checked encoding,
//	                     encryption, Add / MulMask / zero-sum masking, noise
//	                     model and the smudging guard
//	compute/he/envelope  authenticated envelope (HMAC-SHA256) checked before
//	                     any lattigo parsing
//	compute/he/ceremony  t-of-N key ceremony: secret-key shares, collective
//	                     public key, Shamir shares sealed node-to-node (HPKE)
//	compute/he/release   active sets, per-node decryption shares towards the
//	                     coordinator's release key, combining and decoding
//	compute/he/ledger    append-only, fsynced record of what a node has
//	                     helped decrypt — each job's output and each
//	                     ciphertext at most once
//
// Who learns what (honest-but-curious parties, the coordinator colluding
// with no node, decryption needing t nodes):
//
//   - A node learns its own records, its own secret-key share and threshold
//     share, the collective public key, and the public parameters. It sees
//     the ciphertexts it is asked to help decrypt but cannot decrypt them
//     alone (t−1 shares reveal nothing of the key). Its decryption share is
//     flooded with noise of 2^40 × a noise bound the node computes itself
//     (never the descriptor that came with the ciphertext), so the share
//     reveals nothing of its key share either.
//   - The coordinator learns ciphertexts (nothing of their content), the
//     collective public key, and, after t nodes switch a result to its
//     release key, the result ciphertext's plaintext: with zero-sum masking
//     (which each releasing node can add to its own share,
//     release.Decryption.ZeroSum) the individual slots are uniformly random
//     and only each block's total (the aggregate) is meaningful. It never sees a record, a key share or a
//     Shamir share in the clear (those are HPKE-sealed node-to-node). With
//     its own state alone (release key, public key, ciphertexts) it cannot
//     decrypt anything.
//   - The reviewer (and, once released, the analyst) learns only the
//     aggregate the coordinator decodes and passes on. A later mode switches
//     results straight to the reviewer's key so that no server sees them.
//
// # Exact Σx and Σx² at any row count
//
// A total must not wrap modulo the plaintext modulus T. With T_s ≈ 2^42
// (sums) and T_q ≈ 2^59 (squares), a Σx² over 10^8 rows of |x| ≤ 2^40
// (≈ 2^107) wraps either, so the values are no longer range-checked against
// the row count; instead every statistic S is sent as residues (Acc, exact.go):
//
//   - its residue mod T (S mod T wraps freely: only the residue is wanted);
//   - where the residue alone does not determine S, a floor hint
//     Σ_terms ⌊S_term / 2^h⌋ over the result's terms (each contributing
//     node of an aggregate; each key of an intersection_stats job). S then
//     lies in [2^h·hint, 2^h·(hint + terms)), a window that fits the
//     modulus, and Lift recovers S exactly in big integers;
//   - for intersection_stats (up to 2^30 terms), the residues mod T_s and
//     mod T_q together (CRT: T_s·T_q ≈ 2^101).
//
// With |x| ≤ 2^40 (MaxValue) and at most 2^30 rows per result over all
// inputs (MaxJobRows: 8 nodes × 10^8 rows fit), the layouts are
//
//	aggregate, per group:  sums:    count, Σx mod T_s, ⌊Σx_node/2^39⌋ summed
//	                       squares: Σx² mod T_q, ⌊Σx²_node/2^55⌋ summed
//	intersection_stats:    count (sums); Σx mod T_s, mod T_q; Σx² mod T_s,
//	                       mod T_q, Σ_keys ⌊Σx²_key/2^70⌋ (sums)
//
// and TestExactBounds checks every bound with big integers (windows ≤ the
// modulus, counts and hints ≤ (T−1)/2).
//
// Why residues and hints rather than limbs (splitting x into small digits
// and summing each digit): both keep the two parameter sets, their 128-bit
// security check and the key ceremony as they are. But a limb total (the
// sum of every row's low 12 bits, say) is a statistic of its own, which
// the coordinator would decrypt beside Σx; a residue of S is a function of
// S alone, and a floor hint is S rounded down to 2^39 or coarser (per node,
// or, for intersection_stats, per key at 2^70 — zero unless some key's
// Σx² passes 2^70, i.e. |x| > 2^35). Residues also need fewer outputs: an
// aggregate still has two (sums; squares with the variance), an
// intersection_stats job six per group (count, two Σx lanes, three Σx²
// lanes, ISLane) where limbs would need eight. Pure CRT for Σx² would need
// a third plaintext modulus (a new parameter set and ceremony).
//
// Every HE object crossing a process boundary travels in a
// compute/he/envelope envelope; its payload is checked against the exact
// size and structure of its label and level (ParamSet.CheckShape) before
// lattigo parses it, because lattigo's UnmarshalBinary can exhaust memory or
// the stack on corrupted input. Encryptor, Evaluator and Decoder are not
// safe for concurrent use: give each goroutine a ShallowCopy.
package he
