package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/durusbdb/durusbdb/internal/repeatlog"
)

// ckptState is the checkpoint policy's bookkeeping.
type ckptState struct {
	mu        sync.Mutex
	last      time.Time // last checkpoint (or open)
	bytesAt   uint64    // db.bytes at the last checkpoint
	commitsAt uint64    // db.commits at the last checkpoint
	count     uint64    // checkpoints since open
	kick      chan struct{}
}

func (c *ckptState) info() (time.Time, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last, c.count
}

// noteCommit wakes the checkpointer when the commit-count or log-volume
// condition holds.
func (c *ckptState) noteCommit(db *DB) {
	p := db.opts.Checkpoint
	if p.Manual || c.kick == nil {
		return
	}
	c.mu.Lock()
	due := (p.Commits > 0 && db.commits.Load()-c.commitsAt >= uint64(p.Commits)) ||
		(p.logBytes() > 0 && db.bytes.Load()-c.bytesAt >= uint64(p.logBytes()))
	c.mu.Unlock()
	if due {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

func (p CheckpointPolicy) every() time.Duration {
	if p.Every == 0 {
		return DefaultCheckpointEvery
	}
	return p.Every
}

func (p CheckpointPolicy) logBytes() int64 {
	if p.LogBytes == 0 {
		return DefaultCheckpointLogSize
	}
	return p.LogBytes
}

// Checkpoint runs a checkpoint now: dirty pages are written and, unless
// the policy keeps logs, log files no longer needed are removed.
func (db *DB) Checkpoint(ctx context.Context) error {
	if db.closed.Load() {
		return ErrClosed
	}
	if db.opts.ReadOnly {
		return nil
	}
	commits, bytes := db.commits.Load(), db.bytes.Load()
	t0 := time.Now()
	if err := db.store.Checkpoint(ctx, !db.opts.Checkpoint.KeepLogs); err != nil {
		return fmt.Errorf("engine: checkpoint %s: %w", db.dir, db.noteErr(err))
	}
	end := time.Now()
	c := &db.ckpt
	c.mu.Lock()
	c.last = end
	commitsSince, bytesSince := commits-c.commitsAt, bytes-c.bytesAt
	c.commitsAt, c.bytesAt = commits, bytes
	c.count++
	c.mu.Unlock()
	db.log.Debug("engine: checkpoint", "dir", db.dir, "took", end.Sub(t0),
		"commits_since_last", commitsSince, "bytes_since_last", bytesSince)
	return nil
}

// ckptLoop runs checkpoints per Options.Checkpoint.
func (db *DB) ckptLoop() {
	defer db.wg.Done()
	p := db.opts.Checkpoint
	tick := time.Second
	if e := p.every(); e > 0 && e < tick {
		tick = e
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	failed := repeatlog.Failure{Log: db.log, Msg: "engine: background checkpoint"}
	for {
		select {
		case <-db.ctx.Done():
			return
		case <-t.C:
		case <-db.ckpt.kick:
		}
		if db.replica.Load() {
			continue // a replica applies the master's checkpoints; it writes none of its own
		}
		c := &db.ckpt
		c.mu.Lock()
		due := (p.every() > 0 && time.Since(c.last) >= p.every()) ||
			(p.Commits > 0 && db.commits.Load()-c.commitsAt >= uint64(p.Commits)) ||
			(p.logBytes() > 0 && db.bytes.Load()-c.bytesAt >= uint64(p.logBytes()))
		c.mu.Unlock()
		if !due {
			continue
		}
		if err := db.Checkpoint(db.ctx); db.ctx.Err() == nil {
			failed.Note(err, "dir", db.dir)
		}
	}
}
