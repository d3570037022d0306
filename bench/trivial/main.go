// Command trivial is the loopback ceiling of durusbdb's benchmark suite
// (bench/suite): a TCP server with the Durus protocol's framing
// (PROTOCOL.md §4) that keeps records in a Go map and does nothing else —
// no storage engine, no invalidation bookkeeping, no durability. What it
// reaches for L and B requests is what a request/response server can do
// over loopback on this machine; durusbdb's load rates are reported as a
// fraction of it.
//
// It answers V, N, M, L, B, S, C (records replace map entries; nothing is
// validated beyond the frame lengths), P and Q. A commit holds a token (a
// mutex) from its phase-1 reply until its records are applied, as every
// Durus server must; its commit rate was taken for the ceiling that the
// two-phase commit protocol itself leaves on this machine (no storage, no
// fsync) and is issue #18's reference. It is not a hard ceiling: since
// the token hand-off (commit.Hold.Handoff) durusbdb's nosync commits run
// 1.2–1.6× its rate, and neither a FIFO hand-off token nor sysmon kept
// awake raised it above 14–17k/s here (docs/PERFORMANCE.md, fourteenth
// session). Any other byte closes the connection, as durusbdb does. With
// -objects and -size it starts with records 1..objects (oid 0 referring to
// none), so a load generator can run without committing first.
//
// Usage:
//
//	trivial -addr 127.0.0.1:2980 [-objects 0 -size 100] [-sync LOGFILE]
//
// With -sync the server is durable: every commit's data goes to a log file
// and its 'O' waits for a group write + fdatasync that covers it (wal.go).
// Its commit rate is the most a durable Durus server can do on this
// machine's disk with this protocol: the ceiling for durusbdb's durable
// commits, where the rate without -sync is the ceiling of the protocol.
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
)

// store is the server's whole state.
type store struct {
	mu      sync.RWMutex
	records map[uint64][]byte
	token   sync.Mutex    // the commit token: phase 1 to applied
	next    atomic.Uint64 // next oid M hands out
	wal     *wal          // with -sync: the log every commit is durable in before its 'O'
}

func main() {
	addr := flag.String("addr", "127.0.0.1:2980", "TCP address to listen on")
	objects := flag.Int("objects", 0, "records 1..objects created at start")
	size := flag.Int("size", 100, "data bytes of each created record")
	syncPath := flag.String("sync", "", "log file (created, 64 MiB written ahead) that makes commits durable: one group write + fdatasync before the 'O'")
	flag.Parse()
	st := &store{records: make(map[uint64][]byte, *objects+1)}
	if *syncPath != "" {
		w, err := openWAL(*syncPath, 64<<20)
		if err != nil {
			fmt.Fprintln(os.Stderr, "trivial:", err)
			os.Exit(1)
		}
		st.wal = w
	}
	st.next.Store(1)
	for oid := uint64(1); oid <= uint64(*objects); oid++ {
		st.records[oid] = makeRecord(oid, *size)
	}
	if *objects > 0 {
		st.next.Store(uint64(*objects) + 1)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "trivial:", err)
		os.Exit(1)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "trivial:", err)
			os.Exit(1)
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		go st.serve(c)
	}
}

// makeRecord returns a record of oid with size data bytes and no refs.
func makeRecord(oid uint64, size int) []byte {
	b := make([]byte, 12+size)
	binary.BigEndian.PutUint64(b, oid)
	binary.BigEndian.PutUint32(b[8:], uint32(size))
	for i := range size {
		b[12+i] = byte('a' + i%26)
	}
	return b
}

// serve runs one connection until it ends.
func (st *store) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 64<<10)
	w := bufio.NewWriterSize(c, 64<<10)
	var b [8]byte
	u32 := func() (uint32, error) {
		_, err := io.ReadFull(r, b[:4])
		return binary.BigEndian.Uint32(b[:4]), err
	}
	u64 := func() (uint64, error) {
		_, err := io.ReadFull(r, b[:8])
		return binary.BigEndian.Uint64(b[:8]), err
	}
	load := func(oid uint64) { st.load(w, oid) }
	alloc := func(n int) { st.alloc(w, n) }
	for {
		if r.Buffered() == 0 {
			if w.Flush() != nil {
				return
			}
		}
		cmd, err := r.ReadByte()
		if err != nil {
			return
		}
		switch cmd {
		case 'V':
			if _, err := u32(); err != nil {
				return
			}
			w.Write([]byte{0, 0, 0, 1})
		case 'N':
			alloc(1)
		case 'M':
			n, err := r.ReadByte()
			if err != nil {
				return
			}
			alloc(int(n))
		case 'L':
			oid, err := u64()
			if err != nil {
				return
			}
			load(oid)
		case 'B':
			n, err := u32()
			if err != nil || n > 1<<20 {
				return
			}
			for range n {
				oid, err := u64()
				if err != nil {
					return
				}
				load(oid)
			}
		case 'S':
			w.Write([]byte{0, 0, 0, 0})
		case 'C':
			durable, ok := st.commit(r, w, u32)
			if !ok {
				return
			}
			if durable {
				if st.wal.sync() != nil {
					return
				}
				w.WriteByte('O')
			}
		case 'P':
			w.WriteByte('O')
		case 'Q':
			os.Exit(0)
		default:
			return
		}
	}
}

// commit is one commit under the token: the phase-1 reply, the data, and
// the records stored at once. Without a log it writes the 'O' itself;
// with one (-sync) it appends the data to the log and returns durable, so
// that the caller waits for the log's sync and writes the 'O' after the
// token is released. ok is false when the connection must end (a read or
// write failed, or the data is malformed).
func (st *store) commit(r *bufio.Reader, w *bufio.Writer, u32 func() (uint32, error)) (durable, ok bool) {
	if w.Flush() != nil {
		return false, false
	}
	st.token.Lock()
	defer st.token.Unlock()
	w.Write([]byte{0, 0, 0, 0})
	if w.Flush() != nil {
		return false, false
	}
	n, err := u32()
	if err != nil {
		return false, false
	}
	if n == 0 {
		return false, true
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		return false, false
	}
	all := data
	recs := map[uint64][]byte{}
	for len(data) >= 12 {
		fl := binary.BigEndian.Uint32(data)
		if int(fl) < 8 || int(fl) > len(data)-4 {
			return false, false
		}
		oid := binary.BigEndian.Uint64(data[4:])
		recs[oid] = data[12 : 4+fl]
		data = data[4+fl:]
	}
	st.mu.Lock()
	for oid, rec := range recs {
		st.records[oid] = rec
	}
	st.mu.Unlock()
	if st.wal != nil {
		st.wal.append(all)
		return true, true
	}
	w.WriteByte('O')
	return false, true
}

// load answers one load of oid: 'O' with the record, or 'K'.
func (st *store) load(w *bufio.Writer, oid uint64) {
	st.mu.RLock()
	rec, ok := st.records[oid]
	st.mu.RUnlock()
	if !ok {
		w.WriteByte('K')
		return
	}
	var b [4]byte
	w.WriteByte('O')
	w.Write(binary.BigEndian.AppendUint32(b[:0], uint32(len(rec))))
	w.Write(rec)
}

// alloc hands out n new oids.
func (st *store) alloc(w *bufio.Writer, n int) {
	var b [8]byte
	first := st.next.Add(uint64(n)) - uint64(n)
	for i := range uint64(n) {
		w.Write(binary.BigEndian.AppendUint64(b[:0], first+i))
	}
}
