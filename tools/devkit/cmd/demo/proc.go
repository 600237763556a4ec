package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// proc is a service running as a child process, its output in a log file.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{} // closed once Wait returned
	err    error         // Wait's result, set before exited is closed
}

// startProc starts bin with args, output to dir/name.log. The child runs in its own process
// group, so that a Ctrl-C in the terminal reaches only the demo, which stops the children in
// order; it is killed if the demo dies.
func startProc(name, bin, dir string, args ...string) (*proc, error) {
	path := filepath.Join(dir, name+".log")
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: path, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// stop sends SIGTERM and waits up to limit, then kills the process; it says what happened.
func (p *proc) stop(limit time.Duration) string {
	select {
	case <-p.exited:
		return "had already exited: " + exitText(p.err)
	default:
	}
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return fmt.Sprintf("%s after %s", exitText(p.err), time.Since(start).Round(10*time.Millisecond))
	case <-time.After(limit):
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	return fmt.Sprintf("KILLED: still running %s after SIGTERM (see %s)", limit, p.log)
}

func exitText(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

// tail is the last n lines of the process's log.
func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
