package nn

import (
	"fmt"
	"math"
	"strings"

	"github.com/ldm-go/ldm/internal/kernel"
	"github.com/ldm-go/ldm/internal/safetensors"
)

// AdamW is torch.optim.AdamW (decoupled weight decay) over a model's
// parameters, with diffusers' training-script defaults from NewAdamW.
// Parameters whose Grad is nil are skipped, as PyTorch skips parameters
// without a gradient.
type AdamW struct {
	Params      *Params
	Beta1       float64
	Beta2       float64
	Eps         float64
	WeightDecay float64
	// Step counts the optimiser steps taken; bias corrections use it.
	Step int64
	// ExpAvg and ExpAvgSq are the first and second moment estimates by
	// parameter name, created at a parameter's first update.
	ExpAvg, ExpAvgSq map[string][]float32
}

// NewAdamW returns AdamW with betas (0.9, 0.999), eps 1e-8 and weight decay
// 1e-2.
func NewAdamW(ps *Params) *AdamW {
	return &AdamW{Params: ps, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 1e-2,
		ExpAvg: map[string][]float32{}, ExpAvgSq: map[string][]float32{}}
}

// Update applies one step with learning rate lr to every parameter that has
// a gradient. The arithmetic follows torch's single-tensor AdamW in float32:
// p *= 1 - lr*wd; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g;
// p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps), where the scalar
// factors are computed in float64 and rounded once.
func (o *AdamW) Update(lr float64) {
	o.Step++
	t := float64(o.Step)
	decay := float32(1 - lr*o.WeightDecay)
	b1, b2 := float32(o.Beta1), float32(o.Beta2)
	c1, c2 := float32(1-o.Beta1), float32(1-o.Beta2)
	stepSize := float32(lr / (1 - math.Pow(o.Beta1, t)))
	bc2Sqrt := float32(math.Sqrt(1 - math.Pow(o.Beta2, t)))
	eps := float32(o.Eps)
	// The state is allocated first: the update below runs parameters in
	// parallel, and each element's arithmetic is independent of the others.
	for _, p := range o.Params.List() {
		if p.Grad != nil && o.ExpAvg[p.Name] == nil {
			o.ExpAvg[p.Name], o.ExpAvgSq[p.Name] = make([]float32, len(p.Data)), make([]float32, len(p.Data))
		}
	}
	t2 := &adamTask{o: o, c: kernel.AdamConsts{Decay: decay, B1: b1, B2: b2, C1: c1, C2: c2, StepSize: stepSize, BC2Sqrt: bc2Sqrt, Eps: eps}}
	list := o.Params.List()
	kernel.Parallel(len(list), o.Params.Count(), t2)
}

// adamTask updates parameters [lo, hi) of the list.
type adamTask struct {
	o *AdamW
	c kernel.AdamConsts
}

func (t *adamTask) Run(lo, hi int) {
	for _, p := range t.o.Params.List()[lo:hi] {
		if p.Grad == nil {
			continue
		}
		kernel.AdamW(p.Data, p.Grad, t.o.ExpAvg[p.Name], t.o.ExpAvgSq[p.Name], &t.c)
	}
}

// StateTensors returns the optimiser state for a checkpoint: F32 tensors
// "exp_avg.<param>" and "exp_avg_sq.<param>" shaped as the parameters, and
// the I64 scalar "step".
func (o *AdamW) StateTensors() []*safetensors.Tensor {
	out := []*safetensors.Tensor{safetensors.I64Tensor("step", nil, []int64{o.Step})}
	for _, p := range o.Params.List() {
		if m := o.ExpAvg[p.Name]; m != nil {
			out = append(out, safetensors.F32Tensor("exp_avg."+p.Name, p.Shape, m),
				safetensors.F32Tensor("exp_avg_sq."+p.Name, p.Shape, o.ExpAvgSq[p.Name]))
		}
	}
	return out
}

// LoadState restores the state written by StateTensors. Errors name the
// offending tensor.
func (o *AdamW) LoadState(f *safetensors.File) error {
	step, err := loadStep(f)
	if err != nil {
		return err
	}
	m, v := map[string][]float32{}, map[string][]float32{}
	for name, t := range f.Tensors {
		if name == "step" {
			continue
		}
		var dst map[string][]float32
		var pname string
		switch {
		case strings.HasPrefix(name, "exp_avg_sq."):
			dst, pname = v, strings.TrimPrefix(name, "exp_avg_sq.")
		case strings.HasPrefix(name, "exp_avg."):
			dst, pname = m, strings.TrimPrefix(name, "exp_avg.")
		default:
			return fmt.Errorf("optimizer state: unexpected tensor %q", name)
		}
		vals, err := stateArray(o.Params, name, pname, t)
		if err != nil {
			return err
		}
		dst[pname] = vals
	}
	for name := range m {
		if v[name] == nil {
			return fmt.Errorf("optimizer state: exp_avg.%s has no exp_avg_sq.%s", name, name)
		}
	}
	for name := range v {
		if m[name] == nil {
			return fmt.Errorf("optimizer state: exp_avg_sq.%s has no exp_avg.%s", name, name)
		}
	}
	o.Step, o.ExpAvg, o.ExpAvgSq = step, m, v
	return nil
}

