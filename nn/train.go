package nn

import (
	"fmt"
	"math"
	"path/filepath"

	"github.com/ldm-go/ldm/internal/safetensors"
)

// TrainOptions are the optimisation settings every trainer shares, with
// the names of diffusers' training scripts.
type TrainOptions struct {
	LearningRate float64 // learning_rate
	LRScheduler  string  // lr_scheduler: constant, constant_with_warmup, linear, cosine
	WarmupSteps  int     // lr_warmup_steps
	Steps        int     // max_train_steps (optimiser steps)
	WeightDecay  float64 // adam_weight_decay
	MaxGradNorm  float64 // max_grad_norm; 0 turns clipping off
	Accumulation int     // gradient_accumulation_steps
	EMA          bool    // use_ema
	EMAMaxDecay  float64 // ema_max_decay
	// EMAPower is ema_power, how fast the EMA's decay warms up towards
	// EMAMaxDecay: 1 - (1 + step)^-EMAPower. 0 means EMAModel's 2/3;
	// train_unconditional.py passes 3/4, which averages over more steps
	// and suits runs well short of a million steps.
	EMAPower float64
}

// DefaultTrainOptions are diffusers' train_unconditional.py defaults,
// except the weight decay, which is AdamW's usual 1e-2, and the EMA power,
// which is EMAModel's own default (2/3) rather than the script's 3/4.
func DefaultTrainOptions() TrainOptions {
	return TrainOptions{LearningRate: 1e-4, LRScheduler: "cosine", WarmupSteps: 500, Steps: 10000,
		WeightDecay: 1e-2, MaxGradNorm: 1, Accumulation: 1, EMA: true, EMAMaxDecay: 0.9999}
}

// Optimizer is what a trainer does after back-propagating each
// micro-batch: accumulate, clip, step AdamW at the scheduled rate, update
// the EMA, and zero the gradients.
type Optimizer struct {
	Params   *Params
	AdamW    *AdamW
	Schedule *LRSchedule
	EMA      *EMA // nil without EMA
	Opts     TrainOptions
	Accum    GradAccumulation
}

// NewOptimizer validates the options and sets up the optimiser.
func NewOptimizer(ps *Params, o TrainOptions) (*Optimizer, error) {
	if o.Steps <= 0 {
		return nil, fmt.Errorf("steps: expected a positive number, found %d", o.Steps)
	}
	if o.Accumulation <= 0 {
		return nil, fmt.Errorf("gradient accumulation: expected at least 1, found %d", o.Accumulation)
	}
	if o.MaxGradNorm < 0 || math.IsNaN(o.MaxGradNorm) {
		return nil, fmt.Errorf("max grad norm: expected 0 (off) or more, found %v", o.MaxGradNorm)
	}
	if o.EMAPower < 0 || math.IsNaN(o.EMAPower) {
		return nil, fmt.Errorf("EMA power: expected 0 (the default, 2/3) or more, found %v", o.EMAPower)
	}
	if o.WeightDecay < 0 || math.IsNaN(o.WeightDecay) {
		return nil, fmt.Errorf("weight decay: expected 0 or more, found %v", o.WeightDecay)
	}
	s, err := NewLRSchedule(o.LRScheduler, o.LearningRate, o.WarmupSteps, o.Steps)
	if err != nil {
		return nil, err
	}
	opt := &Optimizer{Params: ps, AdamW: NewAdamW(ps), Schedule: s, Opts: o, Accum: GradAccumulation{Steps: o.Accumulation}}
	opt.AdamW.WeightDecay = o.WeightDecay
	if o.EMA {
		opt.EMA = NewEMA(ps)
		if o.EMAMaxDecay > 0 {
			opt.EMA.Decay = o.EMAMaxDecay
		}
		if o.EMAPower > 0 {
			opt.EMA.Power = o.EMAPower
		}
	}
	return opt, nil
}

// Step is the number of optimiser steps taken.
func (o *Optimizer) Step() int { return int(o.AdamW.Step) }

