package kernel

import (
	"runtime"
	"testing"
)

// stampTask writes its call number into every unit it runs.
type stampTask struct {
	out  []int
	call int
}

func (t *stampTask) Run(lo, hi int) {
	for i := lo; i < hi; i++ {
		t.out[i] = t.call
	}
}

// TestParallelReturnsWhenEveryUnitIsDone issues many calls back to back on
// more goroutines than cores, so helpers often arrive after the call they
// were sent for has returned: every unit must be done when Parallel
// returns, and a late helper must not run units of a later call as its
// own (which -race would also report).
func TestParallelReturnsWhenEveryUnitIsDone(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	out := make([]int, 64)
	task := &stampTask{out: out}
	for call := 1; call <= 3000; call++ {
		task.call = call
		Parallel(len(out), 1<<20, task)
		for i, v := range out {
			if v != call {
				t.Fatalf("call %d: unit %d holds %d after Parallel returned", call, i, v)
			}
		}
	}
}
