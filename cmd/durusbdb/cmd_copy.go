package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/internal/dbdir"
	"github.com/durusbdb/durusbdb/internal/progress"
	"github.com/durusbdb/durusbdb/internal/staging"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/spf13/pflag"
)

// copyBatchBytes bounds one destination transaction of copy.
const copyBatchBytes = 8 << 20

// copyOpens are the opens of copy's destination: the store it fills and
// the engine open that checks the result (fields so that a test sees the
// options they are given); nil for the production ones (backend.Open,
// engine.Open).
type copyOpens struct {
	openStore  func(o kv.Options, kind string) (kv.Store, string, error)
	openEngine func(ctx context.Context, dir string, o engine.Options) (*engine.DB, error)
}

func copyCommand() *command { return newCopyCommand(copyOpens{}) }

// newCopyCommand is the copy command opening its destination with opens.
func newCopyCommand(opens copyOpens) *command {
	if opens.openStore == nil {
		opens.openStore = backend.Open
	}
	if opens.openEngine == nil {
		opens.openEngine = engine.Open
	}
	c := &command{
		name:    "copy",
		summary: "copy a whole database into an empty directory, on the same or the other backend",
		usage:   "durusbdb copy [--backend bdb|leveldb] [--cache-size SIZE] SRC DST",
		example: "durusbdb copy --backend leveldb /var/lib/durusbdb /var/lib/durusbdb-ldb",
	}
	c.setup = func(fs *pflag.FlagSet) runFunc {
		// The shared database flags but --dir: the directories are the
		// arguments (so neither the help nor DURUSBDB_DIR offers a --dir).
		var f dbFlags
		fs.StringVar(&f.backend, "backend", "", "backend of the new database at DST: bdb or leveldb (default: bdb when compiled in)")
		fs.StringVar(&f.cacheSize, "cache-size", "64MiB", "cache size of SRC and, separately, of DST (bytes, or with KiB/MiB/GiB); a Berkeley DB DST needs room for region files about this large: lower it on a small file system")
		fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
		return func(ctx context.Context, cio cmdIO, args []string) error {
			if fs.NArg() != 2 {
				return &usageError{"give SRC and DST directories"}
			}
			dstKind := f.backend
			f.backend = ""
			f.dir = fs.Arg(0)
			dstDir := fs.Arg(1)
			log, err := f.logger(cio.stderr)
			if err != nil {
				return err
			}
			cache, err := parseSize(f.cacheSize)
			if err != nil {
				return &usageError{"--cache-size: " + err.Error()}
			}
			src, err := f.open(ctx, cio, engine.Options{ReadOnly: true, GC: engine.GCPolicy{Mode: engine.GCManual}, Checkpoint: engine.CheckpointPolicy{Manual: true}})
			if err != nil {
				return err
			}
			defer src.Close()
			st, err := src.Stats()
			if err != nil {
				return err
			}
			if _, err := staging.Settle(dstDir, log); err != nil {
				return fmt.Errorf("destination %s: %w", dstDir, err)
			}
			if _, err := os.Lstat(dstDir); err == nil {
				if found, err := backend.Detect(dstDir); err != nil || found != "" {
					if err == nil {
						err = fmt.Errorf("destination %s already holds a %s database", dstDir, found)
					}
					return err
				}
			} else if !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("destination %s: %w", dstDir, err)
			} else if err := os.MkdirAll(filepath.Dir(filepath.Clean(dstDir)), 0o755); err != nil {
				return fmt.Errorf("destination %s: %w", dstDir, err)
			}
			// Built in a flocked staging directory beside DST (inside it
			// when it exists: a mount point) and moved in when complete:
			// a copy killed or failed half way leaves DST as it was (no
			// partial database a server would serve), and the next copy
			// there removes the staging directory (and what a move killed
			// half way had put into DST). A DST that does not exist yet
			// appears with one rename.
			abs, err := filepath.Abs(dstDir)
			if err != nil {
				return fmt.Errorf("destination %s: %w", dstDir, err)
			}
			sd, err := staging.For(abs, "."+filepath.Base(abs)+".copy-", "copy", 0o755, log)
			if err != nil {
				return fmt.Errorf("copy: staging directory for %s: %w", dstDir, err)
			}
			defer sd.Release()
			work := filepath.Join(sd.Path, "db")
			if err := os.Mkdir(work, 0o755); err != nil {
				return fmt.Errorf("copy: %w", err)
			}
			dst, kind, err := opens.openStore(kv.Options{Dir: work, Create: true, Buckets: engine.Buckets(st.Access == "hash", 0), CacheSize: cache, Logger: log}, dstKind)
			if err != nil {
				return fmt.Errorf("copy %s to %s: %w (%s left as it was)%s", f.dir, dstDir, err, dstDir, copyCacheHint(err, cache))
			}
			bar := progress.New(cio.stderr, log, "copy to "+dstDir, "records", 0)
			n, err := copyStore(ctx, src.Store(), dst, bar)
			bar.Done()
			if err == nil {
				err = dst.Flush()
			}
			if cerr := dst.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("copy %s to %s: %w (%s left as it was)", f.dir, dstDir, err, dstDir)
			}
			// Open the copy once with the engine: it checks the layout and records the writer.
			// The whole cache to the backend, as for SRC (dbFlags.open).
			out, err := opens.openEngine(ctx, work, engine.Options{GC: engine.GCPolicy{Mode: engine.GCManual}, CacheSize: cache, RecordCache: -1, Logger: log})
			if err != nil {
				return fmt.Errorf("open the copy of %s: %w (%s left as it was)%s", f.dir, err, dstDir, copyCacheHint(err, cache))
			}
			size, _ := out.Size()
			if err := out.Close(); err != nil {
				return err
			}
			if err := staging.MoveInto(work, dstDir, dbdir.MoveRank); err != nil {
				return fmt.Errorf("copy %s to %s: %w", f.dir, dstDir, err)
			}
			fmt.Fprintf(cio.stdout, "copied %s (%s) to %s (%s): %d keys, %d objects\n", f.dir, st.Backend, dstDir, kind, n, size)
			return nil
		}
	}
	return c
}

