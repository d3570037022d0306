package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
)

// memStore is an in-memory Storage for tests, with fault injection.
type memStore struct {
	mu       sync.Mutex
	recs     map[uint64][]byte
	cursor   uint64
	readOnly bool

	commitErr error         // next commits fail with this
	waitDelay time.Duration // Pending.Wait sleeps this long
	waitErr   error         // Pending.Wait: the flush failed (wrapped in ErrNotDurable)
	applyErr  error         // Pending.Wait: the deferred apply refused the commit (returned as is)
	packs     atomic.Int32
	packing   atomic.Bool
	commits   atomic.Int32
	onCommit  func() // called inside Stage (before applying)
}

func newMemStore() *memStore { return &memStore{recs: map[uint64][]byte{}} }

func (m *memStore) Load(oid uint64) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[oid]
	if !ok {
		return nil, fmt.Errorf("mem: oid %d: %w", oid, ErrNoRecord)
	}
	return slices.Clone(r), nil
}

func (m *memStore) AllocOIDs(n int) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.cursor
	m.cursor += uint64(n)
	return f, nil
}

func (m *memStore) AllocCursor() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cursor
}

type memPending struct{ m *memStore }

func (p memPending) Wait(ctx context.Context) error {
	if p.m.waitDelay > 0 {
		select {
		case <-time.After(p.m.waitDelay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if p.m.applyErr != nil {
		return p.m.applyErr
	}
	if p.m.waitErr != nil {
		return fmt.Errorf("%w: %w", ErrNotDurable, p.m.waitErr)
	}
	return nil
}

func (m *memStore) Stage(ctx context.Context, recs [][]byte) (Pending, error) {
	if m.onCommit != nil {
		m.onCommit()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.commitErr != nil {
		return nil, m.commitErr
	}
	if m.readOnly {
		return nil, errors.New("mem: read-only")
	}
	in := map[uint64]bool{}
	for _, r := range recs {
		p, err := record.Parse(r)
		if err != nil {
			return nil, err
		}
		if in[p.OID] {
			return nil, fmt.Errorf("mem: oid %d twice", p.OID)
		}
		if p.OID != 0 && p.OID >= m.cursor {
			return nil, fmt.Errorf("mem: oid %d unallocated", p.OID)
		}
		in[p.OID] = true
	}
	for _, r := range recs {
		p, _ := record.Parse(r)
		for _, ref := range p.RefSet() {
			if _, ok := m.recs[ref]; !ok && !in[ref] {
				return nil, fmt.Errorf("mem: oid %d refers to %d: %w", p.OID, ref, ErrDangling)
			}
		}
	}
	for _, r := range recs {
		m.recs[record.OID(r)] = slices.Clone(r)
	}
	m.commits.Add(1)
	return memPending{m}, nil
}

func (m *memStore) Pack() bool {
	if m.readOnly {
		return false
	}
	if !m.packing.CompareAndSwap(false, true) {
		return false
	}
	m.packs.Add(1)
	return true
}

func (m *memStore) ReadOnly() bool { return m.readOnly }
