//go:build bdb

package bdb_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/kv"
)

// siteConfig is what a replication site child process runs with; the
// parent passes it as JSON in BDB_REPL_SITE.
type siteConfig struct {
	Dir        string
	Listen     string
	Peers      []string
	Init       bool
	Standalone bool // no replication: the benchmark's baseline
	AckTimeout time.Duration
	NoBulk     bool
	NoDelay    bool // true: leave Nagle on (ReplOptions.NoTCPNoDelay)
}

// site is the state of a child process: one environment and its "data"
// database, driven by line commands on stdin (see siteCommand).
type site struct {
	cfg siteConfig
	env *bdb.Env

	outMu sync.Mutex
	out   *bufio.Writer

	dbMu sync.Mutex
	db   *bdb.DB
}

// replSiteMain is the body of a child process started by startSite.
func replSiteMain(js string) {
	var cfg siteConfig
	if err := json.Unmarshal([]byte(js), &cfg); err != nil {
		fmt.Println("fatal", err)
		os.Exit(2)
	}
	opts := bdb.EnvOptions{CacheSize: 16 << 20}
	if !cfg.Standalone {
		opts.Repl = &bdb.ReplOptions{
			Listen: cfg.Listen, Peers: cfg.Peers, Init: cfg.Init,
			AckTimeout: cfg.AckTimeout, NoBulk: cfg.NoBulk, NoTCPNoDelay: cfg.NoDelay,
			HeartbeatSend: 100 * time.Millisecond, HeartbeatMonitor: 500 * time.Millisecond,
		}
		if os.Getenv("BDB_REPL_DEBUG") != "" {
			opts.Repl.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("site", cfg.Listen)
			if d := os.Getenv("BDB_REPL_VERBOSE_DIR"); d != "" {
				opts.Repl.VerboseFile = filepath.Join(d, strings.ReplaceAll(cfg.Listen, ":", "_")+".log")
			}
		}
	}
	env, err := bdb.OpenEnv(cfg.Dir, opts)
	if err != nil {
		fmt.Println("fatal", err)
		os.Exit(2)
	}
	s := &site{cfg: cfg, env: env, out: bufio.NewWriter(os.Stdout)}
	s.println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if f[0] == "quit" {
			break
		}
		s.println(s.command(f))
	}
	if err := env.Close(); err != nil {
		fmt.Println("fatal close", err)
		os.Exit(2)
	}
	s.println("bye")
	os.Exit(0)
}

func (s *site) println(line string) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	s.out.WriteString(line + "\n")
	s.out.Flush()
}

