//go:build bdb

package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/backend"
)

// check notes the Berkeley DB files that have no page checksums (as every
// file of earlier builds and of the Python original; here one rewritten by
// libdb's own db_dump | db_load with the dump's chksum=1 line taken out),
// and says how to get them; a
// database durusbdb made has none to note. The note is not a problem.
func TestCheckNotesFilesWithoutChecksums(t *testing.T) {
	dir := newDB(t, backend.BDB)
	if code, out, _ := runCLI(t, nil, "check", "--dir", dir); code != exitOK || strings.Contains(out, "page checksums") {
		t.Fatalf("check of a new database: exit %d, a note about checksums:\n%s", code, out)
	}
	dump := exec.Command("db5.3_dump", "-h", dir, "refcounts.db")
	data, err := dump.Output()
	if err != nil {
		t.Fatalf("db5.3_dump (db5.3-util): %v", err)
	}
	if err := os.Remove(filepath.Join(dir, "refcounts.db")); err != nil {
		t.Fatal(err)
	}
	load := exec.Command("db5.3_load", "-h", dir, "refcounts.db")
	if !strings.Contains(string(data), "\nchksum=1\n") {
		t.Fatalf("db5.3_dump of a file durusbdb made does not say chksum=1:\n%.200s", data)
	}
	load.Stdin = strings.NewReader(strings.Replace(string(data), "\nchksum=1\n", "\n", 1))
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("db5.3_load: %v\n%s", err, out)
	}
	code, out, _ := runCLI(t, nil, "check", "--dir", dir)
	if code != exitOK || !strings.Contains(out, "note: refcounts.db have no page checksums") ||
		!strings.Contains(out, "durusbdb copy "+dir+" NEWDIR") {
		t.Fatalf("check with refcounts.db loaded by db_load: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, nil, "check", "--dir", dir, "--json")
	var rep checkJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitOK || !rep.OK ||
		len(rep.PageChecksumsOff) != 1 || rep.PageChecksumsOff[0] != "refcounts.db" {
		t.Fatalf("check --json: exit %d, %+v, %v", code, rep, err)
	}
}

// serve --page-checksums (on by default) reaches the engine's creation
// options.
func TestServePageChecksumsFlag(t *testing.T) {
	for args, want := range map[string]bool{"": false, "--page-checksums=false": true, "--page-checksums": false} {
		a := []string{"--dir", "d", "--create"}
		if args != "" {
			a = append(a, args)
		}
		f, set := parseServe(t, a...)
		o, err := f.engineOptions(set)
		if err != nil {
			t.Fatal(err)
		}
		if o.NoPageChecksums != want {
			t.Errorf("serve %q: NoPageChecksums %v, want %v", args, o.NoPageChecksums, want)
		}
	}
}
