// Package filestorage reads and writes Durus FileStorage files
// (PROTOCOL.md §11): the Shelf format of Durus 3.8 and later and the DFS20
// format of Durus 3.0–3.8 and FileStorage2.
//
// Import: Open detects the format, checks the header (and decodes the DFS20
// index), and Reader.Records streams every record in file order with bounded
// memory. A consumer that stores each yielded record under its oid,
// overwriting earlier ones, ends with exactly the current records Durus's
// FileStorage.load returns. Damage stops the scan with a *DamageError naming
// the file and byte offset. A Reader never modifies its file and holds a
// shared flock while open, so a running Durus writer (which holds an
// exclusive one) makes Open fail unless forced.
//
// Export: WriteShelf and WriteDFS20 write a file from records given in
// ascending oid order, through a temporary file that is fsynced and renamed
// into place, so an interrupted export never leaves a file under the final
// name.
//
// A Reader's Records and Close belong to one goroutine; Stats may be called
// from any goroutine. The package has no global mutable state.
package filestorage
