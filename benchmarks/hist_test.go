package benchmarks

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// exactPercentile is the reference: the value of rank ceil(p/100 × n) of the
// sorted values.
func exactPercentile(sorted []int64, p float64) int64 {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func within(got, want int64) bool {
	if got == want {
		return true
	}
	return math.Abs(float64(got-want)) <= relativeError*math.Abs(float64(want))
}

var percentiles = []float64{0, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100}

func TestHistogramUniform(t *testing.T) {
	for _, n := range []int64{1, 2, 10, 1000, 2048, 100_000, 1_000_000} {
		var h histogram
		for v := int64(1); v <= n; v++ {
			h.Record(v)
		}
		if h.Count() != n || h.Min() != 1 || h.Max() != n {
			t.Fatalf("n=%d: Count, Min, Max = %d, %d, %d; want %d, 1, %d", n, h.Count(), h.Min(), h.Max(), n, n)
		}
		if got, want := h.Mean(), float64(n+1)/2; got != want {
			t.Errorf("n=%d: Mean() = %v; want %v", n, got, want)
		}
		for _, p := range percentiles {
			// Rank ceil(p/100 × n) of 1..n is the value itself.
			want := max(int64(math.Ceil(p/100*float64(n))), 1)
			got := h.ValueAtPercentile(p)
			if !within(got, want) || got < want {
				t.Errorf("n=%d: ValueAtPercentile(%v) = %d; want %d (+%.2g%%)", n, p, got, want, relativeError*100)
			}
			if n <= subCount && got != want {
				t.Errorf("n=%d: ValueAtPercentile(%v) = %d; want exactly %d below %d", n, p, got, want, subCount)
			}
		}
	}
}

func TestHistogramRandomAgainstSorted(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	vals := make([]int64, 50_000)
	var h histogram
	for i := range vals {
		// Latencies from 10µs to 10s, log-uniform.
		vals[i] = int64(math.Exp(math.Log(1e4) + r.Float64()*math.Log(1e6)))
		h.Record(vals[i])
	}
	slices.Sort(vals)
	for _, p := range percentiles {
		want := exactPercentile(vals, p)
		if got := h.ValueAtPercentile(p); !within(got, want) {
			t.Errorf("ValueAtPercentile(%v) = %d; want %d within %.2g%%", p, got, want, relativeError*100)
		}
	}
}

func TestHistogramMergeEqualsCombined(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var a, b, all histogram
	for i := range 20_000 {
		v := r.Int64N(1 << 40)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
		all.Record(v)
	}
	var m histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(nil)
	m.Merge(&histogram{})
	if m.Count() != all.Count() || m.Min() != all.Min() || m.Max() != all.Max() || math.Abs(m.Mean()-all.Mean()) > 1e-9*all.Mean() {
		t.Fatalf("merged Count/Min/Max/Mean = %d/%d/%d/%v; want %d/%d/%d/%v",
			m.Count(), m.Min(), m.Max(), m.Mean(), all.Count(), all.Min(), all.Max(), all.Mean())
	}
	for _, p := range percentiles {
		if got, want := m.ValueAtPercentile(p), all.ValueAtPercentile(p); got != want {
			t.Errorf("merged ValueAtPercentile(%v) = %d; want %d", p, got, want)
		}
	}
	if a.Count()+b.Count() != all.Count() {
		t.Errorf("Merge changed its argument")
	}
}

func TestHistogramEdgeCases(t *testing.T) {
	tests := []struct {
		name   string
		values []int64
		p      float64
		want   int64
		count  int64
		max    int64
	}{
		{"empty", nil, 50, 0, 0, 0},
		{"one value", []int64{42}, 99.9, 42, 1, 42},
		{"one large value", []int64{123_456_789}, 0, 123_456_789, 1, 123_456_789},
		{"zero", []int64{0, 0}, 100, 0, 2, 0},
		{"negative counts as zero", []int64{-5}, 50, 0, 1, 0},
		{"max int64", []int64{math.MaxInt64}, 50, math.MaxInt64, 1, math.MaxInt64},
		{"huge and tiny", []int64{1, math.MaxInt64}, 50, 1, 2, math.MaxInt64},
		{"huge and tiny p100", []int64{1, math.MaxInt64}, 100, math.MaxInt64, 2, math.MaxInt64},
		{"p beyond range", []int64{5, 7}, 250, 7, 2, 7},
		{"p below range", []int64{5, 7}, -1, 5, 2, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h histogram
			for _, v := range tt.values {
				h.Record(v)
			}
			if got := h.ValueAtPercentile(tt.p); got != tt.want {
				t.Errorf("ValueAtPercentile(%v) = %d; want %d", tt.p, got, tt.want)
			}
			if h.Count() != tt.count || h.Max() != tt.max {
				t.Errorf("Count, Max = %d, %d; want %d, %d", h.Count(), h.Max(), tt.count, tt.max)
			}
		})
	}
}

func TestHistogramReset(t *testing.T) {
	var h histogram
	h.RecordN(5000, 3)
	h.Reset()
	h.Record(7)
	if h.Count() != 1 || h.Min() != 7 || h.Max() != 7 || h.ValueAtPercentile(50) != 7 {
		t.Errorf("after Reset and Record(7): Count %d Min %d Max %d p50 %d", h.Count(), h.Min(), h.Max(), h.ValueAtPercentile(50))
	}
}

func TestBucketRangeContainsValue(t *testing.T) {
	for _, v := range []int64{0, 1, 2047, 2048, 2049, 4095, 4096, 1e6, 1e9 + 7, math.MaxInt64} {
		lo, hi := bucketRange(bucketOf(v))
		if v < lo || v > hi {
			t.Errorf("bucketRange(bucketOf(%d)) = [%d, %d]; want it to hold %d", v, lo, hi, v)
		}
		if float64(hi-lo) > relativeError*float64(lo) {
			t.Errorf("bucket of %d is [%d, %d]: wider than %.2g%%", v, lo, hi, relativeError*100)
		}
	}
}

func TestHistogramBuckets(t *testing.T) {
	var h histogram
	for v := int64(1000); v < 1_000_000; v += 7 {
		h.Record(v)
	}
	bs := h.Buckets(1.5)
	var total int64
	for i, b := range bs {
		total += b.Count
		if i > 0 && b.Low <= bs[i-1].High {
			t.Fatalf("buckets overlap: %+v then %+v", bs[i-1], b)
		}
	}
	if total != h.Count() {
		t.Errorf("buckets hold %d values; want %d", total, h.Count())
	}
	if len(bs) > 20 {
		t.Errorf("Buckets(1.5) over 3 decades gave %d buckets; want about 17", len(bs))
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		in   []float64
		want Summary
	}{
		{nil, Summary{}},
		{[]float64{3}, Summary{Median: 3, Min: 3, Max: 3, N: 1}},
		{[]float64{4, 1, 2}, Summary{Median: 2, Min: 1, Max: 4, Spread: 150, N: 3}},
		{[]float64{1, 2, 3, 10}, Summary{Median: 2.5, Min: 1, Max: 10, Spread: 360, N: 4}},
		{[]float64{math.NaN(), 5, 5}, Summary{Median: 5, Min: 5, Max: 5, N: 2}},
	}
	for _, tt := range tests {
		if got := summarize(tt.in); got != tt.want {
			t.Errorf("Summarize(%v) = %+v; want %+v", tt.in, got, tt.want)
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Errorf("Median(nil) is not NaN")
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h histogram
	b.ReportAllocs()
	v := int64(1)
	for b.Loop() {
		h.Record(v)
		v = (v*7 + 13) % 50_000_000
	}
}
