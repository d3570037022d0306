package pickle

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Default scan limits (Limits fields left zero). They bound one scan to
// about 200 MB of memory and a fraction of a second of CPU whatever the
// record, while admitting every record a Durus client plausibly writes.
const (
	// DefaultMaxStack is the most values on the machine's stack at once.
	DefaultMaxStack = 1 << 18
	// DefaultMaxMemo is the most memo entries.
	DefaultMaxMemo = 1 << 18
	// DefaultMaxItems is the most values a scan builds: one per opcode
	// plus the items copied into tuples and lists.
	DefaultMaxItems = 1 << 20
	// DefaultMaxOps is the most opcodes a scan runs (class and state).
	DefaultMaxOps = 64 << 20
	// DefaultMaxRatio bounds decompressed/compressed size of a state
	// whose decompressed size is above RatioFloor.
	DefaultMaxRatio = 256
	// RatioFloor is the decompressed size up to which the ratio is not
	// checked (small states may compress very well).
	RatioFloor = 1 << 20
)

// ErrLimit marks a record the scanner refused because running it would
// exceed one of its Limits; test with errors.Is. A *LimitError also matches
// ErrMalformed (PROTOCOL.md §2.3 calls a record over the scan limit
// malformed).
var ErrLimit = errors.New("pickle: scan limit exceeded")

// Limits bounds the memory and work of one reference scan. A zero field
// means its default; DecodeIndex is not limited by them.
type Limits struct {
	// Decompressed bounds the decompressed state in bytes (DefaultLimit).
	Decompressed int
	// Ratio bounds decompressed/compressed size above RatioFloor bytes of
	// output (DefaultMaxRatio).
	Ratio int
	// Stack bounds the values on the stack at once (DefaultMaxStack).
	Stack int
	// Memo bounds the memo entries (DefaultMaxMemo).
	Memo int
	// Items bounds the values built (DefaultMaxItems).
	Items int
	// Ops bounds the opcodes run (DefaultMaxOps).
	Ops int
}

// withDefaults fills the zero fields.
func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.Decompressed, DefaultLimit)
	def(&l.Ratio, DefaultMaxRatio)
	def(&l.Stack, DefaultMaxStack)
	def(&l.Memo, DefaultMaxMemo)
	def(&l.Items, DefaultMaxItems)
	def(&l.Ops, DefaultMaxOps)
	return l
}

// ParseLimits parses "name=value,..." with names decompressed, ratio,
// stack, memo, items and ops (the --verify-limits syntax); "" gives the
// zero Limits (defaults).
func ParseLimits(s string) (Limits, error) {
	var l Limits
	if strings.TrimSpace(s) == "" {
		return l, nil
	}
	for _, kv := range strings.Split(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return l, fmt.Errorf("pickle: limit %q: want name=value", kv)
		}
		n, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil || n <= 0 {
			return l, fmt.Errorf("pickle: limit %q: want a positive integer", kv)
		}
		switch strings.TrimSpace(name) {
		case "decompressed":
			l.Decompressed = n
		case "ratio":
			l.Ratio = n
		case "stack":
			l.Stack = n
		case "memo":
			l.Memo = n
		case "items":
			l.Items = n
		case "ops":
			l.Ops = n
		default:
			return l, fmt.Errorf("pickle: unknown limit %q (decompressed, ratio, stack, memo, items, ops)", name)
		}
	}
	return l, nil
}

// LimitError is a record refused because its scan would exceed a limit.
type LimitError struct {
	// OID is the record's oid (HasOID false if not known).
	OID    uint64
	HasOID bool
	// Stream is "class" or "state"; Offset the opcode's offset in it (0 for
	// the decompression limits).
	Stream string
	Offset int64
	// Limit names the limit: decompressed, ratio, stack, memo, items, ops.
	Limit string
	// Max is the limit's value.
	Max int64
}

// limitUnit is what the named limit counts.
func limitUnit(name string) string {
	switch name {
	case "decompressed":
		return "bytes"
	case "ratio":
		return "times the compressed size"
	case "memo":
		return "entries"
	case "ops":
		return "opcodes"
	}
	return "values"
}

// Error implements error, naming the limit.
func (e *LimitError) Error() string {
	var sb strings.Builder
	sb.WriteString("pickle: ")
	if e.HasOID {
		sb.WriteString("oid ")
		sb.WriteString(strconv.FormatUint(e.OID, 10))
		sb.WriteString(": ")
	}
	fmt.Fprintf(&sb, "%s at offset %d exceeds the scan's %s limit (%d %s)", e.Stream, e.Offset, e.Limit, e.Max, limitUnit(e.Limit))
	return sb.String()
}

// Unwrap makes errors.Is(err, ErrLimit) and errors.Is(err, ErrMalformed)
// true.
func (e *LimitError) Unwrap() []error { return []error{ErrLimit, ErrMalformed} }

// ScanRefs is the package's ScanRefs under l.
func (l Limits) ScanRefs(rec []byte) ([]uint64, error) {
	return scanRefs(rec, l.withDefaults())
}

// CheckRefs is the package's CheckRefs under l.
func (l Limits) CheckRefs(rec []byte) error {
	return checkRefs(rec, l.withDefaults())
}
