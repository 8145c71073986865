// Package workers keeps the helper goroutines that every parallel kernel
// shares (the GEMM and the element-wise and normalisation kernels), so that
// at most GOMAXPROCS-1 helpers ever compete with the caller for the cores.
// A helper polls briefly for the next job before parking: the layers issue
// parallel calls back to back, and waking a parked thread on a virtual
// machine costs more than many of them.
package workers

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Job is a helper's share of one parallel call. Work does it and then
// signals the caller (typically through a sync.WaitGroup).
type Job interface {
	Work()
}

var pool struct {
	mu   sync.Mutex
	n    int
	jobs chan Job
}

// Queue makes sure at least n helpers exist and returns their queue: send
// one Job per helper wanted.
func Queue(n int) chan<- Job {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	if pool.jobs == nil {
		pool.jobs = make(chan Job, 64)
	}
	for ; pool.n < n; pool.n++ {
		go helper(pool.jobs)
	}
	return pool.jobs
}

// spin is how long a helper polls for the next job before parking.
const spin = 100 * time.Microsecond

func helper(jobs <-chan Job) {
	for {
		Await(jobs).Work()
	}
}

// Await returns the next value from ch, polling for up to spin before
// parking: waking a parked thread on a virtual machine costs more than many
// of the calls the goroutines here serve. Helpers wait for jobs with it,
// and callers for their helpers to finish a parallel call, which they do
// within microseconds of the caller.
func Await[T any](ch <-chan T) T {
	if v, ok := poll(ch); ok {
		return v
	}
	return <-ch
}

// poll polls ch for up to spin and reports whether a value came.
func poll[T any](ch <-chan T) (T, bool) {
	var start time.Time
	for i := 0; ; i++ {
		select {
		case v := <-ch:
			return v, true
		default:
		}
		if i%64 == 0 {
			if i == 0 {
				start = time.Now()
			} else if time.Since(start) > spin {
				var zero T
				return zero, false
			}
		}
		// Yield now and then, not on every poll: the scheduler lock it
		// takes would slow the goroutines doing the work.
		if i%512 == 511 {
			runtime.Gosched()
		}
	}
}

// reserved counts the cores that goroutines running whole parts of a job
// (a split batch) have claimed (BeginSplit, Split.Done): parallel kernels called meanwhile use only
// the cores left, so that they do not wake helpers to compete with those
// goroutines for the same cores.
var reserved atomic.Int32

// Procs is how many goroutines a parallel kernel should use now: GOMAXPROCS
// less the reserved cores, at least 1. Kernels give the same bits for any
// count, so this only changes speed.
func Procs() int {
	return max(1, runtime.GOMAXPROCS(0)-int(reserved.Load()))
}

// FreeList recycles values so that the parallel calls that need a struct
// per call (a GEMM's state, a kernel's task, a split batch's part) do not
// allocate one in the steady state. It is a plain slice rather than a
// sync.Pool, which the garbage collector empties: refilling it would
// allocate mid-run.
type FreeList[T any] struct {
	mu   sync.Mutex
	list []*T
	// New makes a value when the list is empty (nil: new(T)).
	New func() *T
}

// Get returns a recycled value, or a new one.
func (f *FreeList[T]) Get() *T {
	f.mu.Lock()
	if n := len(f.list); n > 0 {
		t := f.list[n-1]
		f.list = f.list[:n-1]
		f.mu.Unlock()
		return t
	}
	f.mu.Unlock()
	if f.New != nil {
		return f.New()
	}
	return new(T)
}

// Put hands t back for a later Get.
func (f *FreeList[T]) Put(t *T) {
	f.mu.Lock()
	f.list = append(f.list, t)
	f.mu.Unlock()
}
