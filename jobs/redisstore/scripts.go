package redisstore

import (
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/jobs"
)

// Return codes shared by the scripts (the first element of the reply, or
// the reply itself for scripts that return a number).
const (
	codeOK        = 1 // applied
	codeNotFound  = 2 // no such job
	codeConflict  = 3 // the job is not in the expected state at the expected attempt
	codeHeadMoved = 4 // the audit head is not what Go sealed against: re-read, re-seal, retry
	codeStale     = 5 // the queue entry a claim holds is no longer the job's
	codeIdemHit   = 6 // the idempotency key already names a job
	codeExists    = 7 // a job with this id already exists
	codeLeaseLost = 8 // the job is not running at the lease's attempt
)

// Every script that writes keeps one rule: all checks, and every read that
// would fail on a key of the wrong type, come before the first write, and
// the audit entry is the first write. Redis does not roll a script back, so
// this is what makes "the change and its audit entry, or neither" hold.
//
// auditLua is prepended to the scripts that append to the audit chain.
// The head hash (seq, hash) names the last entry; Go sealed the new entry
// against the head it read, so a moved head means the seal is stale. The
// head must also describe the stream's actual last entry: if it does not
// (damage, or tampering), the script raises AUDITBROKEN rather than extend
// a chain that no longer verifies. Stream ids are "<seq>-0", so XADD itself
// refuses an id that does not go up.
var auditLua = `
local GENESIS = '` + audit.GenesisHash + `'
local function audit_head_is(stream, head, seq, hash)
  local h = redis.call('HMGET', head, 'seq', 'hash')
  local hseq, hhash = h[1] or '0', h[2] or GENESIS
  local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  local ok
  if #last == 0 then
    ok = hseq == '0'
  else
    ok = last[1][1] == hseq .. '-0' and cjson.decode(last[1][2][2]).hash == hhash
  end
  if not ok then
    error({err = 'AUDITBROKEN audit head ' .. hseq .. ' does not match the last entry of ' .. stream})
  end
  return hseq == seq and hhash == hash
end
local function audit_append(stream, head, seq, hash, entry)
  redis.call('XADD', stream, seq .. '-0', 'e', entry)
  redis.call('HSET', head, 'seq', seq, 'hash', hash)
end
`

// appendScript appends one sealed entry (audit entries that are not a
// transition: logins, reads of results, key ceremonies...).
//
//	KEYS[1] audit stream   KEYS[2] audit head
//	ARGV[1] prev seq  ARGV[2] prev hash  ARGV[3] new seq  ARGV[4] new hash
//	ARGV[5] entry (JSON, as audit.Entry.Encode)
//
// Returns 1 appended; 4 the head moved.
var appendScript = redis.NewScript(auditLua + `
if not audit_head_is(KEYS[1], KEYS[2], ARGV[1], ARGV[2]) then return 4 end
audit_append(KEYS[1], KEYS[2], ARGV[3], ARGV[4], ARGV[5])
return 1
`)

// createScript stores a new job with its audit entry, its first history
// event, its index entries, its idempotency key and (if queued) its queue
// entry.
//
//	KEYS[1] job hash       KEYS[2] history list   KEYS[3] idempotency key
//	KEYS[4] index zset     KEYS[5] owner index    KEYS[6] queue stream
//	KEYS[7] seq counter    KEYS[8] audit stream   KEYS[9] audit head
//	ARGV[1] job id   ARGV[2] "1" to use the idempotency key   ARGV[3] state
//	ARGV[4] first history event (JSON)
//	ARGV[5..9] audit: prev seq, prev hash, new seq, new hash, entry (JSON)
//	ARGV[10..] job hash field/value pairs
//
// Returns {1, queue entry id or ""} created; {6, job id} the idempotency
// key already names that job; {7} the id is taken; {4} the audit head
// moved. Nothing is written unless the first element is 1.
var createScript = redis.NewScript(auditLua + `
if ARGV[2] == '1' then
  local prev = redis.call('GET', KEYS[3])
  if prev then return {6, prev} end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {7} end
redis.call('LLEN', KEYS[2]); redis.call('ZCARD', KEYS[4]); redis.call('ZCARD', KEYS[5])
redis.call('XLEN', KEYS[6]); redis.call('GET', KEYS[7])
if not audit_head_is(KEYS[8], KEYS[9], ARGV[5], ARGV[6]) then return {4} end
audit_append(KEYS[8], KEYS[9], ARGV[7], ARGV[8], ARGV[9])
local seq = redis.call('INCR', KEYS[7])
redis.call('HSET', KEYS[1], 'seq', seq, unpack(ARGV, 10))
redis.call('RPUSH', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[4], seq, ARGV[1])
redis.call('ZADD', KEYS[5], seq, ARGV[1])
if ARGV[2] == '1' then redis.call('SET', KEYS[3], ARGV[1]) end
local msg = ''
if ARGV[3] == 'queued' then
  msg = redis.call('XADD', KEYS[6], '*', 'job', ARGV[1])
  redis.call('HSET', KEYS[1], 'msg', msg)
end
return {1, msg}
`)

