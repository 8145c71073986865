package workers

import (
	"sync"
	"sync/atomic"
)

// Part is one piece of a job split by batch (a model's forward on some of
// the images), which Start runs on a part worker.
type Part interface {
	RunPart()
}

// Split is a job split into parts that run at the same time, a core each.
// BeginSplit reserves the cores of all parts but the caller's, and every
// part calls Done as it finishes: all but the last hand their core back,
// so that the kernels of the parts still running use it. When another
// process slows one core, the part on it would otherwise finish alone,
// long after the others.
type Split struct{ running atomic.Int32 }

var splits FreeList[Split]

// BeginSplit starts a split job of parts parts; the caller runs one of them
// and Starts the others with the Split. Call End once all have been
// waited for.
func BeginSplit(parts int) *Split {
	s := splits.Get()
	s.running.Store(int32(parts))
	reserved.Add(int32(parts - 1))
	return s
}

// Done marks a part finished; Start's workers call it for theirs.
func (s *Split) Done() {
	if s.running.Add(-1) > 0 {
		reserved.Add(-1)
	}
}

// End recycles s; every part must have called Done.
func (s *Split) End() { splits.Put(s) }

// Started is a part running on a part worker; Wait for it.
type Started struct {
	p     Part
	split *Split
	done  chan struct{}
}

// Wait returns when the part has run, and recycles s. Like the helpers,
// it polls briefly before parking: the parts of a split batch end close
// together, and a parked thread takes long to wake on a virtual machine.
func (s *Started) Wait() {
	Await(s.done)
	s.p, s.split = nil, nil
	started.Put(s)
}

var started = FreeList[Started]{New: func() *Started { return &Started{done: make(chan struct{}, 1)} }}

// Part workers are long-lived goroutines that only run parts, so that a
// split job allocates nothing per call. They are not the kernels' helpers:
// a part issues parallel kernel calls itself, and a helper running one
// could wait for the queue it is meant to drain.
var partWorkers struct {
	mu   sync.Mutex
	n    int
	jobs chan *Started
}

// Start runs p, a part of split, on a part worker, creating one if fewer
// than workers exist. The part queues until a worker is free: workers never
// wait for callers, so concurrent split jobs only queue.
func Start(p Part, workers int, split *Split) *Started {
	pw := &partWorkers
	pw.mu.Lock()
	if pw.jobs == nil {
		// Buffered, so that the caller goes on to its own part at once
		// instead of parking until a worker (polling, or waking) takes it.
		pw.jobs = make(chan *Started, 64)
	}
	for ; pw.n < workers; pw.n++ {
		go partWorker(pw.jobs)
	}
	pw.mu.Unlock()
	s := started.Get()
	s.p, s.split = p, split
	pw.jobs <- s
	return s
}

// partWorker runs parts, polling briefly for the next before parking: a
// split job's next call follows within microseconds when a model runs
// step after step.
func partWorker(jobs <-chan *Started) {
	for {
		s := Await(jobs)
		s.p.RunPart()
		s.split.Done()
		s.done <- struct{}{}
	}
}
