package appserver

import (
	"embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

//go:embed adapters/ferry_wsgi.py adapters/ferry_perl.pl
var adapters embed.FS

// MaxRequestsEnv is the environment variable that carries
// [spawn.Pool.MaxRequests] to the adapters.
const MaxRequestsEnv = "FERRY_MAX_REQUESTS"

// Environment variables the adapters read (and remove before the
// application runs).
const (
	envBoard = "FERRY_SCOREBOARD"
)

// App is an application the workers of a [Workers] run: a [*WSGI], a
// [*PSGI] or a [*PerlCGI].
type App interface {
	// Check reports whether the application can start: its interpreter
	// and its files exist.
	Check() error
	// command returns how to run the adapter, written at adapter.
	command(adapter string) (command, error)
	// adapter names the embedded adapter file.
	adapter() string
}

// command is how a worker is started.
type command struct {
	path string   // the interpreter
	args []string // its arguments, the adapter's path among them
	env  []string // the adapter's configuration
	dir  string   // the working directory; "" for ferry's
}

// lookup finds an interpreter: name as a path, or looked up in PATH. A
// path is kept as given, not resolved: a virtualenv's bin/python3 is a
// symbolic link, and Python finds its environment from the name it was
// started by.
func lookup(name, def string) (string, error) {
	if name == "" {
		name = def
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("appserver: interpreter %s: %w", name, err)
	}
	return filepath.Abs(p)
}

// WSGI is a Python WSGI application (PEP 3333), from a file or a module.
type WSGI struct {
	// Python is the interpreter: a path, such as a virtualenv's
	// /srv/venv/bin/python3, or a name looked up in PATH. If empty,
	// "python3".
	Python string
	// File is the Python file holding the application (a .py or a
	// mod_wsgi .wsgi file), loaded as a module named after it. Either File
	// or Module is required.
	File string
	// Module is the module holding the application, imported by name,
	// such as "mysite.wsgi"; "mysite.wsgi:application" names the callable
	// too.
	Module string
	// Callable is the application's name in File or Module. If empty,
	// "application" (a Flask file names it "app").
	Callable string
	// Dir is the workers' working directory. If empty, File's directory,
	// or ferry's with a Module.
	Dir string
	// PythonPath are directories put first on sys.path (before Dir or
	// File's directory, which is there too, as when a script is run).
	PythonPath []string
}

func (a *WSGI) adapter() string { return "ferry_wsgi.py" }

// split returns the module and the callable.
func (a *WSGI) split() (module, callable string) {
	module, callable = a.Module, a.Callable
	if m, c, ok := strings.Cut(module, ":"); ok {
		module = m
		if callable == "" {
			callable = c
		}
	}
	return module, callable
}

// Check implements [App].
func (a *WSGI) Check() error {
	if _, err := lookup(a.Python, "python3"); err != nil {
		return err
	}
	module, callable := a.split()
	switch {
	case (a.File == "") == (module == ""):
		return errors.New("appserver: a WSGI application needs a file or a module, not both")
	case module != "" && !isDotted(module):
		return fmt.Errorf("appserver: %q is not a module name such as mysite.wsgi", module)
	case callable != "" && !isDotted(callable):
		return fmt.Errorf("appserver: %q is not a Python name", callable)
	}
	if a.File != "" {
		if fi, err := os.Stat(a.File); err != nil {
			return fmt.Errorf("appserver: %w", err)
		} else if !fi.Mode().IsRegular() {
			return fmt.Errorf("appserver: %s is not a file", a.File)
		}
	}
	return checkDirs(append([]string{a.Dir}, a.PythonPath...))
}

func (a *WSGI) command(adapter string) (command, error) {
	py, err := lookup(a.Python, "python3")
	if err != nil {
		return command{}, err
	}
	module, callable := a.split()
	env := []string{"FERRY_WSGI_CALLABLE=" + callable, "FERRY_WSGI_PYTHONPATH=" + strings.Join(a.PythonPath, string(os.PathListSeparator))}
	dir := a.Dir
	if a.File != "" {
		file, err := filepath.Abs(a.File)
		if err != nil {
			return command{}, fmt.Errorf("appserver: %w", err)
		}
		env = append(env, "FERRY_WSGI_FILE="+file)
		if dir == "" {
			dir = filepath.Dir(file)
		}
	} else {
		env = append(env, "FERRY_WSGI_MODULE="+module)
	}
	// -u: unbuffered stderr, so that each line reaches the log at once.
	return command{path: py, args: []string{"-u", adapter}, env: env, dir: dir}, nil
}

// isDotted reports whether s is a dotted Python name: identifiers joined
// by dots.
func isDotted(s string) bool {
	for _, part := range strings.Split(s, ".") {
		if part == "" || (part[0] >= '0' && part[0] <= '9') {
			return false
		}
		for _, r := range part {
			if r != '_' && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r < 0x80 {
				return false
			}
		}
	}
	return true
}

// checkDirs checks that each non-empty path is a directory.
func checkDirs(dirs []string) error {
	for _, d := range dirs {
		if d == "" {
			continue
		}
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("appserver: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("appserver: %s is not a directory", d)
		}
	}
	return nil
}

// PSGI is a Perl PSGI application (PSGI 1.1): a .psgi file whose last
// expression is the application's code reference, as plackup loads it.
type PSGI struct {
	// Perl is the interpreter: a path, or a name looked up in PATH. If
	// empty, "perl".
	Perl string
	// File is the .psgi file. It is required.
	File string
	// Dir is the workers' working directory. If empty, File's directory.
	Dir string
	// Lib are directories put first on @INC (perl -I).
	Lib []string
}

func (a *PSGI) adapter() string { return "ferry_perl.pl" }

// Check implements [App].
func (a *PSGI) Check() error {
	if _, err := lookup(a.Perl, "perl"); err != nil {
		return err
	}
	if a.File == "" {
		return errors.New("appserver: a PSGI application needs its .psgi file")
	}
	if fi, err := os.Stat(a.File); err != nil {
		return fmt.Errorf("appserver: %w", err)
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("appserver: %s is not a file", a.File)
	}
	return checkDirs(append([]string{a.Dir}, a.Lib...))
}

func (a *PSGI) command(adapter string) (command, error) {
	perl, err := lookup(a.Perl, "perl")
	if err != nil {
		return command{}, err
	}
	file, err := filepath.Abs(a.File)
	if err != nil {
		return command{}, fmt.Errorf("appserver: %w", err)
	}
	dir := a.Dir
	if dir == "" {
		dir = filepath.Dir(file)
	}
	var args []string
	for _, l := range a.Lib {
		args = append(args, "-I"+l)
	}
	return command{path: perl, args: append(args, adapter), env: []string{"FERRY_PSGI_FILE=" + file}, dir: dir}, nil
}

// PerlCGI runs Perl CGI scripts kept compiled, as ModPerl::Registry and
// CGI::Compile do: the script of each request (its SCRIPT_FILENAME) is
// compiled once into a sub of its own package, again when it changes on
// disk, and run in the worker with the CGI environment in %ENV, the
// request body on STDIN (descriptor 0, a file) and STDOUT (descriptor 1)
// the connection to ferry, so that what it prints, and what the programs
// it runs print, is its response, as under CGI; exit ends the script, not
// the worker. After each run the script's package variables are put back
// as they were once compiled, file handles it left open in them are
// closed, and %ENV, STDIN, STDOUT, STDERR, %SIG, alarm, umask and the
// special variables $/, $\, $, and $" are restored. A script whose named
// subs use file-scope "my" variables (which, kept compiled in a sub, would
// see them undefined: Perl warns "Variable ... is not available") is
// compiled on each run instead, as ModPerl::PerlRun does: still no process
// start, and the modules it uses stay loaded. A script that does not
// compile, and an nph- script, is sent back to ferry, which runs it as a
// CGI process.
//
// A script is safe under persistence unless it:
//
//   - keeps state in another package's variables (a module's own globals
//     are not reset; CGI.pm's are, through CGI::initialize_globals), or
//     changes a module's settings for itself ($CGI::POST_MAX);
//   - relies on being the main program: caller is true inside the
//     worker, BEGIN blocks and "use" run once per worker, not per request,
//     END blocks when the worker exits, and modules it loads stay loaded
//     (configuration they read at load time is read once); a #! line's -T
//     (taint mode) does not apply;
//   - calls exec (the worker is replaced), forks without waiting, or
//     leaves processes running that hold its standard output;
//   - changes the process for good: setuid, chroot, @INC, %INC, signal
//     handlers installed with POSIX::sigaction, files opened into a
//     global of another package or kept in a closure;
//   - sets alarm for its own use past its request (ferry cancels it), or
//     relies on rand's sequence starting afresh.
type PerlCGI struct {
	// Perl is the interpreter: a path, or a name looked up in PATH. If
	// empty, "perl".
	Perl string
}

func (a *PerlCGI) adapter() string { return "ferry_perl.pl" }

// Check implements [App]: perl is installed.
func (a *PerlCGI) Check() error {
	_, err := lookup(a.Perl, "perl")
	return err
}

func (a *PerlCGI) command(adapter string) (command, error) {
	perl, err := lookup(a.Perl, "perl")
	if err != nil {
		return command{}, err
	}
	return command{path: perl, args: []string{adapter}, env: []string{"FERRY_PERL_CGI=1"}}, nil
}