// command runs one command and returns its one-line reply.
func (s *site) command(f []string) string {
	arg := func(i int) int {
		if i >= len(f) {
			return 0
		}
		n, _ := strconv.Atoi(f[i])
		return n
	}
	switch f[0] {
	case "status":
		st := s.env.ReplStatus()
		if s.cfg.Standalone {
			st.Role, st.Synced = bdb.RoleMaster, true
		}
		return fmt.Sprintf("status %s %t %d", st.Role, st.Synced, st.PermFailed)
	case "nsites": // the group's membership as this site knows it
		n, err := s.env.ReplSites()
		if err != nil {
			return "err " + err.Error()
		}
		return fmt.Sprintf("nsites %d", n)
	case "removed":
		return fmt.Sprintf("removed %t", s.env.ReplStatus().Removed)
	case "master":
		a, err := s.env.MasterAddr()
		if err != nil {
			return "err " + err.Error()
		}
		return "master " + a
	case "put":
		return s.reply(s.put(f[1], f[2]))
	case "putnosync": // putnosync K V: commit with DB_TXN_NOSYNC
		return s.reply(s.putDur(f[1], f[2], kv.NoSync))
	case "puttoken": // puttoken K V: commit, answer "token HEX"
		tok, err := s.putToken(f[1], f[2])
		if err != nil {
			return s.reply(err)
		}
		return "token " + hex.EncodeToString(tok[:])
	case "applied": // applied HEX MS: wait for that commit here
		var tok bdb.CommitToken
		if b, err := hex.DecodeString(f[1]); err != nil || copy(tok[:], b) != len(tok) {
			return "err bad token"
		}
		err := s.env.TxnApplied(tok, time.Duration(arg(2))*time.Millisecond)
		if errors.Is(err, bdb.ErrTimeout) {
			return "timeout"
		}
		return s.reply(err)
	case "putbg": // putbg K V: commit in the background, answer "started" now and "bgput RESULT" when done
		go func() { s.println("bgput " + s.reply(s.put(f[1], f[2]))) }()
		return "started"
	case "logstat": // the log's end and how far it is synced: "logstat ENDFILE ENDOFF SYNCFILE SYNCOFF"
		st, err := s.env.Stats()
		if err != nil {
			return s.reply(err)
		}
		return fmt.Sprintf("logstat %d %d %d %d", st.Log.CurFile, st.Log.CurOffset, st.Log.DiskFile, st.Log.DiskOffset)
	case "remove":
		return s.reply(s.env.RemoveSite(f[1]))
	case "get":
		return s.get(f[1])
	case "missing": // missing PREFIX N: keys PREFIX0..PREFIX(N-1) absent
		return s.missing(f[1], arg(2))
	case "storm": // storm G P: G goroutines commit P<g>-<i> forever, printing acks
		for g := range arg(1) {
			go s.storm(fmt.Sprintf("%s%d-", f[2], g))
		}
		return "ok"
	case "bench": // bench MODE G N: N commits by G goroutines
		return s.bench(f[1], arg(2), arg(3))
	}
	return "err unknown command " + f[0]
}

// reply maps a commit error to the protocol's words.
func (s *site) reply(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, bdb.ErrPermFailed):
		return "permfailed"
	case errors.Is(err, bdb.ErrNotMaster):
		return "notmaster"
	case errors.Is(err, bdb.ErrHandleDead):
		return "handledead"
	}
	return "err " + strings.ReplaceAll(err.Error(), "\n", " ")
}

