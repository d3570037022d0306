package server

import (
	"encoding/binary"
	"fmt"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/kv"
)

// BenchmarkCommitCost is the cost of one commit through the server (issue
// #18): new-object commits (M, then one 100-byte record) and updates (one
// 200-byte record rewritten per commit, each connection its own oids), at
// 1 and 8 connections, with durability sync and nosync, on each engine
// backend. Besides ns/op it reports cpu-µs/commit (the process's user +
// system CPU per commit: the server, plus the lean raw client of this
// benchmark) and allocs/op (b.ReportAllocs, the whole process; the client
// builds each commit's frame with a few allocations of its own), so that a
// change that adds CPU or allocations to the commit path shows up here.
//
//	go test -tags bdb -run '^$' -bench CommitCost -benchtime 2000x ./server/
func BenchmarkCommitCost(b *testing.B) {
	for _, backend := range []string{"bdb", "leveldb"} {
		if backend == "bdb" && len(bdbKinds()) == 0 {
			continue // built without the bdb tag
		}
		for _, dur := range []struct {
			name string
			d    kv.Durability
		}{{"sync", kv.Sync}, {"nosync", kv.NoSync}} {
			for _, kind := range []string{"new", "update"} {
				for _, conns := range []int{1, 8} {
					b.Run(fmt.Sprintf("%s/%s/%s/conns=%d", backend, dur.name, kind, conns), func(b *testing.B) {
						st := openEngine(b, backend, engine.Options{Durability: dur.d, GCGrace: 24 * time.Hour})
						ts := startServer(b, Config{Logger: quietLogger()}, st)
						benchCommitCost(b, ts, kind, conns)
					})
				}
			}
		}
	}
}

// benchCommitCost runs b.N commits of kind over conns connections and
// reports the CPU per commit.
func benchCommitCost(b *testing.B, ts *testServer, kind string, conns int) {
	b.ReportAllocs()
	const own = 16 // records each connection updates in turn
	type state struct {
		pool []uint64
		next int
		data []byte
	}
	states := map[*benchConn]*state{}
	setup := func(c *benchConn) {
		s := &state{}
		states[c] = s
		if kind != "update" {
			return
		}
		var err error
		if s.pool, err = benchAlloc(c, own); err != nil {
			b.Fatal(err)
		}
		var recs [][]byte
		for _, oid := range s.pool {
			recs = append(recs, rec(oid, string(make([]byte, 200))))
		}
		if err := benchCommit(c, txnData(recs...)); err != nil {
			b.Fatal(err)
		}
	}
	payload := string(make([]byte, 100))
	update := string(make([]byte, 200))
	var ru0, ru1 syscall.Rusage
	runParallelConns(b, ts, conns, func(c *benchConn) {
		setup(c)
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru0) // the last setup ends just before the timer starts
	}, func(c *benchConn) error {
		s := states[c]
		var oid uint64
		var body string
		if kind == "update" {
			oid, body = s.pool[s.next], update
			s.next = (s.next + 1) % len(s.pool)
		} else {
			if len(s.pool) == 0 {
				var err error
				if s.pool, err = benchAlloc(c, 32); err != nil {
					return err
				}
			}
			oid, body = s.pool[0], payload
			s.pool = s.pool[1:]
		}
		s.data = append(s.data[:0], txnData(rec(oid, body))...)
		return benchCommit(c, s.data)
	})
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(syscall.TimevalToNsec(ru1.Utime) - syscall.TimevalToNsec(ru0.Utime) +
		syscall.TimevalToNsec(ru1.Stime) - syscall.TimevalToNsec(ru0.Stime))
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/commit")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
}

// benchAlloc sends M k and returns the oids other than the root.
func benchAlloc(c *benchConn, k int) ([]uint64, error) {
	c.w.Write([]byte{'M', byte(k)})
	c.w.Flush()
	buf := make([]byte, 8*k)
	if _, err := io.ReadFull(c.r, buf); err != nil {
		return nil, err
	}
	var out []uint64
	for i := range k {
		if oid := binary.BigEndian.Uint64(buf[8*i:]); oid != 0 {
			out = append(out, oid)
		}
	}
	return out, nil
}

// benchCommit runs both commit phases with data and checks the status.
func benchCommit(c *benchConn, data []byte) error {
	c.w.WriteByte('C')
	c.w.Flush()
	var k [4]byte
	if _, err := io.ReadFull(c.r, k[:]); err != nil {
		return err
	}
	if _, err := c.r.Discard(8 * int(binary.BigEndian.Uint32(k[:]))); err != nil {
		return err
	}
	c.w.Write(u32(uint32(len(data))))
	c.w.Write(data)
	c.w.Flush()
	st, err := c.r.ReadByte()
	if err == nil && st != 'O' {
		return fmt.Errorf("commit status %q", st)
	}
	return err
}
