package kernel

import (
	"sync/atomic"

	"github.com/ldm-go/ldm/internal/workers"
)

// Task is work split into independent units: Run(lo, hi) does units
// [lo, hi). A unit's result must not depend on which goroutine runs it or on
// how the units are grouped, so that results are the same bits for any
// thread count; no reduction may span units.
type Task interface {
	Run(lo, hi int)
}

// minParallelWork is the amount of work (in float32 elements touched)
// below which waking a helper costs more than it saves.
const minParallelWork = 1 << 15

// Parallel runs units [0, units) of t on up to workers.Procs() goroutines, the
// caller's included. work is the total number of elements the task touches,
// used only to decide whether a second goroutine pays. Units are claimed in
// chunks from a shared counter, so a core slowed by another process simply
// takes fewer of them, and Parallel returns as soon as every unit is done:
// a helper that has not started yet (its thread descheduled by another
// process, or still waking) is not waited for, it finds nothing left to do.
//
// Parallel does not allocate in the steady state when t is a pointer.
func Parallel(units, work int, t Task) {
	procs := workers.Procs()
	if units <= 1 || procs <= 1 || work < minParallelWork {
		t.Run(0, units)
		return
	}
	procs = min(procs, units)
	j := getJob()
	j.t = t
	j.units = units
	// About four chunks per goroutine balance the load without many
	// trips to the counter.
	j.chunk = max(1, units/(4*procs))
	j.next.Store(0)
	j.done.Store(0)
	j.refs.Store(int32(procs))
	jobs := workers.Queue(procs - 1)
	for i := 1; i < procs; i++ {
		jobs <- j
	}
	if !j.work() {
		workers.Await(j.finished)
	}
	j.release()
}

// job is one Parallel call shared by the goroutines working on it. It goes
// back to the free list when the last of them lets go of it, which may be
// a helper arriving after the call has returned.
type job struct {
	t            Task
	units, chunk int
	next, done   atomic.Int64
	refs         atomic.Int32
	// finished receives once when a helper completes the call's last unit.
	finished chan struct{}
}

// work runs chunks until none is left to claim and reports whether this
// goroutine completed the call's last unit.
func (j *job) work() bool {
	for {
		lo := int(j.next.Add(int64(j.chunk))) - j.chunk
		if lo >= j.units {
			return false
		}
		hi := min(lo+j.chunk, j.units)
		j.t.Run(lo, hi)
		if j.done.Add(int64(hi-lo)) == int64(j.units) {
			return true
		}
	}
}

// Work is a helper's share of the call (workers.Job).
func (j *job) Work() {
	if j.work() {
		j.finished <- struct{}{}
	}
	j.release()
}

func (j *job) release() {
	if j.refs.Add(-1) == 0 {
		j.t = nil
		putJob(j)
	}
}

var freeJobs = workers.FreeList[job]{New: func() *job { return &job{finished: make(chan struct{}, 1)} }}

func getJob() *job { return freeJobs.Get() }

func putJob(j *job) { freeJobs.Put(j) }