// copyCacheHint is what to add to the error err of opening copy's
// destination: for a lack of room, that --cache-size (cache bytes, 0 the
// default) sizes the destination's environment too.
func copyCacheHint(err error, cache int64) string {
	if !errors.Is(err, kv.ErrNoSpace) {
		return ""
	}
	if cache <= 0 {
		cache = kv.DefaultCacheSize
	}
	return fmt.Sprintf("; --cache-size (%d MiB) is DST's cache too: a smaller one needs less room", cache>>20)
}

// copyStore copies every bucket of src into dst key by key, in bounded
// transactions, leaving out the meta keys that belong to one open or one
// backend (in_use, backend): one read transaction of src per bucket.
func copyStore(ctx context.Context, src, dst kv.Store, bar *progress.Reporter) (int64, error) {
	var n int64
	for _, b := range engine.Buckets(false, 0) {
		err := kv.View(ctx, src, func(rt kv.Txn) error {
			m, err := copyBucket(ctx, rt, b.Name, dst, bar)
			n += m
			return err
		})
		if err != nil {
			return n, fmt.Errorf("bucket %s: %w", b.Name, err)
		}
	}
	return n, nil
}

// copyBucket copies bucket from the read transaction rt into dst in
// transactions of at most copyBatchBytes, leaving out the meta keys that
// belong to one open or one backend (in_use, backend); bar, if set, counts
// each key. It returns the keys copied.
func copyBucket(ctx context.Context, rt kv.Txn, bucket string, dst kv.Store, bar *progress.Reporter) (int64, error) {
	cur, err := rt.Cursor(bucket)
	if err != nil {
		return 0, err
	}
	defer cur.Close()
	var n int64
	ok := cur.First()
	for ok {
		wt, err := dst.Begin(ctx, true)
		if err != nil {
			return n, err
		}
		size := 0
		for ; ok && size < copyBatchBytes; ok = cur.Next() {
			k, v := cur.Key(), cur.Value()
			if bucket == engine.BucketMeta && (string(k) == "in_use" || string(k) == "backend") {
				continue
			}
			if err := wt.Put(bucket, k, v); err != nil {
				wt.Abort()
				return n, err
			}
			size += len(k) + len(v)
			n++
			if bar != nil {
				bar.Add(1, int64(len(k)+len(v)))
			}
		}
		if err := wt.Commit(kv.NoSync); err != nil {
			return n, err
		}
		if err := ctx.Err(); err != nil {
			return n, err
		}
	}
	return n, cur.Err()
}
