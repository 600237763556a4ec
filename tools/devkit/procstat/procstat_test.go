package procstat

import (
	"os"
	"strings"
	"testing"
	"time"
)

const statusFixture = `Name:	python3
Umask:	0022
State:	S (sleeping)
Tgid:	4242
Pid:	4242
VmPeak:	 1290412 kB
VmSize:	 1224876 kB
VmLck:	       0 kB
VmHWM:	   63416 kB
VmRSS:	   59012 kB
RssAnon:	   41200 kB
Threads:	15
`

func TestParseStatus(t *testing.T) {
	st, err := ParseStatus(strings.NewReader(statusFixture))
	if err != nil {
		t.Fatal(err)
	}
	if st.VmHWM != 63416*1024 || st.VmRSS != 59012*1024 {
		t.Fatalf("got %+v", st)
	}
	for name, in := range map[string]string{
		"kernel thread (no Vm lines)": "Name:\tkthreadd\nState:\tS (sleeping)\n",
		"only VmHWM":                  "VmHWM:\t 1 kB\n",
		"unit":                        "VmHWM:\t 1 MB\nVmRSS:\t 1 kB\n",
		"number":                      "VmHWM:\t x kB\nVmRSS:\t 1 kB\n",
		"negative":                    "VmHWM:\t -1 kB\nVmRSS:\t 1 kB\n",
	} {
		if st, err := ParseStatus(strings.NewReader(in)); err == nil {
			t.Errorf("%s: accepted as %+v", name, st)
		}
	}

	self, err := ReadStatus(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if self.VmRSS <= 0 || self.VmHWM < self.VmRSS {
		t.Fatalf("own status %+v: want 0 < VmRSS <= VmHWM", self)
	}
}

func TestParseProcStatCPU(t *testing.T) {
	// The command name may contain spaces and parentheses; utime=250 and stime=50 ticks.
	line := "4242 (py (thon) 3) S 1 4242 4242 0 -1 4194560 9000 0 0 0 250 50 0 0 20 0 15 0 12345 1254273024 14753 18446744073709551615\n"
	d, err := ParseStatCPU(line)
	if err != nil {
		t.Fatal(err)
	}
	if d != 3*time.Second {
		t.Fatalf("cpu %s, want 3s", d)
	}
	for _, bad := range []string{"", "4242 python3 S 1", "4242 (x) S 1 2 3", "4242 (x) S 1 4242 4242 0 -1 0 0 0 0 0 a 50 0"} {
		if _, err := ParseStatCPU(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	self, err := CPU(os.Getpid())
	if err != nil || self < 0 {
		t.Fatalf("own cpu %s, %v", self, err)
	}
}
