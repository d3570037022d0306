package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/kv"
)

// scanChunk is how many entries one read transaction of a chunked scan
// visits. Short transactions keep Berkeley DB read locks few.
const scanChunk = 4096

// Scan calls fn with every stored record in ascending oid order (a hash
// objects.db is read key by key after sorting its oids). Records are read in
// short read transactions, so Scan sees commits that happen while it runs
// (run it on a quiet database for an exact snapshot, as export does). rec
// belongs to fn. An error from fn stops the scan and is returned.
func (db *DB) Scan(ctx context.Context, fn func(oid uint64, rec []byte) error) error {
	if db.closed.Load() {
		return ErrClosed
	}
	if !db.hash {
		return db.scanBucket(ctx, BucketObjects, true, func(k, v []byte) error {
			if len(k) != 8 {
				return fmt.Errorf("engine: scan: objects key %x is not an 8-byte oid: %w", k, kv.ErrCorrupt)
			}
			return fn(record.OID(k), v)
		})
	}
	var oids []uint64
	if err := db.scanKeys(ctx, BucketObjects, func(oid uint64) error { oids = append(oids, oid); return nil }); err != nil {
		return err
	}
	slices.Sort(oids)
	for len(oids) > 0 {
		n := min(scanChunk/8, len(oids))
		chunk := oids[:n]
		oids = oids[n:]
		var recs [][]byte
		err := kv.View(ctx, db.store, func(tx kv.Txn) error {
			recs = recs[:0]
			for _, oid := range chunk {
				v, err := tx.Get(BucketObjects, record.OIDBytes(oid))
				if errors.Is(err, kv.ErrNotFound) {
					v = nil // deleted meanwhile
				} else if err != nil {
					return err
				}
				recs = append(recs, v)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("engine: scan: %w", err)
		}
		for i, v := range recs {
			if v == nil {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(chunk[i], v); err != nil {
				return err
			}
		}
	}
	return nil
}

// scanBucket calls fn with every key (and value, if values) of bucket. For
// ordered buckets it uses read transactions of scanChunk entries, resuming
// after the last key seen; a hash objects bucket is read in one
// transaction in its own order. fn runs outside the transactions.
func (db *DB) scanBucket(ctx context.Context, bucket string, values bool, fn func(k, v []byte) error) error {
	ordered := !(db.hash && bucket == BucketObjects)
	var last []byte
	type kvp struct{ k, v []byte }
	for {
		var batch []kvp
		done := false
		err := kv.View(ctx, db.store, func(tx kv.Txn) error {
			batch = batch[:0]
			done = false
			c, err := tx.Cursor(bucket)
			if err != nil {
				return err
			}
			defer c.Close()
			var ok bool
			if last == nil {
				ok = c.First()
			} else {
				ok = c.Seek(last)
				if ok && bytes.Equal(c.Key(), last) {
					ok = c.Next()
				}
			}
			for ; ok; ok = c.Next() {
				if ordered && len(batch) >= scanChunk {
					return c.Err()
				}
				e := kvp{k: c.Key()}
				if values {
					e.v = c.Value()
				}
				batch = append(batch, e)
			}
			done = true
			return c.Err()
		})
		if err != nil {
			return fmt.Errorf("engine: scan %s: %w", bucket, err)
		}
		for _, e := range batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(e.k, e.v); err != nil {
				return err
			}
		}
		if done || len(batch) == 0 {
			return nil
		}
		last = batch[len(batch)-1].k
	}
}
