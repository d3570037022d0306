// Package server is durusbdb's Durus storage server: a drop-in replacement
// for `durus -s` (Durus 4.3) that speaks protocol version 1 byte for byte
// (PROTOCOL.md §3–§10) over a Storage, normally the engine (*engine.DB via
// Engine).
//
// Model: one goroutine per accepted connection, each with a buffered reader
// and writer. Replies are flushed only when the connection's input is
// drained (or before the goroutine blocks on something else), so pipelined
// requests are answered in batches. Loads, syncs, allocations and packs of
// different connections run concurrently; commits are ordered by the commit
// token (commit.Token, §5.4), which a connection holds from commit phase 1
// until its transaction is staged (Storage.Stage: every refusal decided,
// the commit queued) and announced (its oids invalidated for the other
// connections), or refused. The token passes on before the commit is
// applied: the writes and the flush happen in Pending.Wait, so one apply
// transaction and one log flush cover many connections' commits. The
// server half of the pipeline (the token, the rules of §5.5 the server
// decides, the allocation lock with the unused sets, ROOT_OID's rules and
// the invalidation of other connections) is one type, commitPath
// (pipeline.go; root.go for ROOT_OID), whose doc comment is its contract;
// the whole pipeline, the engine's invariants and the lock graph are
// described in engine/pipeline.go.
//
// Per-connection state is the invalid set (oids to report at the next S or
// commit phase 1) and the unused set (oids handed out by N/M and not yet
// committed). Both are kept as sorted runs of consecutive oids. The unused
// sets of all connections live in one ordered run list with an owner per
// run, so rule 7 of §5.5 (an oid in another connection's unused set) is a
// binary search.
//
// Limits (§9) are enforced before memory is committed: no length read from
// a connection allocates more than the bytes already received, B counts above
// the bulk limit close the connection, commits above the commit limit are
// read and discarded. Inside a request every read must make progress within
// the request timeout and every write within the write timeout; idle
// connections between requests are never closed unless an idle timeout is
// configured.
//
// Logging and metrics: Config.Logger gets one line per connection open and
// close and one per error, each naming the client address (remote=...).
// Config.Observer, if set, receives the same events and the per-request
// ones (requests, load replies, commit results and latencies, invalidations,
// bytes in and out, errors by ErrorKind) for metrics; package metrics
// implements it with Prometheus collectors. A nil Observer costs one field
// test per event.
//
// A panic while serving a connection ends that connection only, after
// releasing the commit token. Shutdown (Q, context cancellation, Close) stops
// accepting at once, lets commits whose data has fully arrived finish, closes
// every connection and returns within Config.ShutdownTimeout (plus about a
// second); the caller then closes the storage.
//
// Replication (forward.go): on a replica (a Storage that is a Forwarder
// saying so) N/M reserve oids on the master (site-to-site command A) and a
// commit, after phase 1 here, is announced like a staged commit (its oids
// held, so that loads of them here wait, and invalidated for the other
// clients; then the token passes on), forwarded to the master (F) and
// answered once this replica has applied the master's commit and
// invalidated it for its clients (read-your-writes); the master refuses
// (I) a commit of an oid changed after the replica's phase 1. The master
// answers F and A on its ordinary Durus port.
package server
