package leveldb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/jmhodges/levigo"

	"github.com/durusbdb/durusbdb/internal/repeatlog"
	"github.com/durusbdb/durusbdb/kv"
)

// This file ties the redo log (wal.go) to the store: what a commit adds to
// it, what Flush writes, the checkpoints that let the ring be reused, the
// replay at open, and the commit markers that make the replay safe when
// LevelDB lost writes that came before ones it kept.

// markerPrefix is the key prefix of commit markers: `\x00` ‖ seq (8 bytes,
// big-endian) → the commit's keys (each uvarint length ‖ full key). Every
// commit's batch holds its marker, so a marker present after a crash says
// the whole commit is in LevelDB, and which keys it wrote. Markers below the
// redo log's start are deleted by the checkpoints. No bucket uses prefix 0.
const markerPrefix = 0x00

// redoConfig sizes the redo log and paces its checkpoints.
type redoConfig struct {
	size  int64         // file size at creation
	every time.Duration // background checkpoint period; 0: none (tests)
}

func defaultRedoConfig() redoConfig {
	return redoConfig{size: walDefaultSize, every: 200 * time.Millisecond}
}

func markerKey(seq uint64) []byte {
	k := make([]byte, 9)
	k[0] = markerPrefix
	binary.BigEndian.PutUint64(k[1:], seq)
	return k
}

// walWants reports whether a commit of about size bytes of keys and values
// should be encoded as a redo record: not when the queue has been dropped
// (the next Flush checkpoints anyway), nor when it would not fit in the
// queue (a bulk import's batches: encoding them would copy every byte for
// nothing). Called by the writer slot's holder.
func (s *Store) walWants(size int) bool {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	return !s.walGap && int64(len(s.walRecs)+walRecHdrLen+size) <= (s.wal.size-walDataStart)/2
}

// walSkip prepares a commit that gets no redo record: the queue is
// dropped (the next Flush checkpoints instead), and it reports whether the
// commit still needs its marker, which it does only while the ring holds
// records a replay could apply: a bulk import's batches, after the first,
// carry none. (Markers are keys at the start of the key space: in every
// batch they would make every table LevelDB writes overlap every other,
// and an import's compactions rewrite everything: migrate ran at half its
// speed.) The queue is dropped first, so no record older than this commit
// can reach the ring after the check. Called by the writer slot's holder.
func (s *Store) walSkip() (mark bool) {
	s.walMu.Lock()
	s.walGap = true
	s.walRecs, s.walEnds = s.walRecs[:0], s.walEnds[:0]
	s.walMu.Unlock()
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	return s.wal.last >= s.wal.hdr.startSeq
}

// walSkipped notes seq, written to LevelDB without a redo record, as the
// last commit: the next Flush's checkpoint covers it.
func (s *Store) walSkipped(seq uint64) {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	s.walLast = seq
	s.walGap = true
}

// walAdd queues the redo record of the commit seq (just written to
// LevelDB, after walWants said yes) for the next Flush. Called by the
// writer slot's holder, so records queue in seq order.
func (s *Store) walAdd(seq uint64, payload []byte) {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	s.walLast = seq
	if s.walGap { // a failed flush dropped the queue meanwhile
		return
	}
	// It fits: walWants said so for an overlay size that exceeds the
	// payload, and only a flush touched the queue since, to empty it.
	s.walRecs = appendWALRecord(s.walRecs, s.walEpoch, seq, payload)
	s.walEnds = append(s.walEnds, len(s.walRecs))
}

