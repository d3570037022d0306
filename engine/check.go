package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/kv"
)

// maxProblems bounds the problems a CheckReport lists (all are counted).
const maxProblems = 1000

// Problem kinds reported by Check.
const (
	ProblemLayout         = "layout"          // meta layout missing or unknown
	ProblemRecord         = "record"          // stored record fails R1–R4
	ProblemDangling       = "dangling"        // a ref names an oid without a record
	ProblemRefcount       = "refcount"        // stored count != in-degree
	ProblemSize           = "size"            // meta size != number of records
	ProblemNextOID        = "next_oid"        // next_oid not above the largest stored oid
	ProblemGarbageInvalid = "garbage-invalid" // garbage entry for oid 0, a positive count or no record
	ProblemGarbageMissing = "garbage-missing" // zero-count non-root object not queued
)

// Problem is one inconsistency found by Check.
type Problem struct {
	Kind     string
	OID      uint64
	Expected string
	Found    string
	Detail   string // e.g. the referrer of a dangling reference
}

// String formats the problem for logs and the CLI.
func (p Problem) String() string {
	s := fmt.Sprintf("%s: oid %d: expected %s, found %s", p.Kind, p.OID, p.Expected, p.Found)
	if p.Detail != "" {
		s += " (" + p.Detail + ")"
	}
	return s
}

// DanglingRef is a reference to an oid that has no record.
type DanglingRef struct {
	Referrer, Missing uint64
}

// CheckReport is the result of Check.
type CheckReport struct {
	Layout       string
	Objects      uint64 // records found
	Refs         uint64 // distinct references counted
	MaxOID       uint64
	Dangling     uint64        // dangling references found
	DanglingRefs []DanglingRef // the first ones
	Problems     []Problem     // the first maxProblems problems
	ProblemCount int           // all problems, dangling ones included
	Repaired     int           // fixes written (repair mode)
}

// OK reports whether no problem was found.
func (r *CheckReport) OK() bool { return r.ProblemCount == 0 }

func (r *CheckReport) add(p Problem) {
	r.ProblemCount++
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, p)
	}
}

