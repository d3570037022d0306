package server

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/engine"
)

// engineKinds are the engine-backed store kinds (every compiled backend).
func engineKinds() []storeKind { return storeKinds()[1:] }

// forEachBackend runs f with each compiled engine backend name.
func forEachBackend(t *testing.T, f func(t *testing.T, backend string)) {
	for _, k := range engineKinds() {
		t.Run(k.name, func(t *testing.T) { f(t, k.name) })
	}
}

// C46, I2: the reference-count collector's removals reach every open
// connection's invalid set.
func TestCollectorInvalidates(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		st := openEngine(t, backend, engine.Options{GCGrace: -1})
		ts := startServer(t, Config{}, st)
		a := ts.dial(t)
		b := ts.dial(t)
		o := a.newOIDs(2)
		x := o[1]
		if _, st := a.commit(rec(0, "root", x), rec(x, "x")); st != 'O' {
			t.Fatal(st)
		}
		b.sync()
		if _, st := a.commit(rec(0, "root")); st != 'O' { // drops the last reference
			t.Fatal(st)
		}
		a.sync()
		var inv []uint64
		waitFor(t, 10*time.Second, "collector removal to reach A", func() bool {
			inv = append(inv, a.sync()...)
			return slices.Contains(inv, x)
		})
		if st, _ := a.load(x); st != 'K' {
			t.Fatalf("collected oid loads %q", st)
		}
		waitFor(t, 5*time.Second, "removal to reach B", func() bool {
			st, _ := b.load(x)
			return st == 'I'
		})
	})
}

// C14, C23, C42, C45: P → O at once, the unreachable object is gone on a
// 1,000-object database and its oid reaches every connection, including
// the packer; reachable objects and the root stay. (How fast: the pack
// benchmarks; here a bound that only catches a hang.)
func TestPackEngine(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		st := openEngine(t, backend, engine.Options{GC: engine.GCPolicy{Mode: engine.GCManual}})
		ts := startServer(t, Config{}, st)
		a := ts.dial(t)
		b := ts.dial(t)
		var oids []uint64
		for len(oids) < 1001 {
			oids = append(oids, a.newOIDs(255)...)
		}
		oids = oids[1:1001]
		recs := make([][]byte, len(oids))
		for i, o := range oids {
			recs[i] = rec(o, "obj")
		}
		recs = append(recs, rec(0, "root", oids...))
		if _, st := a.commit(recs...); st != 'O' {
			t.Fatal(st)
		}
		gone := oids[500]
		kept := slices.Delete(slices.Clone(oids), 500, 501)
		if _, st := a.commit(rec(0, "root", kept...)); st != 'O' {
			t.Fatal(st)
		}
		a.sync()
		b.sync()
		a.send([]byte{'P'})
		a.status('O')
		a.send([]byte{'P'})
		a.status('O')
		for _, c := range []*client{a, b} {
			var inv []uint64
			waitFor(t, 30*time.Second, "the pack's removal to reach the client", func() bool {
				inv = append(inv, c.sync()...)
				return slices.Contains(inv, gone)
			})
			if !slices.Equal(inv, []uint64{gone}) {
				t.Fatalf("invalid after pack: %v, want [%d]", inv, gone)
			}
			// The removal is reported before the transaction that deletes
			// it commits (engine.Options.OnRemove): a load in between still
			// finds the record, then K.
			waitFor(t, 30*time.Second, "the unreachable object gone (K)", func() bool {
				st, _ := c.load(gone)
				return st == 'K'
			})
		}
		for _, o := range append(kept[:10], 0) {
			if st, _ := a.load(o); st != 'O' {
				t.Fatalf("reachable %d: %q", o, st)
			}
		}
	})
}

// C10 (restart), C48 on the engine: oids are never handed out again after
// a restart; a read-only server answers loads and refuses commits.
func TestRestartAndReadOnly(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		dir := t.TempDir()
		ctx := context.Background()
		db, err := engine.Open(ctx, dir, engine.Options{Create: true, Backend: backend, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		ts := startServer(t, Config{}, Engine(db))
		c := ts.dial(t)
		o := c.newOIDs(40)
		root := rec(0, "root", o[1])
		if _, st := c.commit(root, rec(o[1], "one")); st != 'O' {
			t.Fatal(st)
		}
		ts.stop(t)
		db.Close()

		db, err = engine.Open(ctx, dir, engine.Options{Backend: backend, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		ts = startServer(t, Config{}, Engine(db))
		c = ts.dial(t)
		if n := c.newOIDs(1)[0]; n <= o[39] {
			t.Fatalf("oid %d handed out again after restart", n)
		}
		ts.stop(t)
		db.Close()

		db, err = engine.Open(ctx, dir, engine.Options{Backend: backend, ReadOnly: true, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		ts = startServer(t, Config{}, Engine(db))
		c = ts.dial(t)
		if st, r := c.load(0); st != 'O' || !bytes.Equal(r, root) {
			t.Fatal(st)
		}
		c.send([]byte{'B'}, u32(2), u64(o[1]), u64(o[2]))
		if st, _ := c.loadResponse(); st != 'O' {
			t.Fatal(st)
		}
		if st, _ := c.loadResponse(); st != 'K' {
			t.Fatal(st)
		}
		if n := c.newOIDs(2); n[0] == 0 {
			t.Fatal("read-only handed out the stored root")
		}
		if _, st := c.commit(rec(o[1], "changed")); st != 'E' {
			t.Fatalf("read-only commit: %q", st)
		}
		c.send([]byte{'P'})
		c.status('O')
		if st, r := c.load(o[1]); st != 'O' || !bytes.Equal(r, rec(o[1], "one")) {
			t.Fatal("read-only database changed")
		}
	})
}

// C41: an unreferenced record stays loadable for the grace period and is
// collected by the running collector after it, its removal reaching the
// client. The check is one-sided, so a slow machine cannot fail it: the
// record becomes a candidate after start, so a load that finds it gone
// before start+grace shows a collection inside the grace period.
func TestGracePeriod(t *testing.T) {
	const grace = 3 * time.Second
	forEachBackend(t, func(t *testing.T, backend string) {
		ts := startServer(t, Config{}, openEngine(t, backend, engine.Options{GCGrace: grace}))
		c := ts.dial(t)
		o := c.newOIDs(2)
		start := time.Now()
		if _, st := c.commit(rec(0, "root"), rec(o[1], "orphan")); st != 'O' {
			t.Fatal(st)
		}
		loads := 0
		waitFor(t, grace+30*time.Second, "the orphan to be collected", func() bool {
			st, _ := c.load(o[1])
			if st == 'O' {
				loads++
				return false
			}
			if el := time.Since(start); el < grace {
				t.Fatalf("orphan gone (%q) %v after the commit, inside the %v grace period", st, el, grace)
			}
			return true
		})
		if loads == 0 {
			t.Fatal("the orphan never loaded: the grace period was not observed")
		}
		var inv []uint64
		waitFor(t, 30*time.Second, "the removal to reach the client", func() bool {
			inv = append(inv, c.sync()...)
			return slices.Contains(inv, o[1])
		})
	})
}
