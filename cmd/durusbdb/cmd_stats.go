package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/spf13/pflag"
)

func statsCommand() *command {
	c := &command{
		name:    "stats",
		summary: "print objects, GC queue, last checkpoint, log, cache and server figures, live or not (--json for machines)",
		usage:   "durusbdb stats --dir DIR [--json]",
		example: "durusbdb stats --dir /var/lib/durusbdb --json",
	}
	c.setup = func(fs *pflag.FlagSet) runFunc {
		var f dbFlags
		f.register(fs)
		asJSON := fs.Bool("json", false, "print JSON (stable snake_case keys, see docs/OPERATIONS.md)")
		return func(ctx context.Context, cio cmdIO, args []string) error {
			if err := noArgs(fs); err != nil {
				return err
			}
			db, lv, done, err := f.openTool(ctx, cio, engine.Options{ReadOnly: true, GC: engine.GCPolicy{Mode: engine.GCManual}, Checkpoint: engine.CheckpointPolicy{Manual: true}})
			if errors.Is(err, kv.ErrInUse) {
				return routeLive(ctx, cio, f.dir, c.name, args, err)
			}
			if err != nil {
				return err
			}
			defer done()
			rep, err := gatherStats(f.dir, db, lv)
			if err != nil {
				return err
			}
			if *asJSON {
				enc := json.NewEncoder(cio.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			rep.writeText(cio.stdout)
			return nil
		}
	}
	return c
}

// statsReport is the output of `durusbdb stats`; its JSON keys are a
// stable interface, documented in docs/OPERATIONS.md.
type statsReport struct {
	Directory          string            `json:"directory"`
	Backend            string            `json:"backend"`
	Access             string            `json:"access,omitempty"` // Berkeley DB only
	Live               bool              `json:"live"`
	Objects            uint64            `json:"objects"`
	NextOID            uint64            `json:"next_oid"`
	GCQueue            uint64            `json:"gc_queue"`
	GCFreed            uint64            `json:"gc_freed"`
	GCCollections      uint64            `json:"gc_collections"`
	FullCollection     fullReport        `json:"full_collection"`
	UncleanShutdown    bool              `json:"unclean_shutdown"`
	ReplicationSite    bool              `json:"replication_site,omitempty"` // unclean_shutdown is then always false: in_use is the master's
	LastCheckpoint     *checkpointReport `json:"last_checkpoint"`
	LastCheckpointNote string            `json:"last_checkpoint_note,omitempty"`
	LogFiles           int               `json:"log_files"`
	LogBytes           int64             `json:"log_bytes"`
	BackendCache       *cacheReport      `json:"backend_cache"`
	BackendCacheNote   string            `json:"backend_cache_note,omitempty"`
	RecordCache        *cacheReport      `json:"record_cache"`
	Server             *serverReport     `json:"server,omitempty"` // live only
}

type fullReport struct {
	Running bool   `json:"running"`
	Phase   string `json:"phase,omitempty"`
	Marked  int    `json:"marked,omitempty"`
	Pending int    `json:"pending,omitempty"`
	// Unfinished: the start of a full collection's sweep that did not
	// finish (meta full); the next full collection finishes it.
	Unfinished string `json:"unfinished,omitempty"`
}

type checkpointReport struct {
	Time time.Time `json:"time"`
	LSN  string    `json:"lsn,omitempty"` // Berkeley DB: "file/offset"
}

type cacheReport struct {
	Hits    uint64   `json:"hits"`
	Misses  uint64   `json:"misses"`
	HitRate *float64 `json:"hit_rate"` // null before any lookup
	Bytes   int64    `json:"bytes,omitempty"`
}

func newCacheReport(hits, misses uint64) *cacheReport {
	c := &cacheReport{Hits: hits, Misses: misses}
	if hits+misses > 0 {
		r := float64(hits) / float64(hits+misses)
		c.HitRate = &r
	}
	return c
}

type serverReport struct {
	PID            int     `json:"pid"`
	UptimeSeconds  float64 `json:"uptime_seconds"`
	ReadOnly       bool    `json:"read_only"`
	Durability     string  `json:"durability"`
	Connections    int     `json:"connections"`
	Commits        uint64  `json:"commits"`
	CommittedBytes uint64  `json:"committed_bytes"`
	Checkpoints    uint64  `json:"checkpoints"`
}

// gatherStats collects the figures of db (opened by the stats process,
// or the server's own when lv is not nil).
func gatherStats(dir string, db *engine.DB, lv *liveServer) (*statsReport, error) {
	st, err := db.Stats()
	if err != nil {
		return nil, err
	}
	fp := db.FullProgress()
	rep := &statsReport{
		Directory: dir, Backend: st.Backend, Live: lv != nil,
		Objects: st.Objects, NextOID: st.NextOID, GCQueue: st.GCQueue, GCFreed: st.GCFreed, GCCollections: st.GCCollections,
		FullCollection:  fullReport{Running: fp.Running, Phase: fp.Phase, Marked: fp.Marked, Pending: fp.Pending, Unfinished: st.FullUnfinished},
		UncleanShutdown: st.UncleanShutdown, ReplicationSite: st.ReplicationSite,
	}
	if st.Backend == "bdb" {
		rep.Access = st.Access
	}
	rep.LogFiles, rep.LogBytes = logFiles(db.Dir(), st.Backend)
	if lv == nil {
		rep.LastCheckpointNote = "offline: the last checkpoint is known only to a running server"
		rep.BackendCacheNote = "offline: cache figures are those of a running server"
		return rep, nil
	}
	rep.RecordCache = newCacheReport(st.RecordCacheHits, st.RecordCacheMiss)
	rep.RecordCache.Bytes = st.RecordCacheBytes
	rep.Server = &serverReport{
		PID: os.Getpid(), UptimeSeconds: time.Since(lv.started).Round(time.Second).Seconds(),
		ReadOnly: st.ReadOnly, Durability: st.Durability, Connections: lv.conns(),
		Commits: st.Commits, CommittedBytes: st.CommittedBytes, Checkpoints: st.CheckpointsSince,
	}
	ckpt, cache, ok, err := backendFigures(db)
	if err != nil {
		return nil, err
	}
	switch {
	case ok:
		rep.LastCheckpoint, rep.BackendCache = ckpt, cache
		if ckpt == nil {
			rep.LastCheckpointNote = "Berkeley DB reports no checkpoint yet"
		}
	default:
		if !st.LastCheckpoint.IsZero() {
			rep.LastCheckpoint = &checkpointReport{Time: st.LastCheckpoint.UTC()}
		} else {
			rep.LastCheckpointNote = "no checkpoint since the server started"
		}
		if st.Backend == "bdb" {
			rep.BackendCacheNote = "the server opened the database read-only: no Berkeley DB statistics"
		} else {
			rep.BackendCacheNote = "LevelDB reports no cache statistics"
		}
	}
	return rep, nil
}

// logFiles counts the write-ahead log files of dir and their bytes:
// Berkeley DB's log.NNNNNNNNNN, LevelDB's NNNNNN.log.
func logFiles(dir, backend string) (int, int64) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0
	}
	n, size := 0, int64(0)
	for _, e := range ents {
		name := e.Name()
		isLog := strings.HasPrefix(name, "log.")
		if backend != "bdb" {
			isLog = strings.HasSuffix(name, ".log")
		}
		if !isLog || !e.Type().IsRegular() {
			continue
		}
		if fi, err := e.Info(); err == nil {
			n++
			size += fi.Size()
		}
	}
	return n, size
}

