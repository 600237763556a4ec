package logging

import "fmt"

// Clip shortens s to at most n bytes (cut at a UTF-8 boundary) and says how long it was, so
// that a client-supplied field cannot make a log line (or a header) megabytes long.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && s[cut]&0xC0 == 0x80 { // not in the middle of a UTF-8 sequence
		cut--
	}
	return fmt.Sprintf("%s...(%d bytes)", s[:cut], len(s))
}
