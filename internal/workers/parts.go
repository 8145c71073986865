package workers

import "sync"

// Part is one piece of a job split by batch (a model's forward on some of
// the images), which Start runs on a part worker.
type Part interface {
	RunPart()
}

// Started is a part running on a part worker; Wait for it.
type Started struct {
	p    Part
	done chan struct{}
}

// Wait returns when the part has run, and recycles s. Like the helpers,
// it polls briefly before parking: the parts of a split batch end close
// together, and a parked thread takes long to wake on a virtual machine.
func (s *Started) Wait() {
	Await(s.done)
	s.p = nil
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

// Start runs p on a part worker, creating one if fewer than workers exist.
// The part queues until a worker is free: workers never wait for callers,
// so concurrent split jobs only queue. The caller should Reserve a core for
// each part it starts while they run.
func Start(p Part, workers int) *Started {
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
	s.p = p
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
		s.done <- struct{}{}
	}
}
