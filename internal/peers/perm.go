package peers

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// MakeWorldReadable makes the tree at path usable by an unprivileged user
// such as the www-data account Apache runs CGI scripts as: directories get
// at least mode 0755, regular files get a+r, and files with any exec bit get
// a+x. Symbolic links are not followed. Every parent directory of path gets
// a+x (search permission) so the tree can be reached; this matters for
// directories from [testing.T.TempDir], whose parent is mode 0700.
// Permissions are only ever added, never removed.
func MakeWorldReadable(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("peers: %w", err)
	}
	err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := info.Mode()
		perm := mode.Perm()
		switch {
		case mode.IsDir():
			perm |= 0o755
		case mode.IsRegular():
			perm |= 0o444
			if perm&0o111 != 0 {
				perm |= 0o111
			}
		default:
			return nil
		}
		if perm == mode.Perm() {
			return nil
		}
		return os.Chmod(p, perm|(mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)))
	})
	if err != nil {
		return fmt.Errorf("peers: making %s world-readable: %w", abs, err)
	}
	return makeSearchable(filepath.Dir(abs))
}

// makeSearchable adds a+x to dir and all its parents.
func makeSearchable(dir string) error {
	for {
		info, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("peers: %w", err)
		}
		if m := info.Mode(); m.Perm()&0o111 != 0o111 {
			if err := os.Chmod(dir, m.Perm()|0o111|(m&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))); err != nil {
				return fmt.Errorf("peers: making %s searchable: %w", dir, err)
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil
		}
		dir = parent
	}
}
