// Package node is a department's compute endpoint. It holds the
// department's datasets and secret, answers the coordinator's protocol steps
// and nothing else, checks every job against its own copy of its own policy
// (it never trusts the coordinator's check), and writes every request it
// serves — and every authenticated one it refuses — to its own hash-chained
// audit log.
//
// The package is the node's logic, with no transport: a Service with one
// typed method per protocol step (Prepare, Own, …, HERelease), taking the
// nodeapi request and returning the nodeapi response or an *Error (a Kind
// and a stable code). Package nodehttp serves it over HTTP; tests call it
// directly. The transport is a package of its own, not files beside the
// logic, so that nothing here can reach for a request or a status: a check
// added to a step holds however the step arrives (TestServiceHasNoTransport
// keeps net/http out). The files go by concern:
//
//	service.go      the Service: datasets, secret, audit log; authentication
//	table.go        a dataset: a handle on its source (compute/source), scans, and
//	                the rows a homomorphic step materialises
//	errors.go       Error and Kind
//	audit.go        what each audit entry records, and refusals
//	trust.go        what the node checks itself: spec binding, party, policy, consent, ledger
//	state.go        its own durable ledger (node.db): job bindings, budgets, rate limits,
//	                prepared attempts, sealed member lists
//	disclosure.go   disclosure control on its own rows: rows per person capped, values
//	                clamped to the value bound, differencing sketches (refuse or flag)
//	session.go      per-job state: a prepared PSI list, its attempt, what it reblinded
//	psi.go          the PSI steps: prepare, own, reblind, members, deliver, finish, outcome
//	ot.go           the OT protocol's steps: ot/open, accept, next, deliver (ot_parts.go:
//	                the session's items by partition; ot_input.go: its one read of the list)
//	he_keys.go      homomorphic key shares, envelopes, the decryption ledger
//	ceremony.go     the t-of-N key ceremony
//	he_layout.go    which columns and stats, range checks, the slot layout
//	he_aggregate.go he/groups, he/aggregate
//	he_values.go    he/values
//	he_release.go   he/zeromask, he/release
//
// # The data path
//
// A dataset is read where it lives, through compute/source: a CSV file, a
// PostgreSQL or a MySQL/MariaDB table or view (DatasetConfig.Source; file:
// is shorthand for a CSV source). The node never holds a whole dataset. At
// start it validates each source (a CSV file is read once in full, so a
// malformed row fails the start with its line; a database table must have
// the declared columns); each job step then scans the source with the
// job's filter, which a database runs as SQL with bound parameters.
//
// What is on disk, beside the node's ledger (Config.ListDir, emptied at
// start): each prepared PSI list, built by psi.BuildList as an external
// sort — the filtered keys are streamed from the source into sorted runs of
// list_run_records IDs (default 2^20, about 60 MiB), spilled to files and
// merged, de-duplicated, into the list's order (ascending HMAC of the ID
// under a key derived from the node secret and job: the order
// psi.NewLocalParty has always defined), with an offsets file for reads by
// position. The merge computes the list's keyed digest
// (PrepareResponse.ListDigest). The files are removed when the session
// ends (job/finish, a newer attempt, expiry, the node closing). Chunks
// (psi/own), psi/members' IDs, the OT protocol's input (ot_input.go) and
// the differencing sketch all read the list from disk; the OT path spills
// its own partitions beside it (ot_parts.go).
//
// Memory: a PSI prepare holds one run (O(list_run_records)), whatever the
// dataset's size: BenchmarkPrepareListMemory starts a node on a 10^7-row
// CSV file and prepares its 10^7-ID list in 248 MiB peak RSS. The
// homomorphic steps (he/groups, he/aggregate, he/values) index rows, so
// each materialises the input's selected rows with only the columns it
// needs (the person key, the value, the group: about 50–100 bytes a row) for
// the step: fine to 10^6–10^7 selected rows, and the one part of a node's
// memory that still grows with the data. he/values also keeps a map from
// the selected rows' keys to their list positions, found in one pass over
// the list on disk.
//
// Who learns what:
//   - PSI: the node learns the job spec and the sizes of the other parties'
//     filtered lists (it reblinds them), never another party's IDs; the
//     coordinator learns the size of the node's filtered list (only if it
//     is at least the dataset's k: a shorter one is refused) and blinded
//     points. The node blinds only chunks its peers produced (their
//     signatures, checked with its own federation keys), within the length
//     the list's owner signed, each position once per attempt, so the
//     coordinator cannot use it as a membership oracle for guessed IDs.
//     psi/members seals the matching IDs to the analyst's key and keeps
//     them; the coordinator learns their number and digest, and
//     psi/deliver hands the ciphertext over only against a reviewer's
//     signed approval of the result naming it.
//   - PSI over OT (ot.go): the same prepare; then the node runs KKRT with
//     one peer at a time over a channel sealed end to end (its ephemeral
//     key signed with its node key), so its peer learns this list's length
//     only, and the coordinator the lengths and which positions match
//     (with three or more parties, each list's matches with the star's
//     centre), never the frames' contents.
//   - Key ceremony: the coordinator relays the nodes' HPKE public keys,
//     their public-key-generation shares (public), and Shamir shares
//     HPKE-sealed node-to-node, which it cannot open; each is signed by the
//     node that made it, and a node takes part only with the departments of
//     its own federation.nodes and checks every signature, so no phantom or
//     substituted party receives a share. A node's secret-key share and
//     threshold share never leave it; they are kept in the keys directory
//     (files 0600) and reloaded at start; keys replaced by a later ceremony
//     are kept beside them (*.keys.old) and the replacement is audited.
//   - Differencing: the node keeps a sketch of the people in each job's
//     filtered input (keyed hashes: useless without its secret) and never
//     shares it; refusing a job whose input is within k−1 people of an
//     earlier one's says only that, and a flag (where the owner chose it)
//     tells the coordinator the earlier job and the size of the difference.
//   - he/groups tells the coordinator which labels of the group-by column
//     occur in this node's filtered rows (not how often): the price of a
//     common slot layout for aggregate.
//   - he/aggregate and he/zeromask return ciphertexts under the collective
//     key only (he/aggregate signs them: they are this input's contribution
//     to this job and no other); he/values additionally returns, per slot,
//     the position in this node's PSI list whose rows the slot holds, so the
//     coordinator learns each PSI position's group (and how many groups a
//     key has rows in), but no value or count, and the signed layout (groups
//     and chunks) that bounds what may be released.
//   - he/release returns a decryption share flooded with noise the node
//     sized itself, of one output of one job: an aggregate only as the sum
//     the node computes of every input's signed contribution; an
//     intersection_stats output only as its total (the node zero-sums its
//     share), at most 3 per group of the signed layout. The node records
//     (job, output) in its ledger first and never helps decrypt it twice
//     (he_release.go says what a malicious coordinator can still choose).
package node
