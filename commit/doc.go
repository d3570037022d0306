// Package commit holds the two ordering primitives of the commit pipeline
// (whose contract is in engine/pipeline.go):
//
//   - Token, the server's commit token (PROTOCOL.md §5.4): one connection
//     at a time decides and stages a commit; waiters are served FIFO and a
//     holder that stalls while others wait loses the token to the lease.
//   - Group, leader/follower batching: many goroutines wait, and one call
//     of a function covers every waiter present when it starts. The engine
//     uses two: one whose function is an apply run (one kv transaction for
//     every staged commit) and one whose function is the group flush (one
//     kv.Store.Flush for every commit waiting to be durable).
//
// Both hand work from one goroutine to the next, and on a busy 2-core
// machine the goroutine that hands over keeps the processor unless it
// yields: Hold.Handoff and NewHandoffGroup yield at once, so the next
// holder's phase-1 reply, or the next group's flush, does not wait behind
// the caller's own work.
//
// Neither holds a transaction (those are kv.Txn); the package was named
// txn before.
package commit
