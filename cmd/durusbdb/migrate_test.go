package main

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

func frames(recs ...[]byte) []byte {
	var b []byte
	for _, r := range recs {
		b = binary.BigEndian.AppendUint32(b, uint32(len(r)))
		b = append(b, r...)
	}
	return b
}

func TestReadFrames(t *testing.T) {
	var got [][]byte
	in := frames([]byte("a"), nil, []byte("ccc"))
	if err := readFrames(bytes.NewReader(in), func(r []byte) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || string(got[0]) != "a" || len(got[1]) != 0 || string(got[2]) != "ccc" {
		t.Fatalf("got %q", got)
	}
	for name, bad := range map[string][]byte{
		"truncated length": in[:len(in)-5][:2+len(frames([]byte("a")))],
		"truncated record": frames([]byte("abcdef"))[:7],
		"huge length":      {0xff, 0xff, 0xff, 0xff, 1},
	} {
		err := readFrames(bytes.NewReader(bad), func([]byte) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "stdin offset") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzReadFrames: any input ends in records or an error naming the offset;
// never a panic, never an allocation above the input's size plus the limit check.
func FuzzReadFrames(f *testing.F) {
	f.Add(frames([]byte("record")))
	f.Add([]byte{0, 0, 0, 9, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		total := 0
		err := readFrames(bytes.NewReader(in), func(r []byte) error { total += 4 + len(r); return nil })
		if err == nil && total != len(in) {
			t.Fatalf("clean end after %d of %d bytes", total, len(in))
		}
	})
}