// flushWAL makes every commit written to LevelDB so far durable: the queued
// records written to the redo log with one fdatasync, or, when the queue
// was dropped or the ring is full, a checkpoint. A failure drops the queue
// (the next flush checkpoints), so records in the ring always follow one
// another. Callers hold s.flushMu.
func (s *Store) flushWAL() error {
	s.walMu.Lock()
	if s.walGap {
		last := s.walLast
		s.walGap = false
		s.walRecs, s.walEnds = s.walRecs[:0], s.walEnds[:0]
		s.walMu.Unlock()
		return s.failedFlush(s.checkpointLocked(last))
	}
	recs, ends, last := s.walRecs, s.walEnds, s.walLast
	s.walRecs, s.walEnds = s.walRecsSpare[:0], s.walEndsSpare[:0]
	s.walRecsSpare, s.walEndsSpare = recs, ends
	s.walMu.Unlock()
	if len(ends) == 0 {
		return nil
	}
	if first := binary.LittleEndian.Uint64(recs[16:]); first != s.wal.last+1 || last != s.wal.last+uint64(len(ends)) {
		// Cannot happen: every path that loses records sets walGap.
		return s.failedFlush(fmt.Errorf("queued redo records %d..%d do not follow %d", first, last, s.wal.last))
	}
	err := s.wal.append(recs, ends, last)
	if errors.Is(err, errWALFull) {
		s.walFulls.Add(1)
		return s.failedFlush(s.checkpointLocked(last))
	}
	if err != nil {
		return s.failedFlush(err)
	}
	if s.wal.used() > (s.wal.size-walDataStart)/4 {
		select {
		case s.bgKick <- struct{}{}:
		default:
		}
	}
	return nil
}

// failedFlush returns err; when it is an error, the queue is dropped and
// the next flush checkpoints instead of writing records that would not
// follow the ring's last.
func (s *Store) failedFlush(err error) error {
	if err != nil {
		s.walMu.Lock()
		s.walGap = true
		s.walRecs, s.walEnds = s.walRecs[:0], s.walEnds[:0]
		s.walMu.Unlock()
	}
	return err
}

// used returns the bytes of the ring between its start and its head.
func (w *walFile) used() int64 {
	if w.lap == w.tailLap {
		return w.head - int64(w.hdr.startOff)
	}
	return w.size - int64(w.hdr.startOff) + w.head - walDataStart
}

// checkpointLocked makes every commit up to seq last durable in LevelDB
// itself (every log file and the directory fsynced) and empties the ring.
// Callers hold s.flushMu.
func (s *Store) checkpointLocked(last uint64) error {
	if err := s.logSync.syncAll(); err != nil {
		return err
	}
	return s.wal.empty(last)
}

// fullCheckpoint makes every commit written so far durable in LevelDB,
// empties the ring and deletes every marker: Checkpoint and Close.
func (s *Store) fullCheckpoint() error {
	s.flushMu.Lock()
	s.walMu.Lock()
	last := s.walLast
	s.walGap = false
	s.walRecs, s.walEnds = s.walRecs[:0], s.walEnds[:0]
	s.walMu.Unlock()
	err := s.failedFlush(s.checkpointLocked(last))
	s.flushMu.Unlock()
	if err != nil {
		return err
	}
	return s.deleteMarkers(last + 1)
}

// backgroundCheckpoint moves the ring's start past the records LevelDB has
// made durable: it notes the last record in the ring and the head, fsyncs
// LevelDB's logs without holding flushMu (commits go on meanwhile), then
// writes the new start, and deletes the markers below it.
func (s *Store) backgroundCheckpoint() error {
	s.flushMu.Lock()
	last, off, lap, start := s.wal.last, s.wal.head, s.wal.lap, s.wal.hdr.startSeq
	s.flushMu.Unlock()
	if last+1 > start {
		if err := s.logSync.syncAll(); err != nil {
			return err
		}
		s.flushMu.Lock()
		var err error
		if s.wal.hdr.startSeq < last+1 { // no checkpoint went further meanwhile
			err = s.wal.startAt(last+1, off, lap)
		}
		start = s.wal.hdr.startSeq
		s.flushMu.Unlock()
		if err != nil {
			return err
		}
		s.bgCheckpoints.Add(1)
	}
	s.markMu.Lock()
	done := s.markersBelow >= start
	s.markMu.Unlock()
	if !done {
		return s.deleteMarkers(start)
	}
	return nil
}

