package engine

import (
	"sync"
	"sync/atomic"
	"unsafe"
)

// The record cache: recently loaded records, kept in Go memory so that a
// load of a hot object (the root, the top of a BTree) costs a map lookup
// instead of a read through cgo (measured: +25% loads/s at 8 connections
// with every load a hit, bench/loadgen). It takes its share of
// Options.CacheSize from the backend's cache (see Options.RecordCache).
//
// Coherence: every writer of the objects bucket calls invalidate (or purge)
// after its transaction commits. A load reads the shard's epoch before it
// reads the store and fills the cache only if the epoch is unchanged: a
// load that read a record before a commit replaced it cannot put it back
// after that commit's invalidation, because the invalidation, which comes
// after the commit, bumped the epoch first. Epoch check and fill, and
// deletion and bump, are each done under the shard's lock.

// recShards is the number of independently locked parts of the cache.
const recShards = 16

// recOverhead is the bookkeeping counted per cached record (map entry,
// slice header).
const recOverhead = 64

// recCache is the record cache. The zero value (no budget) caches nothing.
type recCache struct {
	shards [recShards]recShard
	hits   atomic.Uint64
	misses atomic.Uint64
}

type recShard struct {
	mu     sync.Mutex
	m      map[uint64][]byte // owned by mu
	bytes  int64             // counted size of m; owned by mu
	budget int64             // 0: the shard caches nothing
	epoch  uint64            // bumped by every invalidation; owned by mu
	// sizes holds the size of records of at least sizeHintMin bytes that
	// a load read and that are not cached (too large, or evicted):
	// DB.LoadBounded refuses them before reading, so their memory is charged first on stores that
	// cannot measure a value without reading it (LevelDB). Kept coherent
	// like m (fill under the epoch check, dropped by invalidate); at most
	// sizeHintsMax entries. Owned by mu.
	sizes map[uint64]int
}

// sizeHintMin is the smallest record whose size the cache remembers (the
// server charges replies from 32 KiB on).
const sizeHintMin = 32 << 10

// sizeHintsMax bounds the size hints of one shard (a map entry of 16
// bytes each: about 200 KiB per shard, 3 MiB in all, at most).
const sizeHintsMax = 8192

// newRecCache returns a cache of about budget bytes (≤ 0: disabled).
func newRecCache(budget int64) *recCache {
	c := &recCache{}
	if budget <= 0 {
		return c
	}
	for i := range c.shards {
		c.shards[i].budget = max(budget/recShards, 1)
		c.shards[i].m = make(map[uint64][]byte)
	}
	return c
}

func (c *recCache) shard(oid uint64) *recShard {
	return &c.shards[(oid^oid>>17)%recShards]
}

// get returns the cached record of oid and the shard's epoch, to be passed
// to fill after a miss.
func (c *recCache) get(oid uint64) (rec []byte, epoch uint64, ok bool) {
	rec, epoch, _, ok = c.lookup(oid)
	return rec, epoch, ok
}

// lookup is get that also returns, on a miss, the size of oid's record if
// a load found it too large to cache since it was last written (0 if not
// known).
func (c *recCache) lookup(oid uint64) (rec []byte, epoch uint64, size int, ok bool) {
	s := c.shard(oid)
	if s.budget == 0 {
		return nil, 0, 0, false
	}
	s.mu.Lock()
	rec, ok = s.m[oid]
	epoch = s.epoch
	if !ok && len(s.sizes) > 0 {
		size = s.sizes[oid]
	}
	s.mu.Unlock()
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
	return rec, epoch, size, ok
}

// fill caches rec, read from the store after get returned epoch, unless a
// writer invalidated the shard since. Records larger than an eighth of the
// shard are not cached; of those from sizeHintMin bytes on, the size is
// kept (see recShard.sizes), as it is for such records evicted to make
// room. Entries are evicted in map order (pseudo-random) until the shard
// is within budget.
func (c *recCache) fill(oid uint64, rec []byte, epoch uint64) {
	s := c.shard(oid)
	size := int64(len(rec)) + recOverhead
	if s.budget == 0 {
		return
	}
	if size > s.budget/8 {
		if len(rec) >= sizeHintMin {
			s.hint(oid, len(rec), epoch)
		}
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.epoch != epoch {
		return
	}
	if old, ok := s.m[oid]; ok {
		// Out of the map with its bytes, so the eviction below cannot
		// pick it and count it a second time.
		delete(s.m, oid)
		s.bytes -= int64(len(old)) + recOverhead
	}
	for k, v := range s.m {
		if s.bytes+size <= s.budget {
			break
		}
		delete(s.m, k)
		s.bytes -= int64(len(v)) + recOverhead
		if len(v) >= sizeHintMin {
			s.hintLocked(k, len(v)) // evicted, still coherent: its size stays known
		}
	}
	s.m[oid] = rec
	s.bytes += size
}

// hint keeps n, the size of oid's record read after get returned epoch,
// unless a writer invalidated the shard since; a full set of hints loses
// one (map order) to make room.
func (s *recShard) hint(oid uint64, n int, epoch uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.epoch != epoch {
		return
	}
	s.hintLocked(oid, n)
}

// hintLocked keeps n as the size of oid's current record (s.mu held).
func (s *recShard) hintLocked(oid uint64, n int) {
	if s.sizes == nil {
		s.sizes = make(map[uint64]int)
	}
	if _, ok := s.sizes[oid]; !ok && len(s.sizes) >= sizeHintsMax {
		for k := range s.sizes {
			delete(s.sizes, k)
			break
		}
	}
	s.sizes[oid] = n
}

// invalidate drops oids; the caller has committed the transaction that
// changed or removed their records.
func (c *recCache) invalidate(oids ...uint64) {
	for _, oid := range oids {
		s := c.shard(oid)
		if s.budget == 0 {
			continue
		}
		s.mu.Lock()
		if v, ok := s.m[oid]; ok {
			delete(s.m, oid)
			s.bytes -= int64(len(v)) + recOverhead
		}
		if len(s.sizes) > 0 {
			delete(s.sizes, oid)
		}
		s.epoch++
		s.mu.Unlock()
	}
}

// holds reports whether the cache holds rec, the very memory, for oid.
func (c *recCache) holds(oid uint64, rec []byte) bool {
	s := c.shard(oid)
	if s.budget == 0 || len(rec) == 0 {
		return false
	}
	s.mu.Lock()
	v, ok := s.m[oid]
	s.mu.Unlock()
	return ok && len(v) > 0 && unsafe.SliceData(v) == unsafe.SliceData(rec)
}

// purge empties the cache (an import replaced the contents).
func (c *recCache) purge() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		if s.m != nil {
			clear(s.m)
		}
		clear(s.sizes)
		s.bytes = 0
		s.epoch++
		s.mu.Unlock()
	}
}

// size returns the cached bytes (as counted) and records.
func (c *recCache) size() (bytes int64, records int) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		bytes += s.bytes
		records += len(s.m)
		s.mu.Unlock()
	}
	return bytes, records
}
