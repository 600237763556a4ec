package emqxsim

import (
	"encoding/binary"
	"testing"
)

// frame is an HTTP/2 frame of type typ with n payload bytes.
func frame(typ byte, n int) []byte {
	h := make([]byte, 9+n)
	binary.BigEndian.PutUint32(h[0:4], uint32(n)<<8)
	h[3] = typ
	return h
}

// goAwayAt scans b in chunks of size chunk (as successive Reads) and returns the absolute
// offset from which bytes are withheld for the first GOAWAY frame, or -1.
func goAwayAt(b []byte, chunk int) int {
	var c gun1Conn
	for off := 0; off < len(b); off += chunk {
		end := min(off+chunk, len(b))
		if i := c.scan(b[off:end]); i >= 0 {
			return off + i
		}
	}
	return -1
}

func TestScanFindsGoAway(t *testing.T) {
	settings, data, goaway := frame(0x4, 6), frame(0x0, 300), frame(frameGoAway, 8)
	stream := append(append(append([]byte{}, settings...), data...), goaway...)
	for _, tc := range []struct {
		name string
		b    []byte
		want int
	}{
		{"goaway after data", stream, len(settings) + len(data)},
		{"no goaway", append(append([]byte{}, settings...), data...), -1},
		{"goaway first", goaway, 0},
		{"payload bytes look like a goaway header", append(frame(0x0, 9), goaway...), 18},
	} {
		if tc.name == "payload bytes look like a goaway header" {
			tc.b[9+3] = frameGoAway // inside the DATA payload: not a frame header
		}
		for _, chunk := range []int{1, 2, 5, 9, 10, 64, 4096} {
			if got := goAwayAt(tc.b, chunk); got != withheld(tc.want, chunk) {
				t.Errorf("%s, chunks of %d: withheld from %d, want %d", tc.name, chunk, got, withheld(tc.want, chunk))
			}
		}
	}
}

// withheld is where a GOAWAY header starting at h is cut off when reads are chunk bytes:
// at h, or at the start of the read that completes the header if it began in an earlier
// read (those bytes are already delivered, and are only part of a header).
func withheld(h, chunk int) int {
	if h < 0 {
		return -1
	}
	return max(h, (h+8)/chunk*chunk)
}

// FuzzScan: the GOAWAY is found at the same frame whatever the stream's split.
func FuzzScan(f *testing.F) {
	f.Add(append(frame(0x4, 0), frame(frameGoAway, 8)...), 3)
	f.Add(frame(0x0, 20), 1)
	f.Fuzz(func(t *testing.T, b []byte, chunk int) {
		if chunk <= 0 || chunk > len(b)+1 {
			chunk = len(b) + 1
		}
		if whole, split := goAwayAt(b, len(b)+1), goAwayAt(b, chunk); split != withheld(whole, chunk) {
			t.Fatalf("GOAWAY at %d whole, withheld from %d in chunks of %d", whole, split, chunk)
		}
	})
}
