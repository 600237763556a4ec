package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    int
		wantErr string
	}{
		{nil, 1, ""},
		{[]string{"-n", "3"}, 3, ""},
		{[]string{"--n=4"}, 4, ""},
		{[]string{"-n", "3", "extra", "more"}, 3, `unexpected arguments ["extra" "more"]`},
		{[]string{"-n", "x"}, 0, `invalid value "x" for flag -n`}, // flag zeroes it
		{[]string{"-nope"}, 1, "flag provided but not defined: -nope"},
		{[]string{"--help"}, 1, flag.ErrHelp.Error()},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		n := fs.Int("n", 1, "")
		err := Parse(fs, tc.args)
		if *n != tc.want || (err == nil) != (tc.wantErr == "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("Parse(%q): n=%d err=%v; want n=%d err containing %q", tc.args, *n, err, tc.want, tc.wantErr)
		}
	}
}

// mainEnv makes the test binary, started again by TestMain, run Main with the behaviour it
// names instead of the tests.
const mainEnv = "CLI_TEST_MAIN"

func TestMain(m *testing.M) {
	switch os.Getenv(mainEnv) {
	case "":
		os.Exit(m.Run())
	case "fail":
		Main("prog", func(context.Context) error { return errors.New("boom") })
	case "help":
		Main("prog", func(context.Context) error { return flag.ErrHelp })
	case "wrapped-help":
		Main("prog", func(context.Context) error { return errors.Join(errors.New("x"), flag.ErrHelp) })
	case "signal":
		Main("prog", func(ctx context.Context) error {
			os.Stdout.WriteString("ready\n")
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(20 * time.Second):
				return errors.New("no signal")
			}
		})
	}
	os.Stdout.WriteString("returned\n")
}

// TestMainExitStatus runs Main in a child process: a failure exits 1 with "name: error" on
// stderr, flag.ErrHelp (also wrapped) exits 0 and prints nothing, and SIGTERM ends run's
// context so that run returns and Main with it.
func TestMainExitStatus(t *testing.T) {
	for _, tc := range []struct {
		mode, stdout, stderr string
		code                 int
	}{
		{"fail", "", "prog: boom\n", 1},
		{"help", "returned\n", "", 0},
		{"wrapped-help", "returned\n", "", 0},
		{"signal", "ready\nreturned\n", "", 0},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), mainEnv+"="+tc.mode)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if tc.mode == "signal" {
				line := make([]byte, len("ready\n"))
				if _, err := io.ReadFull(stdout, line); err != nil {
					t.Fatal(err)
				}
				out.Write(line)
				if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := out.ReadFrom(stdout); err != nil {
				t.Fatal(err)
			}
			err = cmd.Wait()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || out.String() != tc.stdout || stderr.String() != tc.stderr {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, out.String(), stderr.String(), tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}
