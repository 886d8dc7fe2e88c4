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
// Every HE object crossing a process boundary travels in a
// compute/he/envelope envelope; its payload is checked against the exact
// size and structure of its label and level (ParamSet.CheckShape) before
// lattigo parses it, because lattigo's UnmarshalBinary can exhaust memory or
// the stack on corrupted input. Encryptor, Evaluator and Decoder are not
// safe for concurrent use: give each goroutine a ShallowCopy.
package he
