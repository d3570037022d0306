package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/internal/testlog"
	"github.com/durusbdb/durusbdb/kv"
)

// unackedStore is a new group's master whose next writable commits are
// applied here but acknowledged by no replica (kv.ErrPermFailed), as when
// a replica's connection breaks right after the ack policy went to quorum.
type unackedStore struct {
	kv.Store
	unacked atomic.Int32 // writable commits still to fail with ErrPermFailed
	failed  atomic.Int32 // writable commits that did
}

func (s *unackedStore) ReplRole() kv.RoleInfo { return kv.RoleInfo{Role: kv.RoleMaster} }

func (s *unackedStore) ReplChanged() <-chan struct{} { return nil }

func (s *unackedStore) Begin(ctx context.Context, writable bool) (kv.Txn, error) {
	tx, err := s.Store.Begin(ctx, writable)
	if err != nil || !writable {
		return tx, err
	}
	return &unackedTxn{Txn: tx, s: s}, nil
}

type unackedTxn struct {
	kv.Txn
	s *unackedStore
}

func (t *unackedTxn) Commit(d kv.Durability) error {
	if err := t.Txn.Commit(d); err != nil {
		return err
	}
	if t.s.unacked.Add(-1) >= 0 {
		t.s.failed.Add(1)
		return fmt.Errorf("commit: not acknowledged by a quorum of replicas: %w", kv.ErrPermFailed)
	}
	return nil
}

// The first master of a new group opens although the commits of its
// open (the layout, the in-use mark, the published address) were applied
// here and acknowledged by no replica: later commits wait for the quorum
// themselves. (The rig's group start failed so once: `durusbdb serve`
// exited "engine: create …: commit not acknowledged by a quorum".)
func TestNewMasterOpensWithUnackedCommits(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, _, err := backend.Open(kv.Options{Dir: dir, Create: true, Buckets: append(Buckets(false, 0), changesSpec())}, backend.LevelDB)
	if err != nil {
		t.Fatal(err)
	}
	us := &unackedStore{Store: st}
	us.unacked.Store(3)
	var logs testlog.Buffer
	opts := Options{
		Logger:      slog.New(slog.NewTextHandler(&logs, nil)),
		Replication: &kv.Replication{Listen: "127.0.0.1:1", DurusAddr: "127.0.0.1:2"},
	}
	db, err := openWith(ctx, dir, us, opts, true)
	if err != nil {
		t.Fatalf("open with unacknowledged commits: %v", err)
	}
	defer db.Close()
	if n := us.failed.Load(); n != 3 {
		t.Fatalf("%d commits of the open were unacknowledged, want 3 (layout, in-use mark, address)", n)
	}
	if db.IsReplica() {
		t.Fatal("opened as a replica")
	}
	if n := strings.Count(logs.String(), "not yet acknowledged by a quorum"); n != 3 {
		t.Fatalf("%d warnings of unacknowledged commits logged, want 3:\n%s", n, logs.String())
	}
	m, _, err := readMeta(ctx, us)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(m.vals[MetaLayout]); got != Layout {
		t.Fatalf("layout %q, want %q", got, Layout)
	}
	if got := string(m.vals[MetaSiteAddrPrefix+"127.0.0.1:1"]); got != "127.0.0.1:2" {
		t.Fatalf("published address %q", got)
	}
	// Outside the open, an unacknowledged commit is the caller's error.
	us.unacked.Store(1)
	if _, err := db.AllocOIDs(1); !errors.Is(err, kv.ErrPermFailed) {
		t.Fatalf("an oid block raised without a quorum: err %v, want ErrPermFailed", err)
	}
}
