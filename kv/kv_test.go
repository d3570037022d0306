package kv

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// fakeStore hands out fakeTxns and remembers them.
type fakeStore struct {
	txns     []*fakeTxn
	abortErr error // what every Abort of an open txn returns
}

func (s *fakeStore) Begin(_ context.Context, writable bool) (Txn, error) {
	t := &fakeTxn{writable: writable, abortErr: s.abortErr}
	s.txns = append(s.txns, t)
	return t, nil
}
func (s *fakeStore) Flush() error                           { return nil }
func (s *fakeStore) Checkpoint(context.Context, bool) error { return nil }
func (s *fakeStore) Backend() string                        { return "fake" }
func (s *fakeStore) Close() error                           { return nil }
func (s *fakeStore) open() int {
	n := 0
	for _, t := range s.txns {
		if !t.ended() {
			n++
		}
	}
	return n
}

// fakeTxn records how it ended.
type fakeTxn struct {
	writable  bool
	committed bool
	aborted   bool
	abortErr  error
}

func (t *fakeTxn) ended() bool                        { return t.committed || t.aborted }
func (t *fakeTxn) Get(string, []byte) ([]byte, error) { return nil, ErrNotFound }
func (t *fakeTxn) Put(string, []byte, []byte) error   { return nil }
func (t *fakeTxn) Delete(string, []byte) error        { return nil }
func (t *fakeTxn) Cursor(string) (Cursor, error)      { return nil, ErrNoBucket }
func (t *fakeTxn) Commit(Durability) error {
	if t.ended() {
		return ErrTxnDone
	}
	t.committed = true
	return nil
}
func (t *fakeTxn) Abort() error {
	if !t.ended() {
		t.aborted = true
		return t.abortErr
	}
	return nil
}

// TestUpdateReportsFailedAbort: when fn fails and the abort that follows
// fails too (Berkeley DB's environment panicked while undoing it, its
// locks never released), Update's error says both, so that the caller
// sees ErrNeedRecover and does not take the storage for sound.
func TestUpdateReportsFailedAbort(t *testing.T) {
	s := &fakeStore{abortErr: fmt.Errorf("abort: %w", ErrNeedRecover)}
	failed := errors.New("put: no space left on device")
	err := Update(context.Background(), s, Sync, func(Txn) error { return failed })
	if !errors.Is(err, failed) || !errors.Is(err, ErrNeedRecover) {
		t.Fatalf("Update: %v, want fn's error and the abort's ErrNeedRecover", err)
	}
	// A committed transaction's deferred Abort is a no-op: nothing joined.
	if err := Update(context.Background(), s, Sync, func(Txn) error { return nil }); err != nil {
		t.Fatalf("Update that commits: %v", err)
	}
}

// catch runs f and returns what it panicked with.
func catch(f func()) (p any) {
	defer func() { p = recover() }()
	f()
	return nil
}

// TestUpdatePanicEndsTxn: a panic in Update's fn aborts the transaction
// and reaches the caller unchanged.
func TestUpdatePanicEndsTxn(t *testing.T) {
	s := &fakeStore{}
	p := catch(func() {
		Update(context.Background(), s, Sync, func(Txn) error { panic("boom") })
	})
	if p != "boom" {
		t.Fatalf("recovered %v, want the panic of fn", p)
	}
	if len(s.txns) != 1 || s.open() != 0 || !s.txns[0].aborted {
		t.Fatalf("after a panicking fn: %d txns, %d still open", len(s.txns), s.open())
	}
}

// TestViewPanicEndsTxn: the same for View.
func TestViewPanicEndsTxn(t *testing.T) {
	s := &fakeStore{}
	p := catch(func() {
		View(context.Background(), s, func(Txn) error { panic("boom") })
	})
	if p != "boom" {
		t.Fatalf("recovered %v, want the panic of fn", p)
	}
	if len(s.txns) != 1 || s.open() != 0 || !s.txns[0].aborted {
		t.Fatalf("after a panicking fn: %d txns, %d still open", len(s.txns), s.open())
	}
}

// TestUpdateEnds: without a panic, Update commits on success and aborts on
// an error, and View always aborts.
func TestUpdateEnds(t *testing.T) {
	s := &fakeStore{}
	if err := Update(context.Background(), s, Sync, func(Txn) error { return nil }); err != nil {
		t.Fatal(err)
	}
	bad := errors.New("bad")
	if err := Update(context.Background(), s, Sync, func(Txn) error { return bad }); !errors.Is(err, bad) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	if err := View(context.Background(), s, func(Txn) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if len(s.txns) != 3 || !s.txns[0].committed || s.txns[0].aborted || !s.txns[1].aborted || !s.txns[2].aborted {
		t.Fatalf("txns ended as %+v %+v %+v", *s.txns[0], *s.txns[1], *s.txns[2])
	}
}
