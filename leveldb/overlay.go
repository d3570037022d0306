package leveldb

import "bytes"

// overlay is the write buffer of one write transaction: an ordered map from
// full LevelDB keys (prefix byte ‖ key) to a value or a tombstone, kept as a
// skip list so that a cursor can merge it with a snapshot iterator in order
// while the transaction keeps writing.
//
// Nodes are never removed: a Delete turns a node into a tombstone, a Put
// over a tombstone revives it. So a node a cursor points at stays linked;
// only inserts change the node order, and each insert bumps version, which
// tells cursors to re-seek.
type overlay struct {
	head    node
	level   int
	rnd     uint64 // xorshift state for node heights
	n       int    // nodes, tombstones included
	version uint64 // bumped on every insert of a new node
	size    int    // estimated bytes (keys + values + per-entry overhead)
}

const maxLevel = 24

// node is one overlay entry. key and val are owned by the overlay.
type node struct {
	key  []byte
	val  []byte
	del  bool
	next []*node
}

func newOverlay() *overlay {
	o := &overlay{level: 1, rnd: 0x9e3779b97f4a7c15}
	o.head.next = make([]*node, maxLevel)
	return o
}

func (o *overlay) randomLevel() int {
	l := 1
	for l < maxLevel {
		o.rnd ^= o.rnd << 13
		o.rnd ^= o.rnd >> 7
		o.rnd ^= o.rnd << 17
		if o.rnd&3 != 0 { // p = 1/4
			break
		}
		l++
	}
	return l
}

// seekGE returns the first node with key >= k, or nil. If prev is not nil it
// receives, per level, the last node with key < k.
func (o *overlay) seekGE(k []byte, prev *[maxLevel]*node) *node {
	x := &o.head
	for l := o.level - 1; l >= 0; l-- {
		for x.next[l] != nil && bytes.Compare(x.next[l].key, k) < 0 {
			x = x.next[l]
		}
		if prev != nil {
			prev[l] = x
		}
	}
	return x.next[0]
}

// seekGT returns the first node with key > k, or nil.
func (o *overlay) seekGT(k []byte) *node {
	n := o.seekGE(k, nil)
	if n != nil && bytes.Equal(n.key, k) {
		n = n.next[0]
	}
	return n
}

// seekLT returns the last node with key < k, or nil.
func (o *overlay) seekLT(k []byte) *node {
	x := &o.head
	for l := o.level - 1; l >= 0; l-- {
		for x.next[l] != nil && bytes.Compare(x.next[l].key, k) < 0 {
			x = x.next[l]
		}
	}
	if x == &o.head {
		return nil
	}
	return x
}

// last returns the node with the greatest key, or nil.
func (o *overlay) last() *node {
	x := &o.head
	for l := o.level - 1; l >= 0; l-- {
		for x.next[l] != nil {
			x = x.next[l]
		}
	}
	if x == &o.head {
		return nil
	}
	return x
}

// first returns the node with the smallest key, or nil.
func (o *overlay) first() *node { return o.head.next[0] }

// get returns the node for k, or nil.
func (o *overlay) get(k []byte) *node {
	n := o.seekGE(k, nil)
	if n != nil && bytes.Equal(n.key, k) {
		return n
	}
	return nil
}

// set stores a copy of val under k (del: a tombstone). k must not be
// modified by the caller afterwards; val is copied.
func (o *overlay) set(k, val []byte, del bool) {
	var prev [maxLevel]*node
	n := o.seekGE(k, &prev)
	var v []byte
	if !del {
		v = make([]byte, len(val))
		copy(v, val)
	}
	o.size += len(v) + len(k) + 64
	if n != nil && bytes.Equal(n.key, k) {
		n.val, n.del = v, del
		return
	}
	lvl := o.randomLevel()
	if lvl > o.level {
		for l := o.level; l < lvl; l++ {
			prev[l] = &o.head
		}
		o.level = lvl
	}
	n = &node{key: k, val: v, del: del, next: make([]*node, lvl)}
	for l := 0; l < lvl; l++ {
		n.next[l] = prev[l].next[l]
		prev[l].next[l] = n
	}
	o.n++
	o.version++
}
