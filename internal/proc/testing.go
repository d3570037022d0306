package proc

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/testwait"
)

// StartT is Start for a test: the log goes to a file in a test temporary
// directory unless opts.LogPath is set, a failure to start fails the test,
// and the process is killed (and waited for) at cleanup, after the end of
// its log is shown if the test failed.
func StartT(t testing.TB, opts Options, argv ...string) *Process {
	t.Helper()
	if opts.LogPath == "" {
		opts.LogPath = filepath.Join(t.TempDir(), filepath.Base(argv[0])+".log")
	}
	p, err := Start(opts, argv...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("end of the log of %s:\n%s", p.name(), p.LogTail(40))
		}
		if err := p.Kill(30 * time.Second); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return p
}

// WaitForT is testwait.Within: WaitFor failing the test, with what in the
// message, if cond does not hold within timeout.
func WaitForT(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testwait.Within(t, timeout, what, cond)
}

// Child is the test binary re-executed as a child process (see StartChildT).
type Child struct {
	Cmd    *exec.Cmd
	Stdin  io.WriteCloser // closing it is how parents ask children to stop
	Stdout io.ReadCloser  // what the child reports, line by line
}

// StartChildT re-executes the test binary with no test to run and the
// environment variables env added: the child's TestMain sees one of them
// and does the child's work instead of running tests, so the child is
// never a listed test. Its stderr goes to stderr (nil: discarded). A
// failure to start fails t.
func StartChildT(t testing.TB, stderr io.Writer, env ...string) *Child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child %v: %v", env, err)
	}
	return &Child{Cmd: cmd, Stdin: in, Stdout: out}
}
