package filestorage

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrUnsupported: the file is not a Shelf or DFS20 file (DFS10, SQLite,
	// or unknown magic). The error is a *FormatError showing the first bytes.
	ErrUnsupported = errors.New("unsupported file format")
	// ErrDamaged: a failed check of PROTOCOL.md §11.2/§11.3, a malformed
	// record, or a transaction running past the end of the file. The error
	// is a *DamageError naming the file and byte offset.
	ErrDamaged = errors.New("damaged Durus file")
	// ErrLocked: the source is locked by a running Durus writer (Open), or
	// an export target is locked (WriteShelf/WriteDFS20 with Force).
	ErrLocked = errors.New("file is locked by a running Durus writer")
	// ErrExists: the export target exists and WriteOptions.Force is false.
	ErrExists = errors.New("target file exists")
	// ErrOrder: the export scan yielded oids not in strictly ascending order.
	ErrOrder = errors.New("records not in ascending oid order")
	// ErrTooLarge: a record longer than the format or durusbdb can hold
	// (an imported record above 2³²−1 bytes, a DFS20 record above 2³²−1
	// bytes, or an offset map above WriteOptions.MaxMapBytes).
	ErrTooLarge = errors.New("too large")
	// ErrClosed: the Reader was closed.
	ErrClosed = errors.New("filestorage: reader closed")
)

// FormatError reports a file whose magic is not Shelf or DFS20.
type FormatError struct {
	Path   string
	Format string // "DFS10", "SQLite" or "unknown"
	Head   []byte // the first (up to 16) bytes of the file
}

// Error implements error, showing the first bytes of the file.
func (e *FormatError) Error() string {
	switch e.Format {
	case "DFS10":
		return fmt.Sprintf("filestorage: %s: DFS10 format (Durus 3.5 and earlier) is not supported; convert it with Durus 3.6 to 3.8 first", e.Path)
	case "SQLite":
		return fmt.Sprintf("filestorage: %s: SQLite storage (Durus SqliteStorage) is not supported", e.Path)
	}
	return fmt.Sprintf("filestorage: %s: not a Durus Shelf or DFS20 file; first bytes % X (%s)", e.Path, e.Head, strconv.Quote(string(e.Head)))
}

// Unwrap makes errors.Is(err, ErrUnsupported) true.
func (e *FormatError) Unwrap() error { return ErrUnsupported }

// DamageError reports damage in a Durus file (PROTOCOL.md §11.2 step 6,
// §11.3 step 3).
type DamageError struct {
	Path string
	// Offset is the file offset of the damaged transaction (or map word,
	// header field or base record) where reading stopped.
	Offset int64
	// OID names the record concerned when HasOID.
	OID    uint64
	HasOID bool
	Reason string
	// Incomplete is true when the damage is a final transaction cut short
	// by the end of the file (or an interrupted Shelf commit); such damage
	// is skipped with ReadOptions.IgnoreIncompleteTail.
	Incomplete bool
	// Interrupted is true when the damaged Shelf transaction follows an
	// empty one: an interrupted commit is the likely cause.
	Interrupted bool
	// Err is the underlying cause (for example a *record.Error), or nil.
	Err error
}

// Error implements error, naming the file, offset and oid.
func (e *DamageError) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "filestorage: %s: damaged at offset %d", e.Path, e.Offset)
	if e.HasOID {
		fmt.Fprintf(&sb, " (oid %d)", e.OID)
	}
	sb.WriteString(": ")
	sb.WriteString(e.Reason)
	if e.Err != nil {
		sb.WriteString(": ")
		sb.WriteString(e.Err.Error())
	}
	if e.Interrupted {
		sb.WriteString("; it follows an empty transaction, so an interrupted commit is the likely cause")
	}
	if e.Incomplete {
		sb.WriteString("; the final transaction is incomplete (import can skip it when told to ignore an incomplete tail)")
	}
	return sb.String()
}

// Unwrap makes errors.Is(err, ErrDamaged) true, and reaches the cause.
func (e *DamageError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrDamaged, e.Err}
	}
	return []error{ErrDamaged}
}
