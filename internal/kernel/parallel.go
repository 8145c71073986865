package kernel

import (
	"runtime"
	"sync"
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

// Parallel runs units [0, units) of t on up to GOMAXPROCS goroutines, the
// caller's included. work is the total number of elements the task touches,
// used only to decide whether a second goroutine pays. Units are claimed in
// chunks from a shared counter, so a core slowed by another process simply
// takes fewer of them.
//
// Parallel does not allocate in the steady state when t is a pointer.
func Parallel(units, work int, t Task) {
	procs := runtime.GOMAXPROCS(0)
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
	jobs := workers.Queue(procs - 1)
	j.wg.Add(procs - 1)
	for i := 1; i < procs; i++ {
		jobs <- j
	}
	j.work()
	j.wg.Wait()
	j.t = nil
	putJob(j)
}

// job is one Parallel call shared by the goroutines working on it.
type job struct {
	t            Task
	units, chunk int
	next         atomic.Int64
	wg           sync.WaitGroup
}

func (j *job) work() {
	for {
		lo := int(j.next.Add(int64(j.chunk))) - j.chunk
		if lo >= j.units {
			return
		}
		j.t.Run(lo, min(lo+j.chunk, j.units))
	}
}

// Work is a helper's share of the call (workers.Job).
func (j *job) Work() {
	j.work()
	j.wg.Done()
}

// A plain free list rather than a sync.Pool, which the collector empties.
var freeJobs struct {
	mu   sync.Mutex
	list []*job
}

func getJob() *job {
	freeJobs.mu.Lock()
	defer freeJobs.mu.Unlock()
	if n := len(freeJobs.list); n > 0 {
		j := freeJobs.list[n-1]
		freeJobs.list = freeJobs.list[:n-1]
		return j
	}
	return new(job)
}

func putJob(j *job) {
	freeJobs.mu.Lock()
	freeJobs.list = append(freeJobs.list, j)
	freeJobs.mu.Unlock()
}
