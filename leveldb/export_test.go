package leveldb

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
