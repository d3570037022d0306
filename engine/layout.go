package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/internal/dbdir"
	"github.com/durusbdb/durusbdb/kv"
)

// Layout is the value of meta "layout" this engine writes and reads
// (FORMAT.md §3).
const Layout = "durusbdb/1"

// Version is the engine version written to meta "writer".
const Version = "0.1.0"

// Bucket names (FORMAT.md §1, §5).
const (
	BucketMeta      = "meta"
	BucketObjects   = "objects"
	BucketRefcounts = "refcounts"
	BucketGarbage   = "garbage"
)

// Meta keys (FORMAT.md §3).
const (
	MetaLayout  = "layout"
	MetaAccess  = "access"
	MetaSize    = "size"
	MetaNextOID = "next_oid"
	MetaCreated = "created"
	MetaWriter  = "writer"
	MetaGC      = "gc"
	MetaInUse   = "in_use"
	MetaBackend = "backend" // LevelDB only: "leveldb"
	MetaImport  = "import"  // set while an Import runs; see Import
	MetaFull    = "full"    // set from a full collection's sweep until its end; see markFullSweep
)

// Buckets returns the kv bucket specs of the layout. hash and pageSize
// apply to objects.db at creation.
func Buckets(hash bool, pageSize int) []kv.BucketSpec {
	if pageSize == 0 {
		pageSize = DefaultPageSize
	}
	return []kv.BucketSpec{
		{Name: BucketMeta, File: "meta.db", Prefix: 'm'},
		{Name: BucketObjects, File: "objects.db", Prefix: 'o', Hash: hash, PageSize: pageSize},
		{Name: BucketRefcounts, File: "refcounts.db", Prefix: 'r'},
		{Name: BucketGarbage, File: "garbage.db", Prefix: 'g'},
	}
}

// int8 / int4 encodings (FORMAT.md §3: unsigned big-endian).

func int8Bytes(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
func int4Bytes(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func decodeInt8(name string, b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("engine: %s value of %d bytes, want 8: %w", name, len(b), kv.ErrCorrupt)
	}
	return binary.BigEndian.Uint64(b), nil
}

func decodeCount(oid uint64, b []byte) (uint32, error) {
	if len(b) != 4 {
		return 0, fmt.Errorf("engine: refcount of oid %d is %d bytes, want 4: %w", oid, len(b), kv.ErrCorrupt)
	}
	return binary.BigEndian.Uint32(b), nil
}

// gcProgress is meta "gc": int8 collections done ‖ int8 objects freed.
// Collections counts collector transactions that removed objects plus
// completed full collections. Longer values (fields added later) are
// accepted; their tail is kept as is.
type gcProgress struct {
	Collections uint64
	Freed       uint64
	tail        []byte
}

func decodeGC(b []byte) gcProgress {
	var p gcProgress
	if len(b) >= 8 {
		p.Collections = binary.BigEndian.Uint64(b)
	}
	if len(b) >= 16 {
		p.Freed = binary.BigEndian.Uint64(b[8:])
		p.tail = b[16:]
	}
	return p
}

func (p gcProgress) encode() []byte {
	b := binary.BigEndian.AppendUint64(nil, p.Collections)
	b = binary.BigEndian.AppendUint64(b, p.Freed)
	return append(b, p.tail...)
}

// dirKind inspects dir (FORMAT.md §5 Detection, via backend.Detect):
// "bdb" if meta.db is present, "leveldb" if CURRENT is present, "" if the
// directory is empty (files backend.Detect may ignore, such as our lock
// file, do not count), else an ErrLayout error listing the files found.
func dirKind(dir string) (string, []string, error) {
	kind, err := backend.Detect(dir)
	var names []string
	if ents, rerr := os.ReadDir(dir); rerr == nil {
		for _, e := range ents {
			names = append(names, e.Name())
		}
		slices.Sort(names)
	}
	if errors.Is(err, backend.ErrUnknownLayout) {
		return "", names, layoutError(dir, "none found (no meta.db for Berkeley DB, no CURRENT for LevelDB)", names)
	}
	if err != nil {
		return "", names, fmt.Errorf("engine: open %s: %w", dir, err)
	}
	return kind, names, nil
}

func layoutError(dir, found string, files []string) error {
	if files == nil {
		if ents, err := os.ReadDir(dir); err == nil {
			for _, e := range ents {
				files = append(files, e.Name())
			}
		}
	}
	return fmt.Errorf("engine: directory %s: layout %s; supported: %s (Berkeley DB or LevelDB, FORMAT.md); files found: %s: %w",
		dir, found, Layout, dbdir.Layout{Files: files}.List(), ErrLayout)
}
