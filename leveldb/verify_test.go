package leveldb

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/golang/snappy"
)

// TestSnappyDecode checks the verifier's snappy decoder against
// github.com/golang/snappy's encoder.
func TestSnappyDecode(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 300; i++ {
		n := r.IntN(70000)
		src := make([]byte, n)
		alpha := 1 + r.IntN(255)
		for j := range src {
			if j > 10 && r.IntN(3) == 0 {
				src[j] = src[j-1-r.IntN(10)]
			} else {
				src[j] = byte(r.IntN(alpha))
			}
		}
		enc := snappy.Encode(nil, src)
		dec, err := snappyDecode(enc)
		if err != nil || !bytes.Equal(dec, src) {
			t.Fatalf("case %d (%d bytes): decode err %v, equal %v", i, n, err, bytes.Equal(dec, src))
		}
	}
}

// FuzzVerify feeds arbitrary bytes to the table, log and snappy parsers:
// they must report errors, never panic.
func FuzzVerify(f *testing.F) {
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 100))
	f.Add(snappy.Encode(nil, []byte("hello hello hello hello")))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "000001.ldb"), b, 0o644)
		os.WriteFile(filepath.Join(dir, "000002.log"), b, 0o644)
		os.WriteFile(filepath.Join(dir, "MANIFEST-000003"), b, 0o644)
		Verify(dir, -1) // no CURRENT: every file is checked
		os.WriteFile(filepath.Join(dir, "CURRENT"), []byte("MANIFEST-000003\n"), 0o644)
		Verify(dir, -1) // the MANIFEST parsed for the live files
		readLiveFiles(dir)
		snappyDecode(b)
		blockEntries(b, func(k, v []byte) error { return nil })
	})
}
