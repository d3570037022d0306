package recovery

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/internal/stream"
)

func quietOpts() Options {
	return Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), CacheSize: 8 << 20}
}

func engineOpts(kind string) engine.Options {
	return engine.Options{
		Create:     true,
		Backend:    kind,
		GC:         engine.GCPolicy{Mode: engine.GCManual},
		Checkpoint: engine.CheckpointPolicy{Manual: true},
		CacheSize:  8 << 20,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func payload(oid uint64) []byte {
	return []byte(fmt.Sprintf("object %d %s", oid, bytes.Repeat([]byte{byte(oid)}, int(oid%300))))
}

// fill creates a database in dir with root 0 referencing n objects and
// returns the records by oid.
func fill(t *testing.T, dir, kind string, n int) map[uint64][]byte {
	t.Helper()
	ctx := context.Background()
	db, err := engine.Open(ctx, dir, engineOpts(kind))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	first, err := db.AllocOIDs(n + 1)
	if err != nil || first != 0 {
		t.Fatalf("AllocOIDs: %d %v", first, err)
	}
	want := map[uint64][]byte{}
	var refs []uint64
	var recs [][]byte
	for i := 1; i <= n; i++ {
		oid := uint64(i)
		refs = append(refs, oid)
		r := record.Build(oid, payload(oid))
		want[oid] = r
		recs = append(recs, r)
	}
	root := record.Build(0, []byte("root"), refs...)
	want[0] = root
	recs = append(recs, root)
	p, err := db.Stage(ctx, recs)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return want
}

// verifyDB opens dir and checks every record of want and the engine check.
func verifyDB(t *testing.T, dir string, want map[uint64][]byte) {
	t.Helper()
	ctx := context.Background()
	o := engineOpts("")
	o.Create = false
	db, err := engine.Open(ctx, dir, o)
	if err != nil {
		t.Fatalf("open restored %s: %v", dir, err)
	}
	defer db.Close()
	for oid, r := range want {
		got, err := db.Load(oid)
		if err != nil {
			t.Fatalf("load %d from %s: %v", oid, dir, err)
		}
		if !bytes.Equal(got, r) {
			t.Fatalf("oid %d differs in %s", oid, dir)
		}
	}
	rep, err := db.Check(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("check %s: %v", dir, rep.Problems)
	}
}

func TestBackupRestoreOffline(t *testing.T) {
	for _, kind := range backend.Compiled() {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			src := t.TempDir()
			want := fill(t, src, kind, 200)
			tmp := t.TempDir()

			// Directory backup.
			bdir := filepath.Join(tmp, "bdir")
			res, err := Backup(ctx, src, bdir, BackupOptions{Options: quietOpts()})
			if err != nil {
				t.Fatal(err)
			}
			if res.Manifest.Backend != kind || res.Manifest.Mode != "offline" || len(res.Manifest.Files) == 0 {
				t.Fatalf("manifest %+v", res.Manifest)
			}
			if _, err := os.Stat(filepath.Join(bdir, ManifestName)); err != nil {
				t.Fatal(err)
			}
			// Stream backup.
			sfile := filepath.Join(tmp, "b.tar.sz")
			if _, err := Backup(ctx, src, sfile, BackupOptions{Options: quietOpts(), Stream: true}); err != nil {
				t.Fatal(err)
			}
			if _, err := Backup(ctx, src, sfile, BackupOptions{Options: quietOpts(), Stream: true}); err == nil {
				t.Fatal("backup over an existing stream file succeeded")
			}
			if ents, _ := os.ReadDir(tmp); len(ents) != 2 {
				t.Fatalf("staging left behind: %v", ents)
			}

			for _, in := range []string{bdir, sfile} {
				dst := filepath.Join(t.TempDir(), "restored")
				rr, err := Restore(ctx, in, dst, RestoreOptions{Options: quietOpts()})
				if err != nil {
					t.Fatalf("restore %s: %v", in, err)
				}
				if kind == "bdb" && (rr.Recovery == nil || rr.Recovery.Kind != KindCatastrophic || !rr.Recovery.Ran) {
					t.Fatalf("restore recovery report %+v", rr.Recovery)
				}
				if _, err := os.Stat(filepath.Join(dst, ManifestName)); err == nil {
					t.Fatal("MANIFEST copied into the database directory")
				}
				verifyDB(t, dst, want)
				// Restoring into a non-empty directory is refused.
				if _, err := Restore(ctx, in, dst, RestoreOptions{Options: quietOpts()}); err == nil {
					t.Fatal("restore into a non-empty directory succeeded")
				}
			}
		})
	}
}

