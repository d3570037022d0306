// Package engine implements Durus storage semantics over a kv.Store in the
// durusbdb on-disk layout (FORMAT.md, layout "durusbdb/1"): the object
// records, their reference counts, the garbage queue and the meta
// counters, on Berkeley DB (one file per bucket: meta.db, objects.db,
// refcounts.db, garbage.db) or LevelDB (key prefixes m, o, r, g).
//
// # Model
//
// A DB is opened with Open on an existing directory (created when empty
// and Options.Create). It is safe for use by many goroutines; close it
// with Close, which stops the background collector and checkpointer,
// clears meta in_use and runs a checkpoint.
//
//   - Load returns a record byte for byte as committed.
//   - AllocOIDs hands out contiguous oid runs from an in-memory cursor;
//     meta next_oid is raised durably by blocks of OIDBlock before an oid
//     of a new block is handed out, so oids are never reused, across
//     crashes too. Commits are checked against the cursor, not next_oid.
//   - Stage validates a commit (R1–R3, duplicates, unallocated oids,
//     dangling references, read-only, the free-space reserve) and queues
//     it; nothing is written and nothing is visible yet, but Load of one
//     of its oids waits until it is applied. Pending.Wait applies every
//     queued commit in one transaction (records, reference-count deltas
//     summed over each commit, garbage queue changes) and returns once
//     the commit is durable: in the default sync mode the transaction is
//     committed without sync and one group flush (commit.Group) covers
//     every commit waiting. pipeline.go holds the contract of this
//     commit pipeline, its invariants and the engine's lock graph.
//
// # Locks and goroutines
//
// One mutex, writeMu, serialises every write transaction of the engine:
// commits, collector batches, full-collection sweep batches, imports,
// repairs and oid reservations. Neither backend therefore ever sees two
// writers (LevelDB has no writer isolation; Berkeley DB cannot deadlock
// between our writers), at the price of collector batches waiting for
// commits and the reverse; a collector batch (Options.GC.Batch) is
// deleted in transactions of 32 candidates, each its own writeMu hold,
// pausing between them while commits come, so the wait is short. Reads
// (Load, Scan, marking) use read transactions and run concurrently; a Load
// of an oid a staged commit stores waits for that commit's apply run. Lock
// order: allocMu, gcMu (collector batches) before writeMu; the full graph
// is in pipeline.go.
//
// # Garbage
//
// Reference counts follow FORMAT.md §4 exactly. An object whose count is
// zero (and that is not oid 0) is queued in garbage.db with the time it
// became a candidate; the collector (Options.GC: continuous and rate
// limited, idle-only, or manual; CollectGarbage) deletes candidates older
// than the grace period in small kv.NoSync transactions, decrementing what
// they referenced. A child whose count drops to zero this way inherits its
// parent's candidate time, so a dead chain goes in one pass. Losing
// collector work in a crash is harmless: queue and counts roll back
// together. Removed oids are reported through Options.OnRemove.
//
// Reference counting cannot reclaim cycles: FullCollect (Pack in the
// background) marks from oid 0 while commits go on, with a write barrier
// that marks whatever a commit stores or references, then sweeps unmarked
// objects in small transactions and finally recomputes every count: a
// snapshot scan while commits go on, then repairs by difference (the
// drift between in-degree and stored count at the snapshot, added to the
// current count) in small transactions under writeMu (recount.go). While
// commits come, the mark and that scan pause between batches as long as a
// batch took, as the collector does (gcYield): on a small machine they
// would otherwise take the CPU the commits need. Once the sweep has
// begun, a commit that references or stores an object the mark did not
// reach (a new object aside) is refused with ErrDangling (part of what
// that object references may already be gone, and traversing its record
// would keep it with dangling references); the client sees a conflict,
// as for any collected oid.
// Dangling references found while marking (possible in imported data) are
// leaves and are logged with their referrer.
//
// # Import, scan, check
//
// Import streams records (a later record of an oid wins) into large
// transactions with the collector held off, then computes counts and the
// queue from the stored records; a failed or cancelled import removes
// what it wrote, and a crash leaves meta "import" set, which Open reports
// as ErrImportIncomplete. Scan yields every record in ascending oid order.
// Check verifies every FORMAT.md invariant and can repair counters and the
// queue; it never deletes an object (CheckWith reports progress). Import
// and Check count in-degrees with one type, degrees (a slice by oid).
//
// # Replication
//
// With Options.Replication the DB is a site of a Berkeley DB replication
// group (repl.go, repl_changes.go, docs/REPLICATION.md): the master works
// as above, with apply runs committed so that libdb waits for a quorum
// (ErrPermFailed otherwise); a replica refuses writes (ErrNotMaster) and
// follows the replicated change table to invalidate its record cache and
// report replicated oids (Options.OnReplicated). Role reports the role,
// OnRoleChange follows it; a promoted replica loads its state from the
// replicated meta and starts writing. An apply run on a master records its
// libdb commit token and change sequence in each Pending (Pending.Token);
// a replica waits for them with WaitReplicated (repl_forward.go), for a
// commit it forwarded to the master, whose oids it holds meanwhile
// (HoldForwarded, repl_hold.go: loads of them wait).
package engine
