package spawn

import "testing"

func TestWorkerExitNames(t *testing.T) {
	for e, want := range map[WorkerExit]string{WorkerCrashed: "crash", WorkerRecycled: "max_requests", WorkerScaledDown: "scale-down", WorkerStopped: "stop", 9: "WorkerExit(9)"} {
		if e.String() != want {
			t.Errorf("WorkerExit(%d) = %q; want %q", e, e.String(), want)
		}
	}
}
