// Package disclosure is Unseen's disclosure control, as pure functions:
// what a job may release, with how much noise, which cells must be
// suppressed, and whether an earlier job nearly asked the same question.
// It imports nothing of Unseen but policy (and policy/filter), so the
// coordinator, its workers and every node apply the same rules.
//
// # Who calls what
//
//   - Coordinator, at submission: CheckDP (refuse what cannot be protected),
//     NewPlan (Plan.DP.Charges is the ε to charge each DP dataset's
//     budget), NearDuplicate against the analyst's recent specs (an
//     Overlap with Difference 0, flagged for the reviewer).
//   - Worker, after decryption: NewPlan, then ReviewStats (aggregate,
//     intersection_stats), ReviewCardinality (psi_cardinality) or
//     ReviewMembers (psi_members). Each returns the result to release, the
//     suppressed paths and the Checks, each Check saying in Protects what
//     it protects against.
//   - Node, on its own rows after the job's filter: LimitsFor its dataset,
//     CapPerKey (at most max_rows_per_key rows per person, PersonKey naming
//     the person), ClampAll (values summed are clamped to dp.value_bound);
//     an iblt.Sketch of the keyed hashes (iblt.Hasher) of the filtered
//     input's IDs, compared with the sketches of earlier jobs
//     (iblt.SmallDifference, as History does in memory; compute/node keeps
//     them in its node.db) and recorded; by default it refuses a small
//     difference, and with differencing: flag the Overlaps it finds travel
//     with its response to the worker.
//
// Who learns what: the worker sees the exact decrypted totals (it adds the
// noise), the reviewer sees the noised, suppressed result with the checks
// and the suppressed paths, the analyst sees only the released result. A
// node's sketches hold keyed hashes of IDs and never leave it; only the
// size of a small difference does.
//
// # Guarantees, and their limits
//
// Minimum count. No released count, group, bucket or intersection
// describes fewer than k people, k being the largest min_count of the job's datasets. A person
// contributes at most M rows (max_rows_per_key, summed over the inputs of
// a horizontal aggregate), so a count is released only from (k−1)·M + 1
// rows up. Cells below that are suppressed, and then further cells, so that
// no suppressed cell is determined by the released ones through any margin
// of the linked tables (grand total = Σ groups = Σ overall buckets; group
// count = Σ its buckets; overall bucket = Σ groups' buckets), exactly or
// with what an analyst knows of the bounds (a suppressed count is ≥ 1,
// except a bucket of a suppressed group, ≥ 0). A group's Σx and Σx² are
// hidden with its count and so cannot be derived either. Absent groups are
// not reported; an analyst reads that as an exact 0, and it is treated as
// one. Limits: suppression stops exact recovery, not bounds (two hidden
// buckets adding up to 12 are each known to lie in 1..11); a histogram's
// bin edges bound the values of the people in a bucket.
//
// Differential privacy. When any dataset of a job declares dp, the job
// spends ε = the smallest declared ε (exactly, in micro-units), and every
// DP dataset's budget is charged that ε. It is split equally between the
// count (or histogram buckets), Σx and Σx²; within each, the noise is
// exact discrete Laplace (package noise) calibrated to one person's effect
// on all the cells together (Δ = M for counts, Σ m_i·V_i for Σx, Σ m_i·V_i²
// for Σx², V_i the value bound of input i), which covers disjoint groups
// (parallel composition) and a person whose rows fall in several; totals
// are sums of the noised groups, not charged again. The guarantee holds
// only if the nodes enforce the caps (CapPerKey, ClampAll) the plan
// assumes. Limits: it protects against the analyst, not the coordinator,
// which sees exact totals; group labels come from the data, so that a label
// exists is not protected (declaring a column's domain would fix this);
// noised counts are clamped at 0 and Σx² and the variance likewise
// (post-processing: no privacy cost, a small bias).
//
// Differencing. A node keeps, per dataset, a 14 KB sketch of each job's
// filtered input for DefaultWindow (90 days, at most DefaultPerDataset =
// 256 jobs) and reports any earlier job whose input differs from the new
// one's by 1 to k−1 people; such a result is withheld unless the job is DP
// (then it is released, noised, and flagged). Limits: only two jobs' inputs
// of one dataset are compared, so changes spread across several jobs, or
// in another input that only change the intersection, or older than the
// window, go unseen; NearDuplicate flags similar specs for the reviewer but
// cannot tell whether they differ by few people.
//
// # Declarations it reads
//
// policy.Dataset's min_count (k), max_rows_per_key and person_key (the
// per-person row cap, M), dp (epsilon, budget, total_budget, value_bound)
// and differencing (refuse or flag, at the node).
package disclosure
