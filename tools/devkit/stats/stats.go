// Package stats sums up repeated measurements of the dev tools (bench, compare).
package stats

import (
	"slices"
	"time"
)

// Median of xs (the mean of the middle two for an even count, in T's arithmetic); 0 for
// none. xs is left unchanged.
func Median[T int64 | float64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}