// transitionScript is the compare-and-set every state change goes through:
// Transition, Claim (queued → running), Reclaim (running → running, or
// queued → running when a claimer died before starting the job) and
// PromoteDue (retryable → queued).
//
//	KEYS[1] job hash   KEYS[2] history list   KEYS[3] queue stream
//	KEYS[4] audit stream   KEYS[5] audit head   KEYS[6] retry schedule zset
//	KEYS[7] the job's checkpoints hash
//	ARGV[1] from state   ARGV[2] from attempt   ARGV[3] to state
//	ARGV[4] attempt after   ARGV[5] updated_at (RFC 3339)
//	ARGV[6] history event (JSON)
//	ARGV[7] consumer group   ARGV[8] consumer taking the lease (to running)
//	ARGV[9] queue entry the caller was handed: "" for a plain transition;
//	        Claim and Reclaim pass theirs, which must still be the job's
//	ARGV[10] "1" if a new attempt starts (its progress starts empty)
//	ARGV[11] to retryable: when it is due (unix ms), its score in KEYS[6]
//	ARGV[12..16] audit: prev seq, prev hash, new seq, new hash, entry (JSON)
//	ARGV[17..] job hash field/value pairs to set
//
// Queue bookkeeping: leaving queued or running acknowledges and deletes the
// job's entry; entering running resets the entry's idle time (the lease
// clock); entering queued adds a new entry. Retry bookkeeping: entering
// retryable adds the job to the schedule, leaving it removes it (with the
// job's due time and what it waited for); a transient failure (to
// retryable, or running → dead_letter) adds one to the job's failures, and
// leaving dead_letter (an admin retry) sets them back to 0. Entering a
// state from which the job never runs again (jobs.State.Resumable false:
// awaiting_review, final states) deletes its checkpoints.
//
// Returns {1, job hash as a flat field/value list} applied; {2} no such
// job; {3, state, attempt} the compare-and-set failed; {5} the caller's
// queue entry is stale; {4} the audit head moved. Nothing is written unless
// the first element is 1.
var transitionScript = redis.NewScript(auditLua + resumableLua + `
local cur = redis.call('HMGET', KEYS[1], 'state', 'attempt', 'msg', 'id')
if not cur[1] then return {2} end
if cur[1] ~= ARGV[1] or cur[2] ~= ARGV[2] then return {3, cur[1], cur[2]} end
local msg = cur[3] or ''
if ARGV[9] ~= '' and ARGV[9] ~= msg then return {5} end
redis.call('LLEN', KEYS[2]); redis.call('XLEN', KEYS[3]); redis.call('ZCARD', KEYS[6])
if not audit_head_is(KEYS[4], KEYS[5], ARGV[12], ARGV[13]) then return {4} end
audit_append(KEYS[4], KEYS[5], ARGV[14], ARGV[15], ARGV[16])
local from, to = ARGV[1], ARGV[3]
if msg ~= '' and (from == 'queued' or from == 'running') and to ~= 'running' then
  redis.call('XACK', KEYS[3], ARGV[7], msg)
  redis.call('XDEL', KEYS[3], msg)
  redis.call('HDEL', KEYS[1], 'msg')
  msg = ''
end
if to == 'running' and msg ~= '' then
  -- pcall: a missing group only means there is no lease clock to reset
  redis.pcall('XCLAIM', KEYS[3], ARGV[7], ARGV[8], 0, msg, 'JUSTID')
end
if to == 'queued' then
  msg = redis.call('XADD', KEYS[3], '*', 'job', cur[4])
  redis.call('HSET', KEYS[1], 'msg', msg)
end
if from == 'retryable' then
  redis.call('ZREM', KEYS[6], cur[4])
  redis.call('HDEL', KEYS[1], 'scheduled_at', 'waiting')
end
if to == 'retryable' then
  redis.call('ZADD', KEYS[6], ARGV[11], cur[4])
end
if to == 'retryable' or (from == 'running' and to == 'dead_letter') then
  redis.call('HINCRBY', KEYS[1], 'failures', 1)
elseif from == 'dead_letter' then
  redis.call('HSET', KEYS[1], 'failures', 0)
end
redis.call('HSET', KEYS[1], 'state', to, 'attempt', ARGV[4], 'updated_at', ARGV[5])
if ARGV[10] == '1' then redis.call('HDEL', KEYS[1], 'progress') end
if not RESUMABLE[to] then redis.call('DEL', KEYS[7]) end
if #ARGV >= 17 then redis.call('HSET', KEYS[1], unpack(ARGV, 17)) end
redis.call('RPUSH', KEYS[2], ARGV[6])
return {1, redis.call('HGETALL', KEYS[1])}
`)