// handle returns the "data" database, opening it once the site can.
func (s *site) handle() (*bdb.DB, error) {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.db != nil {
		return s.db, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	open := s.env.OpenDBReplicated
	if s.cfg.Standalone {
		open = func(_ context.Context, f string, o bdb.DBOptions) (*bdb.DB, error) { return s.env.OpenDB(f, o) }
	}
	d, err := open(ctx, "data", bdb.DBOptions{Create: true})
	if err != nil {
		return nil, err
	}
	s.db = d
	return d, nil
}

// drop forgets a database handle a rollback killed.
func (s *site) drop(err error) {
	if !errors.Is(err, bdb.ErrHandleDead) {
		return
	}
	s.dbMu.Lock()
	if s.db != nil {
		s.db.Close()
		s.db = nil
	}
	s.dbMu.Unlock()
}

// put commits key=value durably in its own transaction.
func (s *site) put(key, value string) error { return s.putDur(key, value, kv.Sync) }

// putDur commits key=value with durability dur.
func (s *site) putDur(key, value string, dur kv.Durability) error {
	d, err := s.handle()
	if err != nil {
		return err
	}
	tx, err := s.env.Begin(bdb.TxnOptions{})
	if err != nil {
		return err
	}
	if err := d.Put(tx, []byte(key), []byte(value)); err != nil {
		tx.Abort()
		s.drop(err)
		return err
	}
	err = tx.Commit(dur)
	s.drop(err)
	return err
}

// putToken commits key=value and returns its commit token.
func (s *site) putToken(key, value string) (bdb.CommitToken, error) {
	d, err := s.handle()
	if err != nil {
		return bdb.CommitToken{}, err
	}
	tx, err := s.env.Begin(bdb.TxnOptions{})
	if err != nil {
		return bdb.CommitToken{}, err
	}
	if err := d.Put(tx, []byte(key), []byte(value)); err != nil {
		tx.Abort()
		return bdb.CommitToken{}, err
	}
	return tx.CommitToken(kv.Sync)
}

func (s *site) get(key string) string {
	d, err := s.handle()
	if err != nil {
		return s.reply(err)
	}
	v, err := d.Get(nil, []byte(key))
	if errors.Is(err, bdb.ErrNotFound) {
		return "notfound"
	}
	if err != nil {
		s.drop(err)
		return s.reply(err)
	}
	return "val " + string(v)
}

func (s *site) missing(prefix string, n int) string {
	d, err := s.handle()
	if err != nil {
		return s.reply(err)
	}
	miss, first := 0, -1
	for i := range n {
		ok, err := d.Exists(nil, []byte(prefix+strconv.Itoa(i)))
		if err != nil {
			s.drop(err)
			return s.reply(err)
		}
		if !ok {
			if first < 0 {
				first = i
			}
			miss++
		}
	}
	return fmt.Sprintf("missing %d %d", miss, first)
}

// storm commits prefix0, prefix1, ... printing "ack prefix i" after each
// commit the quorum acknowledged, until a commit fails.
func (s *site) storm(prefix string) {
	for i := 0; ; i++ {
		if err := s.put(prefix+strconv.Itoa(i), strings.Repeat("x", 100)); err != nil {
			s.println(fmt.Sprintf("stormerr %s %d %s", prefix, i, s.reply(err)))
			return
		}
		s.println(fmt.Sprintf("ack %s %d", prefix, i))
	}
}

// bench runs n commits from g goroutines and answers "rate COMMITS/S".
// Mode "group" is the engine's apply run: one goroutine takes every
// waiting commit into one DB_TXN_NOSYNC transaction, then flushes the
// log once and answers them all; "txn" is one DB_TXN_SYNC transaction
// per commit.
func (s *site) bench(mode string, g, n int) string {
	d, err := s.handle()
	if err != nil {
		return s.reply(err)
	}
	var next atomic.Int64
	val := []byte(strings.Repeat("v", 100))
	start := time.Now()
	var firstErr atomic.Value
	var wg sync.WaitGroup
	switch mode {
	case "txn":
		for range g {
			wg.Go(func() {
				for i := next.Add(1); i <= int64(n); i = next.Add(1) {
					if err := s.put("b"+strconv.FormatInt(i, 10), string(val)); err != nil {
						firstErr.CompareAndSwap(nil, err)
						return
					}
				}
			})
		}
	case "group":
		reqs := make(chan chan error, g)
		stop := make(chan struct{})
		go groupApplier(s.env, d, reqs, stop, val)
		for range g {
			wg.Go(func() {
				done := make(chan error, 1)
				for i := next.Add(1); i <= int64(n); i = next.Add(1) {
					reqs <- done
					if err := <-done; err != nil {
						firstErr.CompareAndSwap(nil, err)
						return
					}
				}
			})
		}
		defer close(stop)
	default:
		return "err unknown bench mode " + mode
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return s.reply(err)
	}
	return fmt.Sprintf("rate %.0f", float64(n)/time.Since(start).Seconds())
}

// groupApplier commits every waiting request in one transaction.
func groupApplier(env *bdb.Env, d *bdb.DB, reqs chan chan error, stop chan struct{}, val []byte) {
	var seq int
	for {
		var batch []chan error
		select {
		case r := <-reqs:
			batch = append(batch, r)
		case <-stop:
			return
		}
	more:
		for {
			select {
			case r := <-reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		tx, err := env.Begin(bdb.TxnOptions{})
		for range batch {
			if err == nil {
				seq++
				err = d.Put(tx, []byte("a"+strconv.Itoa(seq)), val)
			}
		}
		if err == nil {
			err = tx.Commit(kv.NoSync)
		} else if tx != nil {
			tx.Abort()
		}
		if err == nil {
			err = env.Flush()
		}
		for _, r := range batch {
			r <- err
		}
	}
}
