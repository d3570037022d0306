// Package txn holds the commit pipeline's shared pieces: Group, which makes
// many committed-but-not-yet-durable transactions durable with one log flush
// (group commit), and Token, the commit token that orders commits across
// connections with a lease (PROTOCOL.md §5.4).
package txn
