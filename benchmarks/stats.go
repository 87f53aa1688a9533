package benchmarks

import (
	"math"
	"slices"
)

// Summary describes repeated measurements of one number: the median, which
// the reports show, and the spread around it.
type Summary struct {
	// Median is the middle value (the mean of the two middle ones for an
	// even count).
	Median float64 `json:"median"`
	// Min and Max are the extremes.
	Min float64 `json:"min"`
	Max float64 `json:"max"`
	// Spread is (Max-Min)/Median in percent: how far apart the runs were.
	// It is 0 for a single run or a zero median.
	Spread float64 `json:"spread_pct"`
	// N is the number of values summarised.
	N int `json:"n"`
}

// summarize returns the summary of xs, ignoring NaNs. It returns the zero
// Summary when nothing is left.
func summarize(xs []float64) Summary {
	v := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return Summary{}
	}
	slices.Sort(v)
	s := Summary{Min: v[0], Max: v[len(v)-1], N: len(v)}
	if n := len(v); n%2 == 1 {
		s.Median = v[n/2]
	} else {
		s.Median = (v[n/2-1] + v[n/2]) / 2
	}
	if s.Median != 0 && len(v) > 1 {
		s.Spread = (s.Max - s.Min) / math.Abs(s.Median) * 100
	}
	return s
}

// median returns the median of xs, or NaN if xs is empty.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	return summarize(xs).Median
}