func TestRestoreVerifiesBeforeWriting(t *testing.T) {
	kind := backend.Compiled()[0]
	ctx := context.Background()
	src := t.TempDir()
	fill(t, src, kind, 50)
	tmp := t.TempDir()
	bdir := filepath.Join(tmp, "bdir")
	res, err := Backup(ctx, src, bdir, BackupOptions{Options: quietOpts()})
	if err != nil {
		t.Fatal(err)
	}
	sfile := filepath.Join(tmp, "b.tar.sz")
	if _, err := Backup(ctx, src, sfile, BackupOptions{Options: quietOpts(), Stream: true}); err != nil {
		t.Fatal(err)
	}
	sdata, err := os.ReadFile(sfile)
	if err != nil {
		t.Fatal(err)
	}
	last := res.Manifest.Files[len(res.Manifest.Files)-1]

	cases := []struct {
		name  string
		setup func(t *testing.T) string // returns the input to restore
	}{
		{"dir flipped byte", func(t *testing.T) string {
			d := copyTree(t, bdir)
			p := filepath.Join(d, last.Name)
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0x40
			os.WriteFile(p, b, 0o640)
			return d
		}},
		{"dir missing file", func(t *testing.T) string {
			d := copyTree(t, bdir)
			os.Remove(filepath.Join(d, last.Name))
			return d
		}},
		{"dir extra file", func(t *testing.T) string {
			d := copyTree(t, bdir)
			os.WriteFile(filepath.Join(d, "intruder.db"), []byte("x"), 0o640)
			return d
		}},
		{"dir bad manifest", func(t *testing.T) string {
			d := copyTree(t, bdir)
			p := filepath.Join(d, ManifestName)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-4], 0o640)
			return d
		}},
		{"stream truncated", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "s")
			os.WriteFile(p, sdata[:len(sdata)-30], 0o640)
			return p
		}},
		{"stream bad chunk checksum", func(t *testing.T) string {
			// Bytes 14..17 are the CRC of the first data chunk (after the
			// 10-byte stream identifier and the 4-byte chunk header). A
			// flipped bit inside compressed data is not always a change:
			// a copy from a run of zeros decodes the same from a
			// neighbouring offset.
			p := filepath.Join(t.TempDir(), "s")
			b := bytes.Clone(sdata)
			b[14] ^= 0x01
			os.WriteFile(p, b, 0o640)
			return p
		}},
		{"stream altered member", func(t *testing.T) string {
			// A well-formed stream whose member differs from the manifest.
			return alteredStream(t, sdata)
		}},
		{"stream garbage", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "s")
			os.WriteFile(p, []byte("this is not a backup"), 0o640)
			return p
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := c.setup(t)
			dst := filepath.Join(t.TempDir(), "restored")
			_, err := Restore(ctx, in, dst, RestoreOptions{Options: quietOpts()})
			if err == nil {
				t.Fatal("restore of a damaged backup succeeded")
			}
			if !errors.Is(err, ErrBadBackup) {
				t.Fatalf("error %v does not match ErrBadBackup", err)
			}
			if _, serr := os.Stat(dst); serr == nil {
				t.Fatalf("restore created %s before verifying (error %v)", dst, err)
			}
		})
	}
}

func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if err := os.Mkdir(dst, 0o750); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestManifestRoundTrip(t *testing.T) {
	m := &Manifest{Backend: "bdb", Mode: "hot", Source: "/x", Extra: []string{"logs log.0000000001 log.0000000002"},
		Files: []ManifestFile{{Name: "meta.db", Size: 3, SHA256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"}}}
	got, err := ParseManifest(m.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Marshal(), m.Marshal()) {
		t.Fatalf("round trip:\n%s\n%s", got.Marshal(), m.Marshal())
	}
	for _, bad := range []string{
		"", "durusbdb-backup 2\nend 0\n",
		"durusbdb-backup 1\nbackend bdb\nfile 00 1 meta.db\nend 1\n",
		"durusbdb-backup 1\nbackend bdb\nfile 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae 3 ../meta.db\nend 1\n",
		"durusbdb-backup 1\nbackend bdb\nfile 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae 3 meta.db\nend 2\n",
		"durusbdb-backup 1\nbackend bdb\nfile 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae 3 meta.db\n",
	} {
		if _, err := ParseManifest([]byte(bad)); !errors.Is(err, ErrBadBackup) {
			t.Errorf("ParseManifest(%q) = %v, want ErrBadBackup", bad, err)
		}
	}
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// alteredStream re-encodes the backup stream with one byte of the last
// member changed (and the manifest untouched).
func alteredStream(t *testing.T, sdata []byte) string {
	t.Helper()
	tr := tar.NewReader(stream.NewReader(bytes.NewReader(sdata)))
	p := filepath.Join(t.TempDir(), "s")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := stream.NewWriter(f)
	tw := tar.NewWriter(zw)
	var members [][]byte
	var hdrs []*tar.Header
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		hdrs = append(hdrs, h)
		members = append(members, b)
	}
	last := members[len(members)-1]
	last[len(last)/2] ^= 0x40
	for i, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(members[i])
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}
