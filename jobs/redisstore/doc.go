// Package redisstore is the Redis job store and queue: every coordinator and
// worker process shares one Redis, and all Redis I/O for jobs is here.
//
// # Key layout
//
// With prefix P (Options.Prefix, default "unseen"); {…} is a hash tag, so
// one job's keys share a slot:
//
//	P:{<id>}:job              hash: the job's fields; JSON for spec, decision,
//	                          progress, review, result; "msg" is the job's
//	                          current queue entry id, "seq" its creation order
//	P:{<id>}:history          list: history events (JSON), oldest first
//	P:{<id>}:chunks           hash: checkpoint key → data (jobs.Checkpoints:
//	                          a PSI chunk's tokens, 16 bytes per element), kept
//	                          while the job can still run, deleted by the
//	                          transition that ends that
//	P:jobs                    zset: every job id, scored by creation order
//	P:owner:{<owner>}:jobs    zset: one owner's job ids, same scores
//	P:idem:{<owner>}:<key>    string: the job id an idempotency key names
//	P:seq                     counter behind the creation order
//	P:queue                   stream (Options.Stream): one entry {job: id} per
//	                          enqueue, consumer group Options.Group
//	P:audit                   stream: the audit chain, entry ids "<seq>-0",
//	                          field "e" = audit.Entry.Encode()
//	P:audit:head              hash {seq, hash}: the chain's last entry
//	P:retry                   zset: the retryable jobs' ids, scored by when
//	                          they are due (unix ms, by Options.Clock)
//	P:spend:<key>             string: a counter (jobs.Counters)
//	P:blob:<key>              hash {v, ver}: a shared value and its version
//	                          (jobs.Blobs: the key ceremony's state)
//
// Owners and idempotency keys are query-escaped inside keys.
//
// # Queue and leases
//
// Claim reads the stream with XREADGROUP and then moves the job queued →
// running in the transition script, which insists that the delivered entry
// is still the job's current one. The entry then sits in the group's
// pending list for as long as the job runs; its idle time is the lease age.
// Heartbeat XCLAIMs the entry to its own consumer (resetting idle time);
// Reclaim XAUTOCLAIMs entries idle for at least minIdle and moves their jobs
// running → running with the attempt bumped (or queued → running if the
// claimer died between XREADGROUP and the move). Entries whose job can no
// longer run from them are acknowledged and deleted; leaving running or
// queued acknowledges and deletes the job's entry, so a cancelled queued job
// is never handed out. Lease ages are Redis server time, not Options.Clock.
//
// A plain Transition queued → running (not Claim) leaves the job's entry
// undelivered; when a Claim is later handed it, it is kept pending as that
// job's lease clock, so such a job becomes reclaimable only from then on.
// Workers should start jobs with Claim.
//
// # Retries
//
// A transient failure moves a job running → retryable: its queue entry is
// acknowledged and deleted (no lease, no worker), and the job goes into
// P:retry scored by its due time. PromoteDue lists the due ids
// (dueScript) and moves each retryable → queued with the transition
// script, which takes it out of P:retry and adds a fresh queue entry; the
// compare-and-set lets every coordinator run the scheduler at once.
//
// # Atomicity and audit
//
// Every state change is one Lua script (scripts.go documents each one's
// KEYS, ARGV and return codes) that compares the job's state and attempt,
// applies the change, appends the history event, does the queue
// bookkeeping and appends the audit entry, or does nothing. Go reads the
// audit head, seals the entry (audit.Entry.Seal) and passes it with the head
// it sealed against; if another append moved the head, the script refuses
// and Go re-seals and retries. AuditLog (the store's Audit()) appends other
// entries through the same head compare-and-set.
//
// # Cluster
//
// The audit chain is one global stream and head, and every transition
// script touches them together with the job's keys, the queue and (on
// Create) the indexes and idempotency key (and the retry schedule). That is fine on a standalone
// Redis or under Sentinel. On Redis Cluster those keys sit in different
// slots and the scripts would fail with CROSSSLOT; to run there, give a
// Prefix that is itself a hash tag (e.g. "{unseen}") so every key of the
// store hashes to one slot — correct, but it puts the whole store on one
// shard. Spreading jobs over shards would need one audit chain (and queue)
// per slot group, with Verify run per chain and the chains' heads
// cross-signed periodically.
package redisstore
