// Package inspect answers object-level questions about a Durus database,
// the ones an operator coming from ZODB asks its tools: how many objects
// and bytes each class holds and which records are largest (analyze.py),
// what refers to an oid and what it refers to (fsrefs, fsoids), and what
// one record is (class, size, references). It reads through Source, so
// the same code serves an offline open and a running server.
package inspect

import (
	"context"
	"fmt"
	"sort"

	"github.com/durusbdb/durusbdb/durus/record"
)

// Source is what inspect reads: every record in oid order, and one record.
// *engine.DB implements it.
type Source interface {
	Scan(ctx context.Context, fn func(oid uint64, rec []byte) error) error
	Load(oid uint64) ([]byte, error)
}

// Object describes one record.
type Object struct {
	OID   uint64   `json:"oid"`
	Class string   `json:"class"`     // module.Class from the record's class pickle, "?" if unreadable
	Size  int      `json:"size"`      // bytes of the whole record
	Data  int      `json:"data_size"` // bytes of the pickles
	Refs  []uint64 `json:"refs"`      // distinct oids it references, ascending
}

// Describe parses rec, the record of oid.
func Describe(oid uint64, rec []byte) (Object, error) {
	r, err := record.ParseFor(oid, rec)
	if err != nil {
		return Object{}, fmt.Errorf("inspect: oid %d: %w", oid, err)
	}
	refs := r.RefSet()
	if refs == nil {
		refs = []uint64{}
	}
	return Object{OID: oid, Class: record.ClassName(r.Data), Size: len(rec), Data: len(r.Data), Refs: refs}, nil
}

// ClassStat is one line of an Analysis.
type ClassStat struct {
	Class   string `json:"class"`
	Objects int64  `json:"objects"`
	Bytes   int64  `json:"bytes"`
	// Largest is the oid of the class's largest record.
	Largest     uint64 `json:"largest_oid"`
	LargestSize int    `json:"largest_size"`
}

// Analysis is what Analyze found.
type Analysis struct {
	Objects int64       `json:"objects"`
	Bytes   int64       `json:"bytes"`
	Classes []ClassStat `json:"classes"` // most bytes first
	Largest []Object    `json:"largest"` // the largest records, largest first
	// Unreadable counts records whose header could not be parsed; they
	// are counted under class "?" too.
	Unreadable int64 `json:"unreadable"`
}

// Analyze reads every record of src and sums objects and bytes per class;
// it keeps the top largest records. progress, if set, is called with the
// number of records read every 65536 records.
func Analyze(ctx context.Context, src Source, top int, progress func(n int64)) (*Analysis, error) {
	a := &Analysis{}
	byClass := map[string]*ClassStat{}
	var largest []Object // a min-heap would do; top is small
	err := src.Scan(ctx, func(oid uint64, rec []byte) error {
		a.Objects++
		a.Bytes += int64(len(rec))
		o, err := Describe(oid, rec)
		if err != nil {
			a.Unreadable++
			o = Object{OID: oid, Class: "?", Size: len(rec)}
		}
		cs := byClass[o.Class]
		if cs == nil {
			cs = &ClassStat{Class: o.Class}
			byClass[o.Class] = cs
		}
		cs.Objects++
		cs.Bytes += int64(o.Size)
		if o.Size > cs.LargestSize || cs.Objects == 1 {
			cs.Largest, cs.LargestSize = oid, o.Size
		}
		if top > 0 && (len(largest) < top || o.Size > largest[len(largest)-1].Size) {
			o.Refs = nil
			i := sort.Search(len(largest), func(i int) bool { return largest[i].Size < o.Size })
			largest = append(largest, Object{})
			copy(largest[i+1:], largest[i:])
			largest[i] = o
			if len(largest) > top {
				largest = largest[:top]
			}
		}
		if progress != nil && a.Objects%65536 == 0 {
			progress(a.Objects)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("inspect: analyze: %w", err)
	}
	for _, cs := range byClass {
		a.Classes = append(a.Classes, *cs)
	}
	sort.Slice(a.Classes, func(i, j int) bool {
		if a.Classes[i].Bytes != a.Classes[j].Bytes {
			return a.Classes[i].Bytes > a.Classes[j].Bytes
		}
		return a.Classes[i].Class < a.Classes[j].Class
	})
	a.Largest = largest
	if a.Largest == nil {
		a.Largest = []Object{}
	}
	return a, nil
}

// Refs is what Referrers found about one oid.
type Refs struct {
	Object
	// Exists is false when oid has no record (referrers are still
	// listed: a dangling reference is worth seeing).
	Exists bool `json:"exists"`
	// ReferredBy are the oids whose records reference oid, ascending.
	ReferredBy []uint64 `json:"referred_by"`
}

// Referrers describes oid and lists every record that references it (one
// scan of the whole database).
func Referrers(ctx context.Context, src Source, oid uint64, progress func(n int64)) (*Refs, error) {
	out := &Refs{Object: Object{OID: oid, Refs: []uint64{}}, ReferredBy: []uint64{}}
	if rec, err := src.Load(oid); err == nil {
		o, err := Describe(oid, rec)
		if err != nil {
			return nil, err
		}
		out.Object, out.Exists = o, true
	}
	var n int64
	err := src.Scan(ctx, func(from uint64, rec []byte) error {
		n++
		if progress != nil && n%65536 == 0 {
			progress(n)
		}
		r, err := record.Parse(rec)
		if err != nil {
			return nil // check reports malformed records; refs lists what it can read
		}
		for i := 0; i+8 <= len(r.Refs); i += 8 {
			if record.OID(r.Refs[i:]) == oid && from != oid {
				out.ReferredBy = append(out.ReferredBy, from)
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("inspect: referrers of oid %d: %w", oid, err)
	}
	return out, nil
}
