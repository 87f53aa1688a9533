package bridge

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// lowestPriority puts every thread of this process under SCHED_IDLE, the
// lowest CPU priority Linux offers: its threads run when no other wants
// the CPU, and one that wakes preempts them at once. If sched_setattr
// fails, it falls back to nice 19. It returns what it got, for the log.
func lowestPriority() string {
	err := eachThread(func(tid int) error {
		return unix.SchedSetAttr(tid, &unix.SchedAttr{Policy: unix.SCHED_IDLE}, 0)
	})
	if err == nil {
		return "SCHED_IDLE"
	}
	err2 := eachThread(func(tid int) error { return unix.Setpriority(unix.PRIO_PROCESS, tid, 19) })
	if err2 != nil {
		return fmt.Sprintf("normal priority (sched_setattr SCHED_IDLE: %v; setpriority 19: %v)", err, err2)
	}
	return fmt.Sprintf("nice 19 (sched_setattr SCHED_IDLE: %v)", err)
}

// eachThread calls set for each thread of this process (on Linux, a
// scheduling policy and a nice value are a thread's), again until a pass
// finds no thread it has not set: a thread started later, by one already
// set, inherits the setting.
func eachThread(set func(tid int) error) error {
	done := make(map[int]bool)
	for {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		fresh := 0
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || done[tid] {
				continue
			}
			if err := set(tid); err != nil && !errors.Is(err, unix.ESRCH) { // ESRCH: it has ended
				return err
			}
			done[tid] = true
			fresh++
		}
		if fresh == 0 {
			return nil
		}
	}
}
