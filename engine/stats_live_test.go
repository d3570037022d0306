package engine

import (
	"context"
	"testing"
)

// TestStatsLastCheckpointNotOpenTime: before the DB runs a checkpoint,
// Stats reports none (not the time of the open); after one, its time.
func TestStatsLastCheckpointNotOpenTime(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		st, err := db.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if !st.LastCheckpoint.IsZero() || st.CheckpointsSince != 0 {
			t.Fatalf("before any checkpoint: last %v, count %d", st.LastCheckpoint, st.CheckpointsSince)
		}
		if err := db.Checkpoint(context.Background()); err != nil {
			t.Fatal(err)
		}
		if st, _ = db.Stats(); st.LastCheckpoint.IsZero() || st.CheckpointsSince != 1 {
			t.Fatalf("after a checkpoint: last %v, count %d", st.LastCheckpoint, st.CheckpointsSince)
		}
	})
}

// TestFullProgressPhases: FullProgress reports the mark phase with the
// objects marked while a full collection runs, and nothing once it ends.
func TestFullProgressPhases(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		mustAlloc(t, db, 10)
		mustCommit(t, db, rec(0, 1), rec(1), rec(5))
		if p := db.FullProgress(); p.Running || p.Phase != "" {
			t.Fatalf("idle: %+v", p)
		}
		var atMark, atSweep FullProgress
		db.opts.OnFullPhase = func(phase string) {
			switch phase {
			case "marked":
				atMark = db.FullProgress()
			case "sweep":
				if atSweep.Phase == "" {
					atSweep = db.FullProgress()
				}
			}
		}
		if _, err := db.FullCollect(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !atMark.Running || atMark.Phase != "mark" || atMark.Marked != 2 {
			t.Errorf("at the end of marking: %+v, want running, mark, 2 marked", atMark)
		}
		if atSweep.Phase != "sweep" {
			t.Errorf("during the sweep: %+v", atSweep)
		}
		if p := db.FullProgress(); p.Running || p.Phase != "" {
			t.Fatalf("after: %+v", p)
		}
	})
}
