package engine

// FullProgress describes the progress of a running full collection.
type FullProgress struct {
	// Running: a full collection (or an import) owns the objects.
	Running bool
	// Phase is "mark" (tracing from the root), "sweep" (deleting the
	// unmarked objects), or "" when no collection is between its first
	// mark and its sweep (not running, or an import).
	Phase string
	// Marked counts the objects found reachable so far.
	Marked int
	// Pending counts the marked objects whose references are not yet
	// traced.
	Pending int
}

// FullProgress returns the progress of a running full collection (the
// zero value with Running false when none runs).
func (db *DB) FullProgress() FullProgress {
	p := FullProgress{Running: db.full.running.Load()}
	f := &db.full
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.active {
		p.Phase = "mark"
		if f.sweeping {
			p.Phase = "sweep"
		}
		p.Marked = len(f.marked)
		p.Pending = len(f.grey)
	}
	return p
}