// deleteMarkers deletes the markers of seqs below below (a write without
// sync: a marker that survives a crash below the ring's start is ignored).
// It deletes them by key from the list of markers written, never with an
// iterator: a seek past the last marker would read the next table block,
// which for a big record is as big as the record (a background read of
// every such block grew a hostile test's server by 10 MB).
func (s *Store) deleteMarkers(below uint64) error {
	s.markMu.Lock()
	defer s.markMu.Unlock()
	n := 0
	for n < len(s.marked) && s.marked[n] < below {
		n++
	}
	if n > 0 {
		wb := levigo.NewWriteBatch()
		defer wb.Close()
		for _, seq := range s.marked[:n] {
			wb.Delete(markerKey(seq))
		}
		if err := s.db.Write(s.wNoSync, wb); err != nil {
			return s.mapError("delete commit markers in", err)
		}
		s.marked = append(s.marked[:0], s.marked[n:]...)
	}
	s.markersBelow = below
	return nil
}

// noteMarker records that the marker of seq was written (seqs come in
// ascending order: the writer slot's holder, or the replay).
func (s *Store) noteMarker(seq uint64) {
	s.markMu.Lock()
	s.marked = append(s.marked, seq)
	s.markMu.Unlock()
}

// runCheckpoints is the background checkpointer of a writable store: every
// cfg.every, or when a Flush finds the ring a quarter full.
func (s *Store) runCheckpoints(every time.Duration) {
	defer close(s.bgDone)
	t := time.NewTicker(every)
	defer t.Stop()
	failed := repeatlog.Failure{Log: s.logger, Msg: "leveldb: background checkpoint failed; commits stay durable through the redo log"}
	for {
		select {
		case <-s.bgQuit:
			return
		case <-t.C:
		case <-s.bgKick:
		}
		s.closeMu.RLock()
		var err error
		if !s.closed.Load() {
			err = s.backgroundCheckpoint()
		}
		s.closeMu.RUnlock()
		failed.Note(err, "dir", s.dir)
	}
}

// stopCheckpoints ends the background checkpointer, once.
func (s *Store) stopCheckpoints() {
	s.bgOnce.Do(func() {
		if s.bgQuit != nil {
			close(s.bgQuit)
			<-s.bgDone
		}
	})
}

// openRedo reads the redo log, replays what LevelDB lacks, and (writable)
// starts a new epoch of the ring and the background checkpointer.
func (s *Store) openRedo(cfg redoConfig) error {
	path := filepath.Join(s.dir, walName)
	st, err := readWAL(path)
	if err != nil {
		if errors.Is(err, errWALCorrupt) {
			return fmt.Errorf("leveldb: open %s: %w: %w", s.dir, err, kv.ErrCorrupt)
		}
		return fmt.Errorf("leveldb: open %s: read %s: %w", s.dir, walName, err)
	}
	last, err := s.replay(st)
	if err != nil {
		return err
	}
	if s.readOnly {
		return nil
	}
	// The new epoch forgets the ring's records: they must be durable in
	// LevelDB first. An empty ring (a clean close) forgets nothing, and the
	// open costs no fsync.
	if len(st.records) > 0 {
		if err := s.logSync.syncAll(); err != nil {
			return fmt.Errorf("leveldb: open %s: %w", s.dir, err)
		}
	}
	var w *walFile
	if st.fresh {
		w, err = createWAL(path, cfg.size)
	} else {
		w, err = openWALFile(path, int64(st.hdr.size))
	}
	if err == nil {
		if err = w.reset(st.hdr, last+1); err != nil {
			w.close()
		}
	}
	if err != nil {
		return fmt.Errorf("leveldb: open %s: redo log: %w", s.dir, err)
	}
	s.wal, s.walEpoch, s.nextSeq, s.walLast = w, w.hdr.epoch, last+1, last
	if err := s.deleteMarkers(last + 1); err != nil {
		return err
	}
	if cfg.every > 0 {
		s.bgQuit, s.bgDone, s.bgKick = make(chan struct{}), make(chan struct{}), make(chan struct{}, 1)
		go s.runCheckpoints(cfg.every)
	}
	return nil
}

