package server

import "time"

// Observer receives the server's events, for metrics. Config.Observer nil
// means none: the server then only tests a field per event.
//
// Methods are called concurrently from every connection's goroutine (and
// from the goroutine that accepts connections), often on the load path, so
// they must be cheap, must not block and must not retain their arguments
// beyond the call. Embed NopObserver to implement only some of them.
type Observer interface {
	// ConnOpened: a connection was accepted and is being served.
	ConnOpened(remote string)
	// ConnClosed: a connection served earlier (ConnOpened) has ended;
	// reason is one of a small fixed set of phrases ("disconnected",
	// "client closed", "timeout", "server shutdown", ...).
	ConnClosed(remote, reason string)
	// Request: a request with command byte cmd ('L', 'B', 'C', 'S', 'N',
	// 'M', 'V', 'P', 'Q', '.') has started. Unknown bytes are reported too
	// (the connection is then closed).
	Request(cmd byte)
	// Load: one oid of an L or B request was answered with status
	// 'O' (record sent), 'K' (no record), 'I' (invalid) or 'E' (failed).
	Load(status byte)
	// Commit: a commit whose phase 2 length was not zero was decided.
	Commit(CommitResult)
	// Invalidated: a commit or a collection added oids to the invalid
	// sets of conns connections.
	Invalidated(oids uint64, conns int)
	// InvalidSent: oids were reported to a client as invalid (S or commit
	// phase 1) and removed from its invalid set.
	InvalidSent(oids uint64)
	// BytesRead and BytesWritten count bytes received from and sent to
	// clients (per socket call, not per request).
	BytesRead(n int)
	// BytesWritten: see BytesRead.
	BytesWritten(n int)
	// Error: something failed; kind classifies it. Each such event also
	// has a log line naming the client address, when there is a client.
	Error(kind ErrorKind)
}

// CommitResult describes one decided commit (Observer.Commit).
type CommitResult struct {
	// Status is the reply byte: 'O' stored and durable, 'I' conflict
	// (rules 9, 10), 'E' refused (rules 1–8, 11).
	Status byte
	// Rule is the rule of PROTOCOL.md §5.5 that refused the commit, 0 for O.
	Rule int
	// Records is the number of records (frames) parsed; 0 if the data was
	// refused before parsing (rules 1, 2, 3).
	Records int
	// Bytes is the phase 2 data length.
	Bytes int64
	// TokenWait is the time from receiving C to holding the commit token.
	TokenWait time.Duration
	// Apply is the time from the end of the commit data to the decision:
	// validation, the storage's apply and the invalidation of other
	// connections (rules 1 and 2: zero).
	Apply time.Duration
	// Durable is the time spent waiting for durability (group commit);
	// zero unless Status is 'O'.
	Durable time.Duration
	// Total is the time from receiving C to the reply, including the
	// client's sending of the data.
	Total time.Duration
}

// ErrorKind classifies errors reported to Observer.Error.
type ErrorKind uint8

// Error kinds. Their String values are the label values used by metrics.
const (
	// ErrIO: a read or write failed inside a request.
	ErrIO ErrorKind = iota
	// ErrTimeout: a read or write inside a request timed out.
	ErrTimeout
	// ErrDisconnect: the client went away inside a request.
	ErrDisconnect
	// ErrProtocol: an unknown command byte or an unsupported protocol
	// version; the connection was closed.
	ErrProtocol
	// ErrLimit: a B count over the bulk limit or an invalid set over its
	// cap (I7); the connection was closed.
	ErrLimit
	// ErrMaxConnections: a connection was refused because MaxConnections
	// were open.
	ErrMaxConnections
	// ErrAccept: accepting a connection failed.
	ErrAccept
	// ErrLoad: the storage failed to load a record (reply E).
	ErrLoad
	// ErrAlloc: handing out oids failed (the connection was closed).
	ErrAlloc
	// ErrStorageCommit: the storage failed to apply a commit (rule 11).
	ErrStorageCommit
	// ErrDurability: an applied commit could not be made durable (the
	// connection was closed without a reply).
	ErrDurability
	// ErrPanic: serving a connection panicked.
	ErrPanic
	// ErrPermFailed: a replicated commit a quorum of sites did not
	// acknowledge (the connection was closed without a reply).
	ErrPermFailed

	// NumErrorKinds is the number of error kinds; kinds are below it.
	NumErrorKinds
)

// String returns the kind's name, as used in metric labels.
func (k ErrorKind) String() string {
	switch k {
	case ErrIO:
		return "io"
	case ErrTimeout:
		return "timeout"
	case ErrDisconnect:
		return "disconnect"
	case ErrProtocol:
		return "protocol"
	case ErrLimit:
		return "limit"
	case ErrMaxConnections:
		return "max_connections"
	case ErrAccept:
		return "accept"
	case ErrLoad:
		return "load"
	case ErrAlloc:
		return "alloc"
	case ErrStorageCommit:
		return "storage_commit"
	case ErrDurability:
		return "durability"
	case ErrPanic:
		return "panic"
	case ErrPermFailed:
		return "perm_failed"
	}
	return "unknown"
}

// NopObserver implements Observer doing nothing; embed it to implement only
// some methods.
type NopObserver struct{}

// ConnOpened does nothing.
func (NopObserver) ConnOpened(string) {}

// ConnClosed does nothing.
func (NopObserver) ConnClosed(string, string) {}

// Request does nothing.
func (NopObserver) Request(byte) {}

// Load does nothing.
func (NopObserver) Load(byte) {}

// Commit does nothing.
func (NopObserver) Commit(CommitResult) {}

// Invalidated does nothing.
func (NopObserver) Invalidated(uint64, int) {}

// InvalidSent does nothing.
func (NopObserver) InvalidSent(uint64) {}

// BytesRead does nothing.
func (NopObserver) BytesRead(int) {}

// BytesWritten does nothing.
func (NopObserver) BytesWritten(int) {}

// Error does nothing.
func (NopObserver) Error(ErrorKind) {}
