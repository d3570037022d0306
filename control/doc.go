// Package control is the control socket of a running durusbdb server: the
// way the operator tools (stats, check, checkpoint, gc, export, backup of
// a LevelDB database) reach a database that a server holds.
//
// A server owns its database directory (Berkeley DB: the flock on
// durusbdb.lock and the environment; LevelDB: the only process allowed),
// so a tool cannot open the directory while the server runs. Instead
// `durusbdb serve` listens on a unix socket in the directory,
// DIR/durusbdb.control (see SocketAddr), and a tool whose open fails with
// kv.ErrInUse sends its command line there; the server runs the same
// command against its open database and streams the output back.
//
// # Access
//
// The socket file is created with mode 0600 and every connection is
// checked with SO_PEERCRED: only the server's own user (or root) is
// served; anyone else gets a refusal and the connection is closed. The
// socket file is removed when the server exits cleanly. A socket file left
// by a killed server is replaced by the next server: Listen unlinks it
// when nothing answers on it. If DIR/durusbdb.control would not fit in a
// unix socket address (108 bytes, sun_path), a Linux abstract socket named
// "@durusbdb-control-" plus a hash of the absolute directory is used
// instead; it has no file mode, and the uid check is then the only guard.
//
// # Protocol
//
// The client sends one JSON line, a Request. The server answers with
// frames, each a type byte, a 4-byte big-endian length and the payload:
//
//	'o' text for the tool's standard output
//	'e' text for the tool's standard error (progress, log lines)
//	'f' a JSON FileHeader: the bytes of a file the client writes follow
//	'd' a chunk of that file (any number)
//	'z' end of that file: the client syncs it and renames it into place
//	'x' a JSON Exit: the tool's exit code and error; the last frame
//
// Files (export's OUT, a LevelDB backup) are written by the client, as
// the client's user, at the path the client named: the server never
// writes outside its database directory for a client. The server stages a
// file in a private temporary directory inside the database directory
// (.durusbdb-control-tmp-*, removed afterwards and at the next start) before
// streaming it, so a live export needs that much free space there.
package control
