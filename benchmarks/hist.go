package benchmarks

import (
	"math"
	"math/bits"
	"time"
)

// subBits fixes the histogram's resolution: values below 1<<subBits are
// counted exactly, larger ones in buckets holding 1<<(subBits-1) steps per
// power of two, so a recorded value is known to within 1 part in 1024 (three
// significant digits, as HdrHistogram's numberOfSignificantValueDigits=3).
const (
	subBits  = 11
	subCount = 1 << subBits       // 2048 exact values
	subHalf  = 1 << (subBits - 1) // 1024 steps per power of two above them
)

// relativeError is the largest relative error of a value a histogram
// reports (ValueAtPercentile, Min excepted): 1/1024, under 0.1 %.
const relativeError = 1.0 / subHalf

// histogram counts non-negative int64 values (latencies in nanoseconds) in
// log-linear buckets, as HdrHistogram does: exact below 2048, then 1024
// buckets per power of two, so every value is kept to three significant
// digits whatever its magnitude, in at most 55 thousand buckets allocated
// only up to the largest value recorded. Count, Min, Max and Mean are exact.
//
// The zero value is an empty histogram ready to use. A histogram is not safe
// for concurrent use.
type histogram struct {
	counts []int64 // by bucket index, grown on demand
	n      int64
	sum    float64 // of the exact values, for Mean
	min    int64
	max    int64
}

// bucketOf returns the index of v's bucket; v must be >= 0.
func bucketOf(v int64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - subBits // >= 1
	m := v >> shift                          // in [subHalf, subCount)
	return subCount + (shift-1)*subHalf + int(m-subHalf)
}

// bucketRange returns the smallest and largest values of bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < subCount {
		return int64(i), int64(i)
	}
	shift := (i-subCount)/subHalf + 1
	m := int64((i-subCount)%subHalf + subHalf)
	lo = m << shift
	return lo, lo + (int64(1) << shift) - 1
}

// Record counts v once. Negative values count as 0.
func (h *histogram) Record(v int64) { h.RecordN(v, 1) }

// RecordDuration counts d, in nanoseconds.
func (h *histogram) RecordDuration(d time.Duration) { h.Record(int64(d)) }

// RecordN counts v n times. Negative values count as 0; n <= 0 does nothing.
func (h *histogram) RecordN(v, n int64) {
	if n <= 0 {
		return
	}
	if v < 0 {
		v = 0
	}
	i := bucketOf(v)
	if i >= len(h.counts) {
		h.grow(i)
	}
	h.counts[i] += n
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n += n
	h.sum += float64(v) * float64(n)
}

func (h *histogram) grow(i int) {
	size := max(2*len(h.counts), i+1, 256)
	size = min(size, bucketOf(math.MaxInt64)+1)
	c := make([]int64, size)
	copy(c, h.counts)
	h.counts = c
}

// Merge adds every value counted by o to h, as if each had been recorded in
// h. o is not changed.
func (h *histogram) Merge(o *histogram) {
	if o == nil || o.n == 0 {
		return
	}
	if len(o.counts) > len(h.counts) {
		h.grow(len(o.counts) - 1)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Reset empties h, keeping its memory.
func (h *histogram) Reset() {
	clear(h.counts)
	h.n, h.sum, h.min, h.max = 0, 0, 0, 0
}

// Count returns the number of values recorded.
func (h *histogram) Count() int64 { return h.n }

// Min returns the smallest value recorded, exactly, or 0 if none.
func (h *histogram) Min() int64 { return h.min }

// Max returns the largest value recorded, exactly, or 0 if none.
func (h *histogram) Max() int64 { return h.max }

// Mean returns the mean of the values recorded, or 0 if none.
func (h *histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// ValueAtPercentile returns the value below or at which p percent of the
// recorded values fall (p in [0, 100]; 50 is the median): the recorded value
// of rank ceil(p/100 × Count) (at least 1), to within relativeError, and
// never above Max nor below Min. Like HdrHistogram, it reports the highest
// value of that value's bucket, so it errs high rather than low. It returns 0
// for an empty histogram.
func (h *histogram) ValueAtPercentile(p float64) int64 {
	if h.n == 0 {
		return 0
	}
	p = min(max(p, 0), 100)
	rank := int64(math.Ceil(p / 100 * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := bucketRange(i)
			return min(max(hi, h.min), h.max)
		}
	}
	return h.max // not reached: the counts add up to n
}

// histBucket is one bucket of a histogram, for plotting: Count values in
// [Low, High].
type histBucket struct {
	Low, High int64
	Count     int64
}

// Buckets returns the non-empty buckets of h in increasing order, coarsened
// so that each spans at least a factor of ratio (1.1, say: ten per 10 %) from
// its low end; ratio <= 1 keeps the native buckets.
func (h *histogram) Buckets(ratio float64) []histBucket {
	var out []histBucket
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		lo, hi := bucketRange(i)
		if n := len(out); n > 0 && ratio > 1 && float64(hi) <= float64(out[n-1].Low)*ratio {
			out[n-1].High = hi
			out[n-1].Count += c
			continue
		}
		out = append(out, histBucket{Low: lo, High: hi, Count: c})
	}
	return out
}