// loadStep reads the I64 scalar "step".
func loadStep(f *safetensors.File) (int64, error) {
	t, ok := f.Tensors["step"]
	if !ok {
		return 0, fmt.Errorf("optimizer state: no tensor \"step\"")
	}
	s, err := t.Int64()
	if err != nil || len(s) != 1 || s[0] < 0 {
		return 0, fmt.Errorf("optimizer state: \"step\" must be one non-negative I64, found %s %v", t.DType, t.Shape)
	}
	return s[0], nil
}

// stateArray checks that tensor name holds float32 values shaped as
// parameter pname and returns them.
func stateArray(ps *Params, name, pname string, t *safetensors.Tensor) ([]float32, error) {
	p := ps.Get(pname)
	if p == nil {
		return nil, fmt.Errorf("state tensor %q: the model has no parameter %q", name, pname)
	}
	if !equalShape(t.Shape, p.Shape) {
		return nil, fmt.Errorf("state tensor %q has shape %v, expected %v", name, t.Shape, p.Shape)
	}
	vals, err := t.Float32()
	if err != nil {
		return nil, fmt.Errorf("state tensor %q: %w", name, err)
	}
	return vals, nil
}

// ClipGradNorm scales every gradient by maxNorm / (total + 1e-6) when that
// is below 1, where total is the Euclidean norm of all gradients together,
// and returns total: torch.nn.utils.clip_grad_norm_ with the 2-norm. The
// norm is accumulated in float64 in parameter order.
func ClipGradNorm(ps *Params, maxNorm float64) float64 {
	var ss float64
	for _, p := range ps.List() {
		for _, g := range p.Grad {
			ss += float64(g) * float64(g)
		}
	}
	total := math.Sqrt(ss)
	coef := maxNorm / (total + 1e-6)
	if coef < 1 {
		c := float32(coef)
		for _, p := range ps.List() {
			for i := range p.Grad {
				p.Grad[i] *= c
			}
		}
	}
	return total
}

// GradAccumulation spreads one optimiser step over Steps micro-batches, as
// accelerate's gradient accumulation: each micro-batch back-propagates its
// loss times Scale(), so the summed gradients are those of the mean loss,
// and Done after each micro-batch says when to step and zero the gradients.
type GradAccumulation struct {
	Steps int
	// Micro counts the micro-batches since the last optimiser step.
	Micro int
}

// Scale is 1/Steps, the factor for each micro-batch's loss gradient.
func (a *GradAccumulation) Scale() float32 { return 1 / float32(max(a.Steps, 1)) }

// Done records one micro-batch and reports whether the optimiser should
// step now.
func (a *GradAccumulation) Done() bool {
	a.Micro++
	if a.Micro >= max(a.Steps, 1) {
		a.Micro = 0
		return true
	}
	return false
}

// LRSchedule is a learning-rate schedule of diffusers.optimization's
// get_scheduler: the rate at optimiser step s (0 for the first step) is
// BaseLR * Factor(s).
type LRSchedule struct {
	// Name is "constant", "constant_with_warmup", "linear" or "cosine".
	Name        string
	BaseLR      float64
	WarmupSteps int
	TotalSteps  int // for "linear" and "cosine"
	// NumCycles is the number of cosine waves; diffusers' default 0.5
	// decays once from BaseLR to 0.
	NumCycles float64
}

// NewLRSchedule validates a schedule. total is only read by the decaying
// schedules.
func NewLRSchedule(name string, baseLR float64, warmup, total int) (*LRSchedule, error) {
	switch name {
	case "constant", "constant_with_warmup", "linear", "cosine":
	default:
		return nil, fmt.Errorf("lr_scheduler: expected constant, constant_with_warmup, linear or cosine, found %q", name)
	}
	if !(baseLR > 0) || math.IsInf(baseLR, 0) {
		return nil, fmt.Errorf("learning_rate: expected a positive number, found %v", baseLR)
	}
	if warmup < 0 {
		return nil, fmt.Errorf("lr_warmup_steps: expected >= 0, found %d", warmup)
	}
	if (name == "linear" || name == "cosine") && total <= 0 {
		return nil, fmt.Errorf("%s schedule: the number of training steps must be positive, found %d", name, total)
	}
	return &LRSchedule{Name: name, BaseLR: baseLR, WarmupSteps: warmup, TotalSteps: total, NumCycles: 0.5}, nil
}

// Factor is the multiplier of BaseLR at optimiser step s.
func (l *LRSchedule) Factor(s int) float64 {
	if l.Name == "constant" {
		return 1
	}
	if s < l.WarmupSteps {
		return float64(s) / float64(max(1, l.WarmupSteps))
	}
	switch l.Name {
	case "linear":
		return math.Max(0, float64(l.TotalSteps-s)/float64(max(1, l.TotalSteps-l.WarmupSteps)))
	case "cosine":
		progress := float64(s-l.WarmupSteps) / float64(max(1, l.TotalSteps-l.WarmupSteps))
		return math.Max(0, 0.5*(1+math.Cos(math.Pi*l.NumCycles*2*progress)))
	}
	return 1
}

// LR is the learning rate at optimiser step s.
func (l *LRSchedule) LR(s int) float64 { return l.BaseLR * l.Factor(s) }
