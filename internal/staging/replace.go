package staging

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// errNoExchange is exchange's error where the platform or the file
// system cannot swap two paths atomically.
var errNoExchange = errors.New("atomic exchange not supported")

// ReplacedPrefix starts the name (after "." and the target's base name)
// of a directory Replace moved aside when the file system could not swap
// atomically: ".DIR.replaced-*". One left behind by a crash in between
// holds the replaced contents: Replaced lists it, nothing removes it.
const ReplacedPrefix = ".replaced-"

// Replace puts the directory src in the place of target, an existing
// directory: with one atomic exchange (renameat2 RENAME_EXCHANGE) where
// the file system can, else by renaming target aside (to
// .BASE.replaced-*), src in, and the old contents to src. On success src
// holds what target held (keep src inside a staging Dir: Release removes
// it); on error target is as it was. src gets target's mode and, when
// run as root, everything in src gets target's owner (a server running
// as the database's user must be able to write the new files).
func Replace(src, target string) error { return replaceWith(src, target, exchange) }

// replaceWith is Replace with the atomic exchange given (tests pass one
// that is not supported).
func replaceWith(src, target string, exchange func(a, b string) error) error {
	fi, err := os.Stat(target)
	if err != nil {
		return fmt.Errorf("replace %s: %w", target, err)
	}
	if err := os.Chmod(src, fi.Mode().Perm()); err != nil {
		return fmt.Errorf("replace %s: %w", target, err)
	}
	if err := chownLike(src, fi); err != nil {
		return fmt.Errorf("replace %s: %w", target, err)
	}
	err = exchange(src, target)
	if err == nil {
		return SyncDir(filepath.Dir(target))
	}
	if !errors.Is(err, errNoExchange) {
		return fmt.Errorf("replace %s: %w", target, err)
	}
	old, err := os.MkdirTemp(filepath.Dir(target), "."+filepath.Base(target)+ReplacedPrefix)
	if err != nil {
		return fmt.Errorf("replace %s: %w", target, err)
	}
	os.Remove(old) // a unique name, free again: os.Rename refuses an existing directory
	if err := os.Rename(target, old); err != nil {
		return fmt.Errorf("replace %s: move it aside: %w", target, err)
	}
	if err := os.Rename(src, target); err != nil {
		if rerr := os.Rename(old, target); rerr != nil {
			return fmt.Errorf("replace %s: %w (and moving it back from %s failed: %v)", target, err, old, rerr)
		}
		return fmt.Errorf("replace %s: %w", target, err)
	}
	if err := SyncDir(filepath.Dir(target)); err != nil {
		return err
	}
	if err := os.Rename(old, src); err != nil {
		return os.RemoveAll(old)
	}
	return nil
}

// Replaced lists the directories Replace moved aside beside target and a
// crash left there (.BASE.replaced-*).
func Replaced(target string) []string {
	parent, base := filepath.Dir(target), filepath.Base(target)
	ents, err := os.ReadDir(parent)
	if err != nil {
		return nil
	}
	var l []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "."+base+ReplacedPrefix) {
			l = append(l, filepath.Join(parent, e.Name()))
		}
	}
	return l
}

// WriteFileSync writes data to a new file at path (one that exists is an
// error) and syncs it: a manifest, a journal, a rewritten log.
func WriteFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// SyncDir makes the renames in dir durable (fsync of the directory).
func SyncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// chownLike gives src and everything in it the owner of the directory
// described by fi, when this process runs as root and the owners differ.
func chownLike(src string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 {
		return nil
	}
	uid, gid := int(st.Uid), int(st.Gid)
	if uid == 0 && gid == 0 {
		return nil // root's own directory: the files are root's already
	}
	return filepath.WalkDir(src, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}