// Check verifies FORMAT.md invariants over the whole database: the layout
// is known, every stored record passes R1–R4, every reference names a
// stored object (dangling ones are reported), every stored count equals
// the object's in-degree, meta size equals the number of records, next_oid
// is above every stored oid, garbage.db holds exactly the zero-count
// non-root objects. With repair, counts, the queue, size and next_oid are
// corrected; no object is ever deleted. Commits wait while Check runs.
func (db *DB) Check(ctx context.Context, repair bool) (*CheckReport, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	if repair && db.opts.ReadOnly {
		return nil, fmt.Errorf("engine: check --repair: %w", ErrReadOnly)
	}
	db.writeMu.Lock()
	rep, err := db.checkLocked(ctx, repair, true)
	db.writeMu.Unlock()
	if err != nil {
		return rep, err
	}
	if repair && rep.Objects > 0 && rep.MaxOID+1 > db.AllocCursor() {
		if err := db.raiseCursor(rep.MaxOID + 1); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// checkLocked is Check; the caller holds writeMu. logProblems logs each
// problem found at warning level.
func (db *DB) checkLocked(ctx context.Context, repair, logProblems bool) (*CheckReport, error) {
	rep := &CheckReport{}
	var stored oidSet
	indeg := make(map[uint64]uint32)
	var maxOID uint64
	var danglingTargets bool
	// Meta.
	var metaSize, nextOID uint64
	var haveSize, haveNext bool
	err := kv.View(ctx, db.store, func(tx kv.Txn) error {
		v, err := tx.Get(BucketMeta, []byte(MetaLayout))
		if err == nil {
			rep.Layout = string(v)
		} else if !errors.Is(err, kv.ErrNotFound) {
			return err
		}
		if v, err := tx.Get(BucketMeta, []byte(MetaSize)); err == nil {
			metaSize, err = decodeInt8(MetaSize, v)
			if err != nil {
				return err
			}
			haveSize = true
		}
		if v, err := tx.Get(BucketMeta, []byte(MetaNextOID)); err == nil {
			nextOID, err = decodeInt8(MetaNextOID, v)
			if err != nil {
				return err
			}
			haveNext = true
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("engine: check: meta: %w", err)
	}
	if rep.Layout != Layout {
		rep.add(Problem{Kind: ProblemLayout, Expected: Layout, Found: fmt.Sprintf("%q", rep.Layout)})
	}
	// Objects: in-degrees.
	err = db.scanBucket(ctx, BucketObjects, true, func(k, v []byte) error {
		if len(k) != 8 {
			rep.add(Problem{Kind: ProblemRecord, Expected: "8-byte oid key", Found: fmt.Sprintf("key %x", k)})
			return nil
		}
		oid := record.OID(k)
		stored = append(stored, oid)
		rep.Objects++
		maxOID = max(maxOID, oid)
		r, perr := record.ParseFor(oid, v)
		if perr != nil {
			rep.add(Problem{Kind: ProblemRecord, OID: oid, Expected: "a record passing R1–R4", Found: perr.Error()})
			return nil
		}
		for _, ref := range r.RefSet() {
			indeg[ref]++
			rep.Refs++
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("engine: check: %w", err)
	}
	rep.MaxOID = maxOID
	stored.sort()
	for t := range indeg {
		if !stored.has(t) {
			danglingTargets = true
			break
		}
	}
	if danglingTargets {
		err = db.scanBucket(ctx, BucketObjects, true, func(k, v []byte) error {
			if len(k) != 8 {
				return nil
			}
			r, perr := record.ParseFor(record.OID(k), v)
			if perr != nil {
				return nil
			}
			for _, ref := range r.RefSet() {
				if !stored.has(ref) {
					rep.Dangling++
					if len(rep.DanglingRefs) < 20 {
						rep.DanglingRefs = append(rep.DanglingRefs, DanglingRef{Referrer: r.OID, Missing: ref})
					}
					rep.add(Problem{Kind: ProblemDangling, OID: ref, Expected: "a stored object", Found: "no record",
						Detail: fmt.Sprintf("referenced by oid %d", r.OID)})
				}
			}
			return nil
		})
		if err != nil {
			return rep, fmt.Errorf("engine: check: %w", err)
		}
	}
	type fix struct {
		bucket string
		oid    uint64
		val    []byte // nil: delete
	}
	var fixes []fix
	// Refcounts.
	seen := make(map[uint64]struct{}, len(indeg))
	err = db.scanBucket(ctx, BucketRefcounts, true, func(k, v []byte) error {
		if len(k) != 8 {
			rep.add(Problem{Kind: ProblemRefcount, Expected: "8-byte oid key", Found: fmt.Sprintf("key %x", k)})
			return nil
		}
		oid := record.OID(k)
		seen[oid] = struct{}{}
		want := indeg[oid]
		got, derr := decodeCount(oid, v)
		if derr != nil || got != want || got == 0 {
			found := fmt.Sprint(got)
			if derr != nil {
				found = derr.Error()
			}
			rep.add(Problem{Kind: ProblemRefcount, OID: oid, Expected: fmt.Sprint(want), Found: found})
			if want == 0 {
				fixes = append(fixes, fix{BucketRefcounts, oid, nil})
			} else {
				fixes = append(fixes, fix{BucketRefcounts, oid, int4Bytes(want)})
			}
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("engine: check: %w", err)
	}
	var missingCounts []uint64
	for oid := range indeg {
		if _, ok := seen[oid]; !ok {
			missingCounts = append(missingCounts, oid)
		}
	}
	slices.Sort(missingCounts)
	for _, oid := range missingCounts {
		rep.add(Problem{Kind: ProblemRefcount, OID: oid, Expected: fmt.Sprint(indeg[oid]), Found: "0 (no entry)"})
		fixes = append(fixes, fix{BucketRefcounts, oid, int4Bytes(indeg[oid])})
	}
	// Garbage queue.
	queued := make(map[uint64]struct{})
	err = db.scanBucket(ctx, BucketGarbage, true, func(k, v []byte) error {
		if len(k) != 8 {
			rep.add(Problem{Kind: ProblemGarbageInvalid, Expected: "8-byte oid key", Found: fmt.Sprintf("key %x", k)})
			return nil
		}
		oid := record.OID(k)
		isStored := stored.has(oid)
		n := indeg[oid]
		switch {
		case oid == record.RootOID:
			rep.add(Problem{Kind: ProblemGarbageInvalid, OID: oid, Expected: "root never queued", Found: "queued"})
		case !isStored:
			rep.add(Problem{Kind: ProblemGarbageInvalid, OID: oid, Expected: "a stored object", Found: "no record"})
		case n > 0:
			rep.add(Problem{Kind: ProblemGarbageInvalid, OID: oid, Expected: "count 0", Found: fmt.Sprintf("count %d", n)})
		case len(v) != 8:
			rep.add(Problem{Kind: ProblemGarbageInvalid, OID: oid, Expected: "int8 time", Found: fmt.Sprintf("%d bytes", len(v))})
			fixes = append(fixes, fix{BucketGarbage, oid, int8Bytes(uint64(time.Now().UnixMilli()))})
			queued[oid] = struct{}{}
			return nil
		default:
			queued[oid] = struct{}{}
			return nil
		}
		fixes = append(fixes, fix{BucketGarbage, oid, nil})
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("engine: check: %w", err)
	}
	var unqueued []uint64
	for _, oid := range stored {
		if oid == record.RootOID || indeg[oid] > 0 {
			continue
		}
		if _, ok := queued[oid]; !ok {
			unqueued = append(unqueued, oid)
		}
	}
	slices.Sort(unqueued)
	now := int8Bytes(uint64(time.Now().UnixMilli()))
	for _, oid := range unqueued {
		rep.add(Problem{Kind: ProblemGarbageMissing, OID: oid, Expected: "queued in garbage (count 0)", Found: "not queued"})
		fixes = append(fixes, fix{BucketGarbage, oid, now})
	}
	// Counters.
	fixSize := !haveSize || metaSize != rep.Objects
	if fixSize {
		found := "absent"
		if haveSize {
			found = fmt.Sprint(metaSize)
		}
		rep.add(Problem{Kind: ProblemSize, Expected: fmt.Sprint(rep.Objects), Found: found})
	}
	fixNext := rep.Objects > 0 && (!haveNext || nextOID <= maxOID)
	if fixNext {
		rep.add(Problem{Kind: ProblemNextOID, OID: maxOID, Expected: fmt.Sprintf("above %d", maxOID), Found: fmt.Sprint(nextOID)})
	}
	if logProblems {
		for _, p := range rep.Problems {
			db.log.Warn("engine: check: "+p.String(), "dir", db.dir)
		}
	}
	if !repair {
		return rep, nil
	}
	// Repair in transactions of up to 4096 changes.
	for len(fixes) > 0 || fixSize || fixNext {
		n := min(4096, len(fixes))
		chunk := fixes[:n]
		fixes = fixes[n:]
		last := len(fixes) == 0
		err := kv.Update(ctx, db.store, kv.Sync, func(tx kv.Txn) error {
			for _, f := range chunk {
				var err error
				if f.val == nil {
					err = tx.Delete(f.bucket, record.OIDBytes(f.oid))
				} else {
					err = tx.Put(f.bucket, record.OIDBytes(f.oid), f.val)
				}
				if err != nil {
					return err
				}
			}
			if !last {
				return nil
			}
			if fixSize {
				if err := putSize(tx, rep.Objects); err != nil {
					return err
				}
			}
			if fixNext {
				if err := tx.Put(BucketMeta, []byte(MetaNextOID), int8Bytes(maxOID+1)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return rep, fmt.Errorf("engine: check: repair: %w", err)
		}
		rep.Repaired += len(chunk)
		if last {
			if fixSize {
				rep.Repaired++
				db.size.Store(rep.Objects)
			}
			if fixNext {
				rep.Repaired++
			}
			break
		}
	}
	return rep, nil
}

// oidSet is a set of oids as a sorted slice (8 bytes per oid).
type oidSet []uint64

// sort sorts the set (a hash objects.db is scanned out of order).
func (s oidSet) sort() {
	if !slices.IsSorted(s) {
		slices.Sort(s)
	}
}

// dedup removes repeats from the sorted set and reports whether there were any.
func (s *oidSet) dedup() bool {
	n := len(*s)
	*s = slices.Compact(*s)
	return len(*s) != n
}

// has reports whether oid is in the (sorted) set.
func (s oidSet) has(oid uint64) bool {
	_, ok := slices.BinarySearch(s, oid)
	return ok
}