// dueScript lists the retryable jobs that are due.
//
//	KEYS[1] retry schedule zset (score: due time, unix ms; member: job id)
//	ARGV[1] now (unix ms, by Options.Clock)   ARGV[2] at most this many
//
// Returns the ids, earliest due first. It only reads: each job is then moved
// by transitionScript, whose compare-and-set makes coordinators promoting
// at once move each job once.
var dueScript = redis.NewScript(`
return redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[2])
`)

// unscheduleScript drops a schedule entry whose job is not retryable (gone,
// or moved on by a transition that raced the listing): such an entry must
// not be listed as due forever.
//
//	KEYS[1] job hash   KEYS[2] retry schedule zset
//	ARGV[1] job id
//
// Returns 1 dropped; 0 kept (the job is retryable).
var unscheduleScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'state') == 'retryable' then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`)

// progressScript records progress, fenced by attempt.
//
//	KEYS[1] job hash
//	ARGV[1] the lease's attempt   ARGV[2] progress (JSON)   ARGV[3] updated_at
//
// Returns 1 recorded; 2 no such job; 8 the job is not running at that
// attempt (the lease is lost).
var progressScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'state', 'attempt')
if not cur[1] then return 2 end
if cur[1] ~= 'running' or cur[2] ~= ARGV[1] then return 8 end
redis.call('HSET', KEYS[1], 'progress', ARGV[2], 'updated_at', ARGV[3])
return 1
`)

// heartbeatScript renews a lease: XCLAIM of the job's entry to the lease's
// own consumer resets its idle time, which is what Reclaim measures.
//
//	KEYS[1] job hash   KEYS[2] queue stream
//	ARGV[1] the lease's attempt   ARGV[2] the lease's queue entry
//	ARGV[3] consumer group   ARGV[4] consumer
//
// Returns 1 renewed; 2 no such job; 8 the lease is lost.
var heartbeatScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'state', 'attempt', 'msg')
if not cur[1] then return 2 end
if cur[1] ~= 'running' or cur[2] ~= ARGV[1] or cur[3] ~= ARGV[2] then return 8 end
redis.call('XCLAIM', KEYS[2], ARGV[3], ARGV[4], 0, ARGV[2], 'JUSTID')
return 1
`)

// settleScript deals with a queue entry a claim could not start its job
// from. An entry that is still the job's current one, for a job that is
// queued (runnable: the caller re-reads and retries) or running (the entry
// is its lease clock: a plain Transition to running left it undelivered),
// is kept; any other is acknowledged and deleted so it is never handed out
// again.
//
//	KEYS[1] job hash   KEYS[2] queue stream
//	ARGV[1] entry id   ARGV[2] consumer group
//
// Returns 1 dropped; 0 kept.
var settleScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'state', 'msg')
if cur[2] == ARGV[1] and (cur[1] == 'queued' or cur[1] == 'running') then return 0 end
redis.call('XACK', KEYS[2], ARGV[2], ARGV[1])
redis.call('XDEL', KEYS[2], ARGV[1])
return 1
`)

// spendScript adds to a counter within a limit (privacy budgets, rate
// limits).
//
//	KEYS[1]  the counter
//	ARGV[1]  amount (integer; negative refunds)
//	ARGV[2]  limit
//	ARGV[3]  ttl in ms for a new counter (0: none)
//	returns  {1, total} if added, {0, total} if the limit would be passed
var spendScript = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
if cur + amount > tonumber(ARGV[2]) then
  return {0, cur}
end
local isnew = redis.call('EXISTS', KEYS[1]) == 0
local total = redis.call('INCRBY', KEYS[1], amount)
if isnew and tonumber(ARGV[3]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return {1, total}
`)

// resumableLua defines RESUMABLE, the set of states whose jobs keep their
// checkpoints (jobs.State.Resumable), from the Go definition.
var resumableLua = func() string {
	var b strings.Builder
	b.WriteString("\nlocal RESUMABLE = {")
	for _, st := range jobs.States {
		if st.Resumable() {
			b.WriteString("['" + string(st) + "'] = true, ")
		}
	}
	b.WriteString("}\n")
	return b.String()
}()

// saveChunkScript stores one checkpoint of a running job, fenced by
// attempt (jobs.Checkpoints.SaveChunk).
//
//	KEYS[1] job hash   KEYS[2] the job's checkpoints hash
//	ARGV[1] the lease's attempt   ARGV[2] checkpoint key   ARGV[3] data
//
// Returns 1 saved; 2 no such job; 8 the job is not running at that attempt
// (nothing is written).
var saveChunkScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'state', 'attempt')
if not cur[1] then return 2 end
if cur[1] ~= 'running' or cur[2] ~= ARGV[1] then return 8 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
`)

// allScripts are loaded at New, so a script Redis rejects fails there and
// not in the middle of a transition.
var allScripts = []*redis.Script{appendScript, createScript, transitionScript, dueScript, unscheduleScript, progressScript, heartbeatScript, settleScript, spendScript, putBlobScript, saveChunkScript}