func (r *statsReport) writeText(w io.Writer) {
	backend := r.Backend
	if r.Access != "" {
		backend += " (" + r.Access + ")"
	}
	state := "offline (no server: read-only, durability, connections and commits describe a running server)"
	if r.Server != nil {
		state = fmt.Sprintf("live (served by pid %d for %s)", r.Server.PID, time.Duration(r.Server.UptimeSeconds*float64(time.Second)))
	}
	full := "not running"
	switch {
	case r.FullCollection.Phase != "":
		full = fmt.Sprintf("%s phase, %d marked, %d to trace", r.FullCollection.Phase, r.FullCollection.Marked, r.FullCollection.Pending)
	case r.FullCollection.Running:
		full = "running (or an import)"
	}
	if u := r.FullCollection.Unfinished; u != "" && r.FullCollection.Phase == "" {
		full += "; one whose sweep began " + u + " did not finish (`durusbdb gc --full` finishes it)"
	}
	ckpt := "unknown: " + r.LastCheckpointNote
	if c := r.LastCheckpoint; c != nil {
		ckpt = c.Time.Format(time.RFC3339)
		if c.LSN != "" {
			ckpt += " (LSN " + c.LSN + ")"
		}
	}
	unclean := fmt.Sprint(r.UncleanShutdown)
	if r.ReplicationSite {
		unclean = "n/a (a replication site: its in_use is the master's)"
	}
	cache := func(c *cacheReport, note string) string {
		if c == nil {
			return "n/a: " + note
		}
		s := fmt.Sprintf("%d hits, %d misses", c.Hits, c.Misses)
		if c.HitRate != nil {
			s += fmt.Sprintf(", hit rate %.1f%%", *c.HitRate*100)
		}
		if c.Bytes > 0 {
			s += fmt.Sprintf(", %d bytes", c.Bytes)
		}
		return s
	}
	fmt.Fprintf(w, "directory:       %s\nbackend:         %s\nstate:           %s\nobjects:         %d\nnext oid:        %d\ngc queue:        %d\ngc freed:        %d in %d collections\nfull collection: %s\nunclean close:   %s\nlast checkpoint: %s\nlog:             %d files, %d bytes\nbackend cache:   %s\n",
		r.Directory, backend, state, r.Objects, r.NextOID, r.GCQueue, r.GCFreed, r.GCCollections, full, unclean, ckpt, r.LogFiles, r.LogBytes, cache(r.BackendCache, r.BackendCacheNote))
	if s := r.Server; s != nil {
		fmt.Fprintf(w, "record cache:    %s\nconnections:     %d\ncommits:         %d (%d bytes) since the server started\ncheckpoints:     %d since the server started\nread-only:       %v\ndurability:      %s\n",
			cache(r.RecordCache, ""), s.Connections, s.Commits, s.CommittedBytes, s.Checkpoints, s.ReadOnly, s.Durability)
	}
}
