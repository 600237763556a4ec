package logging

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClip(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"eleven char", 10, "eleven cha...(11 bytes)"},
		{"ab€cd", 3, "ab...(7 bytes)"}, // € is 3 bytes: not cut in the middle
		{strings.Repeat("x", 1<<20), 4, "xxxx...(1048576 bytes)"},
	}
	for _, tt := range tests {
		got := Clip(tt.in, tt.n)
		if got != tt.want || !utf8.ValidString(got) {
			t.Errorf("Clip(%.20q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