// LossScale is the factor for each micro-batch's loss gradient.
func (o *Optimizer) LossScale() float32 { return o.Accum.Scale() }

// ErrNonFinite reports a NaN or infinite loss or gradient.
type ErrNonFinite struct {
	Step  int
	What  string // "loss" or "gradient"
	Param string // the first parameter with a non-finite gradient, if known
}

// Error names the step and, where known, the parameter.
func (e *ErrNonFinite) Error() string {
	if e.Param != "" {
		return fmt.Sprintf("step %d: non-finite %s in %s", e.Step, e.What, e.Param)
	}
	return fmt.Sprintf("step %d: non-finite %s", e.Step, e.What)
}

// CheckLoss returns an *ErrNonFinite for a NaN or infinite loss.
func (o *Optimizer) CheckLoss(loss float64) error {
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return &ErrNonFinite{Step: o.Step() + 1, What: "loss"}
	}
	return nil
}

// MicroStep records a back-propagated micro-batch. When the accumulation is
// complete it clips, steps AdamW, updates the EMA and zeroes the gradients,
// and returns stepped = true with the gradient norm (before clipping) and
// the learning rate used. A non-finite gradient stops with *ErrNonFinite
// before any weight changes.
func (o *Optimizer) MicroStep() (stepped bool, gradNorm, lr float64, err error) {
	if !o.Accum.Done() {
		return false, 0, 0, nil
	}
	var ss float64
	for _, p := range o.Params.List() {
		for _, g := range p.Grad {
			ss += float64(g) * float64(g)
		}
	}
	if math.IsNaN(ss) || math.IsInf(ss, 0) {
		name := ""
		for _, p := range o.Params.List() {
			for _, g := range p.Grad {
				if math.IsNaN(float64(g)) || math.IsInf(float64(g), 0) {
					name = p.Name
					break
				}
			}
			if name != "" {
				break
			}
		}
		return false, 0, 0, &ErrNonFinite{Step: o.Step() + 1, What: "gradient", Param: name}
	}
	gradNorm = math.Sqrt(ss)
	if o.Opts.MaxGradNorm > 0 {
		gradNorm = ClipGradNorm(o.Params, o.Opts.MaxGradNorm)
	}
	lr = o.Schedule.LR(o.Step())
	o.AdamW.Update(lr)
	if o.EMA != nil {
		o.EMA.Update()
	}
	o.Params.ZeroGrad()
	return true, gradNorm, lr, nil
}

// Weights returns the parameters to save for sampling: the EMA's shadow
// copied into a fresh set when EMA is on, else ps itself.
func (o *Optimizer) Weights(fresh *Params) *Params {
	if o.EMA == nil {
		return o.Params
	}
	o.EMA.CopyTo(fresh)
	return fresh
}

// Checkpoint file names inside a checkpoint folder.
const (
	OptimizerFile = "optimizer.safetensors"
	EMAFile       = "ema.safetensors"
)

// SaveState writes the optimiser (and EMA) state into dir.
func (o *Optimizer) SaveState(dir string) error {
	if err := safetensors.WriteFile(filepath.Join(dir, OptimizerFile), o.AdamW.StateTensors(), nil); err != nil {
		return err
	}
	if o.EMA != nil {
		return safetensors.WriteFile(filepath.Join(dir, EMAFile), o.EMA.StateTensors(), map[string]string{"format": "pt"})
	}
	return nil
}

// LoadState restores the state SaveState wrote.
func (o *Optimizer) LoadState(dir string) error {
	f, err := safetensors.ReadFile(filepath.Join(dir, OptimizerFile))
	if err != nil {
		return err
	}
	if err := o.AdamW.LoadState(f); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, OptimizerFile), err)
	}
	if o.EMA != nil {
		f, err := safetensors.ReadFile(filepath.Join(dir, EMAFile))
		if err != nil {
			return err
		}
		if err := o.EMA.LoadState(f); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(dir, EMAFile), err)
		}
	}
	return nil
}
