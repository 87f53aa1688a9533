package bridge

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/rs/zerolog"
)

// LogSwitch is the process log's output: the format of its lines and the
// level below which they are dropped, which [Server.Reload] changes at
// once for every line ferry writes from then on, those of what a reload
// keeps (worker pools, fronts, the command's own lines) included: they
// hold loggers made by [LogSwitch.Logger], which write through it. The
// level is the switch's own, not zerolog's global level, which ferry
// leaves alone.
//
// Give [Config.LogSwitch] the same LogSwitch in each configuration, and
// [Config.Logger] the logger [LogSwitch.ConfigLogger] makes for it.
type LogSwitch struct {
	out io.Writer
	cur atomic.Pointer[logOutput]
}

// logOutput is a LogSwitch's format and level.
type logOutput struct {
	w     io.Writer // out, or a console writer on it
	level zerolog.Level
}

// NewLogSwitch returns a LogSwitch writing to out in the format and at
// the level c says.
func NewLogSwitch(out io.Writer, c LogConfig) (*LogSwitch, error) {
	o, err := newLogOutput(out, c)
	if err != nil {
		return nil, err
	}
	sw := &LogSwitch{out: out}
	sw.cur.Store(o)
	return sw, nil
}

// newLogOutput returns the output c says, on out.
func newLogOutput(out io.Writer, c LogConfig) (*logOutput, error) {
	o := &logOutput{w: out, level: zerolog.InfoLevel}
	if c.Level != "" {
		lvl, err := zerolog.ParseLevel(c.Level)
		if err != nil {
			return nil, fmt.Errorf("bridge: log level %q: want debug, info, warn or error", c.Level)
		}
		o.level = lvl
	}
	switch c.Format {
	case "", "auto":
		if f, ok := out.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				o.w = NewConsoleWriter(out, true)
			}
		}
	case "console":
		o.w = NewConsoleWriter(out, false)
	case "json":
	default:
		return nil, fmt.Errorf("bridge: log format %q: want json, console or auto", c.Format)
	}
	return o, nil
}

// Logger returns a logger whose lines take the switch's format and level
// in force when each is written. A line below the level is not even
// built: the switch is the logger's sampler too, which zerolog asks
// before it builds an event.
func (sw *LogSwitch) Logger() zerolog.Logger {
	return zerolog.New(sw).Level(zerolog.TraceLevel).Sample(switchLevel{sw}).With().Timestamp().Logger()
}

// switchLevel samples a LogSwitch's lines by the level in force: the
// check a logger makes before it builds a line (WriteLevel makes it again,
// for loggers whose sampling zerolog.DisableSampling turned off).
type switchLevel struct{ sw *LogSwitch }

func (s switchLevel) Sample(l zerolog.Level) bool { return l >= s.sw.cur.Load().level }

// ConfigLogger returns the logger of the configuration whose [log] table
// is c: its lines take the switch's format in force when each is
// written, and c's level, which that configuration's own lines (its
// requests' among them) keep to until they are over, as a reload leaves
// the requests in progress the configuration they started with.
func (sw *LogSwitch) ConfigLogger(c LogConfig) (zerolog.Logger, error) {
	o, err := newLogOutput(sw.out, c)
	if err != nil {
		return zerolog.Logger{}, err
	}
	return zerolog.New(logFormat{sw}).Level(o.level).With().Timestamp().Logger(), nil
}

// Write writes a line in the format in force.
func (sw *LogSwitch) Write(p []byte) (int, error) {
	return sw.cur.Load().w.Write(p)
}

// WriteLevel writes a line of level l in the format in force, or drops it
// if l is below the level in force. Lines without a level are written.
func (sw *LogSwitch) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	o := sw.cur.Load()
	if l < o.level {
		return len(p), nil
	}
	return o.w.Write(p)
}

// logFormat writes a LogSwitch's lines in its format in force, whatever
// their level: the logger's own level filters them.
type logFormat struct{ sw *LogSwitch }

func (f logFormat) Write(p []byte) (int, error) { return f.sw.Write(p) }

// processLog returns the logger of what outlives the configuration, such
// as worker pools a reload keeps: the LogSwitch's if the configuration
// has one, else Logger.
func (s *Server) processLog() zerolog.Logger {
	if sw := s.cfg.LogSwitch; sw != nil {
		return sw.Logger()
	}
	return s.log
}

// prepareLog returns the output of s's [log] table, for the switch a
// reload to s makes, or nil without a LogSwitch.
func (s *Server) prepareLog() (*logOutput, error) {
	sw := s.cfg.LogSwitch
	if sw == nil {
		return nil, nil
	}
	return newLogOutput(sw.out, s.cfg.Log)
}
