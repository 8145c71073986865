package unet

import (
	"github.com/ldm-go/ldm/internal/workers"
	"github.com/ldm-go/ldm/nn"
)

// minSplit is the fewest images a part of a split batch gets. At the
// default model's 4x8x8 latents, halves of 4 images still run faster on two
// cores than the whole batch with the kernels' own threads, whose parallel
// sections are too short at that size to keep two cores busy.
const minSplit = 4

// forwardParts runs a batch as parts consecutive runs of images, the first
// on the caller's goroutine with ws and the others on part workers
// (workers.Start), each with its own workspace, and gathers their outputs
// into one tensor from ws. Every image's result is the bits of forward on the whole batch: no
// layer mixes images.
func (m *Model) forwardParts(ws *nn.Workspace, x *nn.Tensor, timesteps []float32, classLabels []int, parts int) *nn.Tensor {
	n := x.N
	per := x.C * x.H * x.W
	var jobs [maxParts]*partJob
	parts = min(parts, maxParts)
	sub := func(k int) (*nn.Tensor, []float32, []int) {
		lo, hi := nn.PartBounds(n, parts, k)
		xs := &nn.Tensor{Data: x.Data[lo*per : hi*per], N: hi - lo, C: x.C, H: x.H, W: x.W}
		ts := timesteps
		if len(ts) > 1 {
			ts = ts[lo:hi]
		}
		var ls []int
		if classLabels != nil {
			ls = classLabels[lo:hi]
		}
		return xs, ts, ls
	}
	// The parts take the cores: their kernels run on one thread each,
	// until a part finishes and hands its core to those still running.
	sp := workers.BeginSplit(parts)
	for k := 1; k < parts; k++ {
		j := freeParts.Get()
		j.m = m
		j.x, j.ts, j.labels = sub(k)
		j.started = workers.Start(j, parts-1, sp)
		jobs[k] = j
	}
	xs, ts, ls := sub(0)
	first := m.forward(ws, xs, ts, ls)
	sp.Done()
	out := ws.Tensor(n, first.C, first.H, first.W)
	oper := first.C * first.H * first.W
	copy(out.Data, first.Data)
	ws.ReleaseTensor(first)
	for k := 1; k < parts; k++ {
		j := jobs[k]
		j.started.Wait()
		lo, _ := nn.PartBounds(n, parts, k)
		copy(out.Data[lo*oper:], j.out.Data)
		j.ws.ReleaseTensor(j.out)
		j.release()
	}
	sp.End()
	return out
}

// maxParts bounds the parts of one batch, which keeps their jobs in an
// array on the stack.
const maxParts = 64

// partJob is one part of a split batch, run by a part worker.
type partJob struct {
	m      *Model
	x      *nn.Tensor
	ts     []float32
	labels []int
	ws     *nn.Workspace // the job's own, reused with the job
	out    *nn.Tensor
	// started is the part on its worker.
	started *workers.Started
}

var freeParts = workers.FreeList[partJob]{New: func() *partJob {
	return &partJob{ws: nn.NewWorkspace()}
}}

// RunPart runs the part's forward (workers.Part).
func (j *partJob) RunPart() { j.out = j.m.forward(j.ws, j.x, j.ts, j.labels) }

// release hands j back to the free list without its references.
func (j *partJob) release() {
	j.m, j.x, j.ts, j.labels, j.out, j.started = nil, nil, nil, nil, nil, nil
	freeParts.Put(j)
}
