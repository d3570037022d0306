package leveldb

import (
	"encoding/binary"
	"path/filepath"
	"time"

	"github.com/jmhodges/levigo"

	"github.com/durusbdb/durusbdb/kv"
)

// LogSyncStats returns how many older log files and directory fsyncs the
// store's log syncer has done.
func LogSyncStats(s *Store) (oldLogs, dirs int) {
	s.logSync.mu.Lock()
	defer s.logSync.mu.Unlock()
	return s.logSync.oldSyncs, s.logSync.dirSyncs
}

// CurrentLogSyncs returns how many times Flush fsynced the current log file.
func CurrentLogSyncs(s *Store) int {
	s.logSync.mu.Lock()
	defer s.logSync.mu.Unlock()
	return s.logSync.curSyncs
}

// OpenStoreRedo opens like OpenStore with a redo log of size bytes (at
// creation) and background checkpoints every every (0: none).
func OpenStoreRedo(opts kv.Options, size int64, every time.Duration) (*Store, error) {
	return openStore(opts, redoConfig{size: size, every: every})
}

// NextSeq returns the seq the store's next commit takes.
func NextSeq(s *Store) uint64 {
	s.writer <- struct{}{}
	defer func() { <-s.writer }()
	return s.nextSeq
}

// RedoLog reads the redo log in dir: the seq its ring starts at and the
// seqs of the records a replay would find.
func RedoLog(dir string) (start uint64, seqs []uint64, err error) {
	st, err := readWAL(filepath.Join(dir, walName))
	for _, r := range st.records {
		seqs = append(seqs, r.seq)
	}
	return st.hdr.startSeq, seqs, err
}

// RedoStats returns how many flushes found the ring full and how many
// background checkpoints moved its start.
func RedoStats(s *Store) (fulls, background uint64) {
	return s.walFulls.Load(), s.bgCheckpoints.Load()
}

// Marker returns the LevelDB key and value of the commit marker of seq
// for a commit that wrote keys (full LevelDB keys, prefix included).
func Marker(seq uint64, keys ...[]byte) (k, v []byte) {
	for _, key := range keys {
		v = binary.AppendUvarint(v, uint64(len(key)))
		v = append(v, key...)
	}
	return markerKey(seq), v
}

// RedoFile is the redo log's file name.
const RedoFile = walName

// CopyFile copies src to a new file dst (as the read-only open's private
// copy does).
var CopyFile = copyFile

// Marked reports whether the commit marker of seq is in LevelDB.
func Marked(s *Store, seq uint64) (bool, error) {
	ro := levigo.NewReadOptions()
	defer ro.Close()
	v, err := s.db.Get(ro, markerKey(seq))
	return v != nil, err
}
