package logscan

import "testing"

// BenchmarkScan10MiB: the cost of the scan every writable Berkeley DB open
// makes of its last log file, here a full 10 MiB one.
func BenchmarkScan10MiB(b *testing.B) {
	buf, _ := build(10<<20, lens(40000, 200)...)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if f, err := Scan("log.0000000001", buf); err != nil || f.Damage != nil {
			b.Fatal(f.Damage, err)
		}
	}
}
