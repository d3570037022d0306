package stream

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/golang/snappy"
)

func compress(t testing.TB, data []byte, chunks int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	step := max(1, len(data)/max(1, chunks))
	for off := 0; off < len(data); off += step {
		if _, err := w.Write(data[off:min(off+step, len(data))]); err != nil {
			t.Fatal(err)
		}
		if off%(3*step) == 0 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if w.Written() != uint64(len(data)) {
		t.Fatalf("Written = %d, want %d", w.Written(), len(data))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	return buf.Bytes()
}

func testData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		if i > 8 && r.IntN(2) == 0 {
			b[i] = b[i-1-r.IntN(8)]
		} else {
			b[i] = byte(r.IntN(256))
		}
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 100, 65536, 65537, 1 << 20} {
		data := testData(n, uint64(n))
		z := compress(t, data, 7)
		got, err := io.ReadAll(NewReader(bytes.NewReader(z)))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: err %v, equal %v", n, err, bytes.Equal(got, data))
		}
		// Any snappy framing reader reads it (it skips the end marker).
		got, err = io.ReadAll(snappy.NewReader(bytes.NewReader(z)))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes via snappy.Reader: err %v", n, err)
		}
	}
}

func TestTruncated(t *testing.T) {
	data := testData(300000, 9)
	z := compress(t, data, 10)
	for cut := 0; cut < len(z); cut += 997 {
		_, err := io.ReadAll(NewReader(bytes.NewReader(z[:cut])))
		if err == nil {
			t.Fatalf("stream cut at %d of %d read without error", cut, len(z))
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("cut at %d: %v", cut, err)
		}
	}
	// Trailing garbage.
	_, err := io.ReadAll(NewReader(bytes.NewReader(append(bytes.Clone(z), 0, 0, 0, 0))))
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("data after the end marker: %v", err)
	}
	// A flipped byte anywhere.
	for i := 0; i < len(z); i += 1009 {
		bad := bytes.Clone(z)
		bad[i] ^= 0x40
		if _, err := io.ReadAll(NewReader(bytes.NewReader(bad))); err == nil {
			t.Fatalf("flip at %d read without error", i)
		}
	}
}

func TestRawReader(t *testing.T) {
	data := testData(100000, 5)
	var buf bytes.Buffer
	zw := snappy.NewBufferedWriter(&buf)
	zw.Write(data)
	zw.Close()
	got, err := io.ReadAll(NewRawReader(bytes.NewReader(buf.Bytes())))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("raw reader: %v", err)
	}
	if _, err := io.ReadAll(NewReader(bytes.NewReader(buf.Bytes()))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("strict reader on a stream without end marker: %v", err)
	}
}

// FuzzReader: arbitrary bytes give an error or data, never a panic.
func FuzzReader(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte(streamIdentifier))
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Write([]byte("hello, durus hello, durus hello"))
	w.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		io.ReadAll(NewReader(bytes.NewReader(b)))
		io.ReadAll(NewRawReader(bytes.NewReader(b)))
		io.ReadAll(io.LimitReader(NewReader(bytes.NewReader(b)), 1<<20))
	})
}
