package nn

import (
	"fmt"
	"math"

	"github.com/ldm-go/ldm/internal/kernel"
	"github.com/ldm-go/ldm/internal/safetensors"
)

// EMA is an exponential moving average of a model's weights, as diffusers'
// EMAModel: after every optimiser step, shadow -= (1 - decay) * (shadow -
// param), with a decay that grows from 0 towards Decay. The shadow weights,
// not the trained ones, are what gets saved for sampling.
type EMA struct {
	Decay           float64
	MinDecay        float64
	UpdateAfterStep int64
	UseWarmup       bool
	InvGamma        float64
	Power           float64
	// OptimizationStep counts the updates made.
	OptimizationStep int64
	// Shadow holds the averaged weights by parameter name.
	Shadow map[string][]float32
	params *Params
}

// NewEMA starts an average at the current weights of ps with EMAModel's
// defaults as the training scripts use them: decay 0.9999, warm-up with
// inv_gamma 1 and power 2/3, update_after_step 0, min_decay 0.
func NewEMA(ps *Params) *EMA {
	e := &EMA{Decay: 0.9999, UseWarmup: true, InvGamma: 1, Power: 2.0 / 3.0, Shadow: map[string][]float32{}, params: ps}
	for _, p := range ps.List() {
		e.Shadow[p.Name] = append([]float32(nil), p.Data...)
	}
	return e
}

// DecayAt is the decay used for the update that makes OptimizationStep equal
// to step: 0 for the first step after UpdateAfterStep, then
// 1 - (1 + k/InvGamma)^-Power with warm-up or (1 + k)/(10 + k) without,
// where k = step - UpdateAfterStep - 1, limited to [MinDecay, Decay].
func (e *EMA) DecayAt(step int64) float64 {
	k := max(0, step-e.UpdateAfterStep-1)
	if k <= 0 {
		return 0
	}
	var d float64
	if e.UseWarmup {
		d = 1 - math.Pow(1+float64(k)/e.InvGamma, -e.Power)
	} else {
		d = (1 + float64(k)) / (10 + float64(k))
	}
	return math.Max(math.Min(d, e.Decay), e.MinDecay)
}

// Update moves the shadow weights towards the model's current weights.
func (e *EMA) Update() {
	e.OptimizationStep++
	w := float32(1 - e.DecayAt(e.OptimizationStep))
	list := e.params.List()
	kernel.Parallel(len(list), 2*e.params.Count(), &emaTask{e: e, w: w})
}

// emaTask updates the shadows of parameters [lo, hi); each element is
// independent, so the split over cores changes nothing.
type emaTask struct {
	e *EMA
	w float32
}

func (t *emaTask) Run(lo, hi int) {
	for _, p := range t.e.params.List()[lo:hi] {
		kernel.EMA(t.e.Shadow[p.Name], p.Data, t.w)
	}
}

// CopyTo writes the shadow weights into ps, a model of the same
// architecture (for sampling or saving).
func (e *EMA) CopyTo(ps *Params) {
	for _, p := range ps.List() {
		if s, ok := e.Shadow[p.Name]; ok {
			copy(p.Data, s)
		}
	}
}

// StateTensors returns the shadow weights under the parameters' own names,
// so the file loads as model weights, and the I64 scalar
// "optimization_step".
func (e *EMA) StateTensors() []*safetensors.Tensor {
	out := []*safetensors.Tensor{safetensors.I64Tensor("optimization_step", nil, []int64{e.OptimizationStep})}
	for _, p := range e.params.List() {
		out = append(out, safetensors.F32Tensor(p.Name, p.Shape, e.Shadow[p.Name]))
	}
	return out
}

// LoadState restores the state written by StateTensors.
func (e *EMA) LoadState(f *safetensors.File) error {
	t, ok := f.Tensors["optimization_step"]
	if !ok {
		return fmt.Errorf("EMA state: no tensor \"optimization_step\"")
	}
	s, err := t.Int64()
	if err != nil || len(s) != 1 || s[0] < 0 {
		return fmt.Errorf("EMA state: \"optimization_step\" must be one non-negative I64, found %s %v", t.DType, t.Shape)
	}
	shadow := map[string][]float32{}
	for _, p := range e.params.List() {
		st, ok := f.Tensors[p.Name]
		if !ok {
			return fmt.Errorf("EMA state: missing tensor %q", p.Name)
		}
		v, err := stateArray(e.params, p.Name, p.Name, st)
		if err != nil {
			return err
		}
		shadow[p.Name] = v
	}
	if len(f.Tensors) != len(shadow)+1 {
		for name := range f.Tensors {
			if _, ok := shadow[name]; !ok && name != "optimization_step" {
				return fmt.Errorf("EMA state: unexpected tensor %q", name)
			}
		}
	}
	e.OptimizationStep, e.Shadow = s[0], shadow
	return nil
}
