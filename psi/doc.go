// Package psi implements Unseen's multi-party private set intersection by
// commutative blinding on X25519 (design.md §4.1).
//
// # Protocol
//
// For a job j with N ≥ 2 parties (departments' nodes) P_0 … P_{N−1}:
//
//  1. Each party derives a per-job key k_i = HKDF-SHA256(node secret, j)
//     (DeriveKey). It is deterministic, so a retried step gives the same
//     answer, and differs per job, so jobs cannot be linked.
//  2. Each party de-duplicates its normalised IDs and puts them in a secret
//     order: ascending HMAC-SHA256(k'_i, id), k'_i another HKDF output of the
//     node secret and job id. The order depends only on the set, the secret
//     and the job, so retries (even after re-reading the source in another
//     order) agree (NewLocalParty).
//  3. P_i produces H(x)^{k_i} for each of its IDs x, in that order
//     (Party.Own).
//  4. The coordinator routes list i through P_{i+1}, …, P_{i+N−1} (mod N)
//     (Route), each raising every element to its own key, keeping positions
//     (Party.Reblind). P_{i−1} makes list i's last hop and no other, so no
//     party sees its own list fully blinded, nor two fully blinded lists.
//  5. The coordinator truncates the fully blinded elements to 16-byte tokens
//     and joins them; Run returns the positions of the primary list whose
//     token occurs in every other list, and their count.
//
// "Raising to a key" is the X25519 function (RFC 7748) with k_i as the
// scalar: X25519 clamps the scalar, and clamped scalars commute, so the fully
// blinded value of an ID is the same whatever the route. Lists travel in
// chunks, concurrently, and every blinding step uses all cores (GOMAXPROCS).
//
// # Hash to the curve
//
// The design's H(id) = SHA-256("unseen/psi/v1" ‖ job id ‖ id), taken as a
// u-coordinate directly, lands on Curve25519's quadratic twist for half of
// all IDs, and scalar multiplication never leaves the twist: anyone holding
// a blinded element can tell which (one Legendre symbol), and anyone can
// compute that bit for a guessed ID. That is one bit about the ID behind
// every element, leaked to the coordinator and every node. HashID therefore
// maps the digest onto the curve with Elligator 2 (RFC 9380 §6.7.1,
// map_to_curve_elligator2 for curve25519, Z = 2):
//
//	d      = SHA-256("unseen/psi/v1" ‖ uint64be(len(job id)) ‖ job id ‖ id)
//	r      = d read little-endian, bit 255 cleared, reduced mod 2^255−19
//	H(id)  = u-coordinate of Elligator2(r), 32 bytes little-endian, canonical
//
// The job id is length-prefixed so that ("ab", "c") and ("a", "bc") hash
// differently; the id is the rest of the input. Every element that leaves a
// node then lies in the prime-order subgroup of the curve proper. The cost
// is one field exponentiation per ID, paid once by its owner.
//
// # Who learns what
//
// Under the design's threat model (honest-but-curious parties, coordinator
// not colluding with a node):
//
//   - A node learns its own IDs; the length of every list (it reblinds them
//     in chunks); and, for the one list whose last hop it makes, that list's
//     fully blinded elements, which it cannot compare with anything because
//     it never sees its own list, or any other, fully blinded. It sees no
//     other party's IDs or H(id), only elements blinded by at least the
//     owner's key.
//   - The coordinator learns every list's length and every list's fully
//     blinded tokens. From them it learns which positions of the primary
//     list are in the N-way intersection (Result), and, although Run does
//     not compute it, it could equally compute the size of the intersection
//     of any subset of lists and which positions match. Positions are in
//     each node's secret order, so they say nothing about which IDs match.
//     It never sees an ID or an H(id).
//   - The primary node, once the positions are released to it (psi_members),
//     maps them back to its own IDs with LocalParty.IDAt.
//
// Collusion between the coordinator and a node, or a node deviating from the
// protocol (e.g. inventing elements), is outside this model.
//
// # Resuming
//
// RunWith can skip chunks an earlier run completed (RunOptions.Done) and
// reports each chunk it computes (RunOptions.OnChunk), so that a run cut
// short — in Unseen, an attempt of a job whose coordinator died — resumes.
// A chunk's tokens are the same at every attempt as long as its list is:
// the keys derive from each node's secret, the job id and the spec hash,
// and a node's list order from its set. The caller must make sure the lists
// are unchanged (the coordinator's worker keys checkpoints by every list's
// length and its node's keyed digest). What is checkpointed is the 16-byte
// tokens, exactly what the coordinator holds in every run to compute the
// Result: under the honest-but-curious model and under a malicious
// coordinator alike, keeping them reveals nothing the coordinator did not
// already see, and nodes see nothing of them. Run is RunWith without
// resuming.
//
// # Wire format and validation
//
// An Element is a u-coordinate, 32 bytes little-endian; a list is the
// concatenation of its elements (EncodeElements). DecodeElements rejects
// lengths that are not a multiple of 32 or exceed a caller-given maximum,
// non-canonical encodings (bit 255 set, or a value ≥ 2^255−19), and the
// low-order points of Curve25519 and its twist (u ∈ {0, 1, −1} and the two
// order-8 points, compared after clearing bit 255 and reducing mod p as
// X25519 does: the same set as libsodium's blocklist). Key.Blind rejects
// low-order inputs and treats an all-zero result as an error, never as a
// value. No input makes this package panic.
package psi
