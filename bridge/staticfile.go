package bridge

import (
	"errors"
	"io"
	"os"
	"syscall"
	"time"
)

// staticFile is a regular file open for http.ServeContent, its size taken
// from an fstat of the descriptor. It spares what an *os.File costs a
// request: the fcntl of os.NewFile, its finalizer, and the two lseeks
// ServeContent makes to learn the size and go back. Its
// SyscallConn gives the descriptor to sendfile, which reads from the
// descriptor's own offset: the file keeps track of it.
type staticFile struct {
	fd    int
	name  string
	size  int64
	mtime time.Time
	// pos is where the next Read reads, off the descriptor's offset (which
	// read(2), lseek(2) and sendfile move, pread(2) not). Both are -1
	// after a sendfile: the position is then the descriptor's offset,
	// learnt (here) only if a Read or Seek needs it.
	pos, off int64
}

// errIsDir and errNotRegular are what openStatic found where a file was
// asked for: a directory, or a FIFO, device or socket.
var (
	errIsDir      = errors.New("is a directory")
	errNotRegular = errors.New("not a regular file")
)

// openStatic opens file for reading, with flags added, and fstats it: one
// open and one fstat are all a static file costs before its reads, with
// no Stat of its path first. The open does not wait (O_NONBLOCK, as nginx
// opens its files): a FIFO with no writer would hold it forever. It is
// not tried on the network poller either, as os.Open's is (os.Open sets
// a new descriptor non-blocking, has epoll refuse it, and sets it
// blocking again); a regular file's reads ignore O_NONBLOCK. What is not
// a regular file is closed again, and refused with errIsDir or
// errNotRegular.
func openStatic(file string, flags int) (*staticFile, error) {
	var fd int
	for {
		var err error
		fd, err = syscall.Open(file, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NONBLOCK|flags, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: file, Err: err}
		}
		break
	}
	var st syscall.Stat_t
	err := syscall.Fstat(fd, &st)
	if err == nil {
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFREG:
		case syscall.S_IFDIR:
			err = errIsDir
		default:
			err = errNotRegular
		}
	}
	if err != nil {
		syscall.Close(fd)
		return nil, &os.PathError{Op: "fstat", Path: file, Err: err}
	}
	return &staticFile{fd: fd, name: file, size: st.Size, mtime: mtimeOf(&st)}, nil
}

// here learns the descriptor's offset after a sendfile moved it.
func (f *staticFile) here() error {
	if f.off >= 0 {
		return nil
	}
	off, err := syscall.Seek(f.fd, 0, io.SeekCurrent)
	if err != nil {
		return &os.PathError{Op: "seek", Path: f.name, Err: err}
	}
	f.pos, f.off = off, off
	return nil
}

// Read reads at the file's position: with read(2) where the descriptor's
// offset is there already (a file read from its start), else pread(2).
func (f *staticFile) Read(p []byte) (int, error) {
	if err := f.here(); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		var n int
		var err error
		if f.off == f.pos {
			n, err = syscall.Read(f.fd, p)
		} else {
			n, err = syscall.Pread(f.fd, p, f.pos)
		}
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, &os.PathError{Op: "read", Path: f.name, Err: err}
		}
		if f.off == f.pos {
			f.off += int64(n)
		}
		f.pos += int64(n)
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

// Seek sets the position for the next Read; it makes no system call.
func (f *staticFile) Seek(offset int64, whence int) (int64, error) {
	if err := f.here(); err != nil {
		return 0, err
	}
	switch whence {
	case io.SeekCurrent:
		offset += f.pos
	case io.SeekEnd:
		offset += f.size
	case io.SeekStart:
	default:
		return 0, errors.New("bridge: seek: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("bridge: seek: negative position")
	}
	f.pos = offset
	return offset, nil
}

// SyscallConn gives the descriptor to the network's sendfile, at the
// file's position.
func (f *staticFile) SyscallConn() (syscall.RawConn, error) { return rawStatic{f}, nil }

// truncatedBefore reports whether a response that was to send the file
// up to end stopped short of it because the file was truncated since it
// was opened (by another process), and where it stopped. A response the
// client cut short is not: the file still reaches end. It costs an
// lseek (after a sendfile) and an fstat: shortOf calls it only for a
// response not sent whole.
func (f *staticFile) truncatedBefore(end int64) (int64, bool) {
	if err := f.here(); err != nil || f.pos >= end {
		return 0, false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(f.fd, &st); err != nil || st.Size >= end {
		return 0, false
	}
	return f.pos, true
}

// Close closes the descriptor.
func (f *staticFile) Close() error {
	if err := syscall.Close(f.fd); err != nil {
		return &os.PathError{Op: "close", Path: f.name, Err: err}
	}
	return nil
}

// rawStatic is a staticFile's descriptor for sendfile.
type rawStatic struct{ f *staticFile }

func (r rawStatic) Control(fn func(fd uintptr)) error {
	fn(uintptr(r.f.fd))
	return nil
}

// Read moves the descriptor's offset to the file's position, unless a
// sendfile left it there, and calls fn until it is done; what fn sent
// moved the offset, which becomes the position.
func (r rawStatic) Read(fn func(fd uintptr) bool) error {
	f := r.f
	if f.off >= 0 && f.off != f.pos {
		if _, err := syscall.Seek(f.fd, f.pos, io.SeekStart); err != nil {
			return &os.PathError{Op: "seek", Path: f.name, Err: err}
		}
		f.off = f.pos
	}
	f.pos, f.off = -1, -1
	for !fn(uintptr(f.fd)) {
	}
	return nil
}

func (r rawStatic) Write(fn func(fd uintptr) bool) error {
	return errors.New("bridge: a static file is not written")
}