// replay applies the redo records LevelDB lacks and returns the highest
// commit seq known. A record whose marker is present is in LevelDB already.
// One that is missing is applied, except for the keys a later commit that
// LevelDB kept has written (LevelDB can lose an older write and keep a
// newer one: a rotated log file not yet synced): for those the later value
// is the right one.
func (s *Store) replay(st walState) (uint64, error) {
	start := st.hdr.startSeq
	present := map[uint64]bool{}
	var found []uint64            // every marker in LevelDB, then every one the replay writes
	latest := map[string]uint64{} // key → the highest present seq that wrote it
	var maxPresent uint64
	ro := levigo.NewReadOptions()
	ro.SetVerifyChecksums(true)
	it := s.db.NewIterator(ro)
	for it.Seek([]byte{markerPrefix}); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != 9 || k[0] != markerPrefix {
			break
		}
		seq := binary.BigEndian.Uint64(k[1:])
		maxPresent = max(maxPresent, seq)
		found = append(found, seq)
		if seq < start {
			continue
		}
		present[seq] = true
		for p := it.Value(); len(p) > 0; {
			key, rest, err := walBytes(p)
			if err != nil {
				it.Close()
				ro.Close()
				return 0, fmt.Errorf("leveldb: open %s: commit marker %d: %v: %w", s.dir, seq, err, kv.ErrCorrupt)
			}
			latest[string(key)] = max(latest[string(key)], seq)
			p = rest
		}
	}
	err := it.GetError()
	it.Close()
	ro.Close()
	if err != nil {
		return 0, s.mapError("list commit markers in", err)
	}
	last := maxPresent // the highest seq known: a marker, a record, or the ring's start - 1
	if start > 0 {
		last = max(last, start-1)
	}
	replayed, kept := 0, 0
	for _, r := range st.records {
		last = max(last, r.seq)
		if present[r.seq] {
			continue
		}
		ops, err := decodeWALOps(r.payload)
		if err != nil {
			return 0, fmt.Errorf("leveldb: open %s: %s record of commit %d: %v: %w", s.dir, walName, r.seq, err, kv.ErrCorrupt)
		}
		wb := levigo.NewWriteBatch()
		var keys []byte
		for _, op := range ops {
			keys = binary.AppendUvarint(keys, uint64(len(op.key)))
			keys = append(keys, op.key...)
			if latest[string(op.key)] > r.seq {
				kept++
				continue
			}
			if op.del {
				wb.Delete(op.key)
			} else {
				wb.Put(op.key, op.val)
			}
		}
		wb.Put(markerKey(r.seq), keys)
		err = s.db.Write(s.wNoSync, wb)
		wb.Close()
		if err != nil {
			return 0, s.mapError(fmt.Sprintf("replay commit %d from %s into", r.seq, walName), err)
		}
		found = append(found, r.seq)
		replayed++
	}
	slices.Sort(found)
	s.markMu.Lock()
	s.marked = found
	s.markMu.Unlock()
	missing := 0
	if n := len(st.records); n > 0 {
		for seq := st.records[n-1].seq + 1; seq < maxPresent; seq++ {
			if !present[seq] {
				missing++
			}
		}
	}
	if replayed > 0 || missing > 0 {
		s.logger.Warn("leveldb: replayed commits from the redo log that LevelDB had lost",
			"dir", s.dir, "replayed", replayed, "records", len(st.records), "keys_kept_newer", kept,
			"unacknowledged_commits_lost_before_kept_ones", missing)
	}
	return last, nil
}
