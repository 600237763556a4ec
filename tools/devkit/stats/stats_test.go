package stats

import (
	"slices"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		name string
		xs   []float64
		want float64
	}{
		{"none", nil, 0},
		{"one", []float64{7}, 7},
		{"odd, unsorted", []float64{3, 1, 2}, 2},
		{"even: mean of the middle two", []float64{4, 1, 3, 2}, 2.5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.xs)
			if got := Median(tt.xs); got != tt.want {
				t.Errorf("Median(%v) = %v, want %v", tt.xs, got, tt.want)
			}
			if !slices.Equal(in, tt.xs) {
				t.Errorf("Median reordered its input: %v, was %v", tt.xs, in)
			}
		})
	}
	if m := Median([]time.Duration{4, 1, 3, 2}); m != 2 { // (2+3)/2 in integer nanoseconds
		t.Errorf("even median of durations %v, want 2", m)
	}
	if Median([]int64(nil)) != 0 {
		t.Error("median of nothing")
	}
}
