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
		j := poll(jobs)
		if j == nil {
			j = <-jobs
		}
		j.Work()
	}
}

// poll polls jobs for up to spin and returns nil if none came.
func poll(jobs <-chan Job) Job {
	var start time.Time
	for i := 0; ; i++ {
		select {
		case j := <-jobs:
			return j
		default:
		}
		if i%64 == 0 {
			if i == 0 {
				start = time.Now()
			} else if time.Since(start) > spin {
				return nil
			}
		}
		// Yield now and then, not on every poll: the scheduler lock it
		// takes would slow the goroutines doing the work.
		if i%512 == 511 {
			runtime.Gosched()
		}
	}
}
