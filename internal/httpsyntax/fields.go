package httpsyntax

import "net/http"

// Fields gathers the fields of a head as they are read, each a canonical
// name and a value, and builds the http.Header from them in a few
// allocations, not two a field: the values side by side become one
// string, and the one-value lists are cut from one backing array (an
// append to one copies). Values past the in-place buffer get a string
// each, so that a value kept never keeps more than that buffer of the
// rest. The zero value is empty and ready; a Fields is meant to live on
// its reader's stack.
type Fields struct {
	first [24]field // the first fields, in place
	more  []field   // the rest
	n     int       // fields gathered
	vbuf  [1024]byte
	vn    int    // bytes of vbuf used
	vheap []byte // the values, once they do not fit in vbuf
}

// field is a gathered field: its name and its value, vals()[off:end].
type field struct {
	key      string
	off, end int
}

// Len returns the number of fields gathered.
func (f *Fields) Len() int { return f.n }

func (f *Fields) at(i int) *field {
	if i < len(f.first) {
		return &f.first[i]
	}
	return &f.more[i-len(f.first)]
}

// vals returns the values gathered, side by side.
func (f *Fields) vals() []byte {
	if f.vheap != nil {
		return f.vheap
	}
	return f.vbuf[:f.vn]
}

// Add gathers the field key (canonical) with value, which it copies.
func (f *Fields) Add(key string, value []byte) {
	fd := field{key: key, off: len(f.vals())}
	switch {
	case f.vheap == nil && f.vn+len(value) <= len(f.vbuf):
		f.vn += copy(f.vbuf[f.vn:], value)
	case f.vheap == nil:
		f.vheap = append(make([]byte, 0, 2*(f.vn+len(value))), f.vbuf[:f.vn]...)
		fallthrough
	default:
		f.vheap = append(f.vheap, value...)
	}
	fd.end = fd.off + len(value)
	if f.n < len(f.first) {
		f.first[f.n] = fd
	} else {
		f.more = append(f.more, fd)
	}
	f.n++
}

// Lookup returns the value of the first field gathered named key.
func (f *Fields) Lookup(key string) ([]byte, bool) {
	for i := range f.n {
		if fd := f.at(i); fd.key == key {
			return f.vals()[fd.off:fd.end], true
		}
	}
	return nil, false
}

// Header returns the fields gathered as a new header; a name's values
// keep their order.
func (f *Fields) Header() http.Header {
	h := make(http.Header, f.n)
	f.build(h, true)
	return h
}

// SetIn sets the fields gathered in h, as http.Header's Set would, one
// name after another: a name's first field replaces what h holds under
// it, the next ones are added to it.
func (f *Fields) SetIn(h http.Header) {
	if f.n > len(f.first) {
		// Many fields: a map tells the names seen, not a scan of them.
		for k, v := range f.Header() {
			h[k] = v
		}
		return
	}
	f.build(h, false)
}

// seenBefore reports whether a field gathered before the i-th has its
// name.
func (f *Fields) seenBefore(i int) bool {
	key := f.at(i).key
	for j := range i {
		if f.at(j).key == key {
			return true
		}
	}
	return false
}

// build puts the fields in h: a field whose name an earlier field has is
// added to h's values for it, any other replaces them. fresh says h held
// nothing before, so that h itself tells the names seen.
func (f *Fields) build(h http.Header, fresh bool) {
	if f.n == 0 {
		return
	}
	vals := f.vals()
	var all string
	if f.vheap == nil {
		all = string(vals)
	}
	lists := make([]string, f.n)
	for i := range f.n {
		fd := f.at(i)
		var v string
		if f.vheap == nil {
			v = all[fd.off:fd.end]
		} else {
			v = string(vals[fd.off:fd.end]) // past the buffer: a string each
		}
		if prev, ok := h[fd.key]; ok && (fresh || f.seenBefore(i)) {
			h[fd.key] = append(prev, v)
			continue
		}
		lists[i] = v
		h[fd.key] = lists[i : i+1 : i+1]
	}
}
