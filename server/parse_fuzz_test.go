package server

import (
	"encoding/binary"
	"testing"
)

// FuzzParseFrames feeds arbitrary phase-2 data to the frame parser: it must
// never panic (a panic here would be recovered by the connection and the
// client would see a closed connection instead of E), and whatever it
// accepts must fill the data exactly with frames of at least minFrame bytes.
func FuzzParseFrames(f *testing.F) {
	for _, s := range [][]byte{
		{0, 0, 0, 0x64, 0, 0},
		{0, 0, 0, 0x64},
		{0, 0, 0},
		{0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9},
		frame(0, rec(0, "root", 1)),
		txnData(rec(0, "root", 1), rec(1, "one")),
		append(frame(1, rec(1, "x")), 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, fe := parseFrames(data)
		if fe != nil {
			if fe.rule != 3 && fe.rule != 4 {
				t.Fatalf("rule %d", fe.rule)
			}
			return
		}
		off := 0
		for i, r := range fr.recs {
			if fr.offs[i] != off {
				t.Fatalf("frame %d at %d, want %d", i, fr.offs[i], off)
			}
			flen := int(binary.BigEndian.Uint32(data[off:]))
			if flen < minFrame || len(r) != flen-8 {
				t.Fatalf("frame %d: flen %d, record %d bytes", i, flen, len(r))
			}
			off += 4 + flen
		}
		if off != len(data) {
			t.Fatalf("frames end at %d of %d", off, len(data))
		}
	})
}
