package nn

import (
	"github.com/ldm-go/ldm/internal/kernel"
	"github.com/ldm-go/ldm/internal/workers"
)

// Data-parallel training steps. A batch of at least 2*MinPartImages images
// is split into TrainParts parts, whose forward and backward passes run at
// the same time on copies of the model that share its weights and keep
// their own gradients, the kernels of each on one core: at the default
// model's sizes a batch's kernels alone cannot keep two cores busy. The
// split depends on the batch size alone, and the parts' gradients are
// added in part order, so the weights a seed gives never depend on the
// thread count.

// TrainParts is how many parts a large enough batch is split into; tests
// change it to compare with an unsplit batch.
var TrainParts = 2

// MinPartImages is the fewest images a part gets.
const MinPartImages = 4

// BatchParts is the number of parts a batch of b images is split into.
func BatchParts(b int) int {
	if b < 2*MinPartImages {
		return 1
	}
	return min(TrainParts, b/MinPartImages)
}

// PartBounds is the range of images [lo, hi) of part k of n of a batch of b.
func PartBounds(b, n, k int) (lo, hi int) { return k * b / n, (k + 1) * b / n }

// RunParts runs parts[0] on the caller's goroutine and the others on part
// workers when there are cores to spare, each part's kernels then on one
// core until a part finishes and hands its core on (workers.Split);
// otherwise it runs them one after another.
func RunParts(parts []workers.Part) {
	n := len(parts)
	if n == 1 || workers.Procs() == 1 {
		for _, p := range parts {
			p.RunPart()
		}
		return
	}
	sp := workers.BeginSplit(n)
	var started [8]*workers.Started
	for k := 1; k < n; k++ {
		started[k] = workers.Start(parts[k], n-1, sp)
	}
	parts[0].RunPart()
	sp.Done()
	for k := 1; k < n; k++ {
		started[k].Wait()
	}
	sp.End()
}

// ShareData makes every parameter of ps use the data of the parameter of
// from at the same position: a copy of a model built from the same config
// then computes with the original's weights.
func (ps *Params) ShareData(from *Params) {
	for i, p := range ps.list {
		p.Data = from.list[i].Data
	}
}

// AddGradsFrom adds the gradients of from (a copy sharing ps's data) into
// ps's and clears them.
func (ps *Params) AddGradsFrom(from *Params) {
	for i, q := range from.list {
		if q.Grad == nil {
			continue
		}
		kernel.AddInto(ps.list[i].EnsureGrad(), q.Grad)
		clear(q.Grad)
	}
}
