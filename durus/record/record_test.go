package record

import (
	"errors"
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	good := Build(5, []byte("ok"), 3, 5, 3, 1)
	r, err := ParseFor(5, good)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Data) != "ok" || !slices.Equal(r.RefSet(), []uint64{1, 3}) {
		t.Fatalf("got %q refs %v", r.Data, r.RefSet())
	}
	bad := map[string][]byte{
		"short":     good[:11],
		"n-past":    append(Build(5, nil)[:8], 0, 0, 0, 9),
		"refs-odd":  append(Build(5, []byte("x")), 1, 2, 3),
		"wrong-oid": Build(6, nil),
		"tiny":      {1, 2},
	}
	for name, rec := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseFor(5, rec); !errors.Is(err, ErrMalformed) {
				t.Fatalf("want ErrMalformed, got %v", err)
			}
		})
	}
}

func TestClassName(t *testing.T) {
	d := append([]byte{0x80, 2, 0x63}, "durus.persistent_dict\nPersistentDict\n"...)
	if got := ClassName(d); got != "durus.persistent_dict.PersistentDict" {
		t.Fatal(got)
	}
	for _, d := range [][]byte{nil, {0x80}, {0x80, 2, 0x63, 'a'}, []byte("ok")} {
		if ClassName(d) != "?" {
			t.Fatalf("%q", d)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Build(0, []byte("ok"), 1))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		if err == nil {
			if 12+len(r.Data)+len(r.Refs) != len(b) || len(r.Refs)%8 != 0 {
				t.Fatal("inconsistent split")
			}
			_ = r.RefSet()
		}
		_ = ClassName(b)
	})
}
