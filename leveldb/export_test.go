package leveldb

// LogSyncStats returns how many older log files and directory fsyncs the
// store's log syncer has done.
func LogSyncStats(s *Store) (oldLogs, dirs int) {
	s.logSync.mu.Lock()
	defer s.logSync.mu.Unlock()
	return s.logSync.oldSyncs, s.logSync.dirSyncs
}
