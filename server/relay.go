package server

import "sync/atomic"

// RemoveRelay forwards the engine's removal notifications
// (engine.Options.OnRemove) and, on a replica, its replicated commits
// (engine.Options.OnReplicated) to a Server created after the engine was
// opened. What is reported before Attach concerns no open connection and
// is dropped. The zero value is ready to use.
type RemoveRelay struct{ p atomic.Pointer[Server] }

// OnRemove is the function to pass as engine.Options.OnRemove.
func (r *RemoveRelay) OnRemove(oids []uint64) {
	if s := r.p.Load(); s != nil {
		s.InvalidateRemoved(oids)
	}
}

// OnReplicated is the function to pass as engine.Options.OnReplicated: a
// replica's clients are told of commits applied by replication as of a
// commit's own (Server.InvalidateReplicated).
func (r *RemoveRelay) OnReplicated(oids []uint64) {
	if s := r.p.Load(); s != nil {
		s.InvalidateReplicated(oids)
	}
}

// Attach directs later removals to s (I2).
func (r *RemoveRelay) Attach(s *Server) { r.p.Store(s) }
