package scheduler

import "gorgonia.org/tensor"

// Noise supplies standard normal values to stochastic steps. *nn.RNG is one;
// the pipeline passes a source that fills each image of a batch from its own
// stream, and the golden tests pass one that replays diffusers' recorded noise.
type Noise interface {
	FillNormal(dst []float32)
}

// StepOutput is what one Step returns. Its tensors belong to the scheduler
// and are overwritten by the next Step; copy them to keep them.
type StepOutput struct {
	// PrevSample is the sample at the previous (less noisy) timestep.
	PrevSample *tensor.Dense
	// PredOriginalSample is the model's estimate of the clean sample x0,
	// or nil where the method does not form one at this step.
	PredOriginalSample *tensor.Dense
}

// Scheduler is the contract every sampler meets, in diffusers' terms.
//
// A Scheduler is not safe for concurrent use: it keeps the step index and,
// for multistep methods, the history of model outputs. SetTimesteps resets
// that state, so a scheduler can be reused for any number of runs.
type Scheduler interface {
	// SetTimesteps prepares n inference steps and resets all run state.
	SetTimesteps(n int) error
	// Timesteps lists the timesteps in the order Step must be called with
	// them (Heun and PNDM repeat some). They are integers for most methods
	// and fractional for some sigma-based ones.
	Timesteps() []float64
	// Sigmas lists the noise levels of the schedule (one more than the
	// timesteps, ending at the final sigma), or nil for methods without them.
	Sigmas() []float32
	// InitNoiseSigma is the standard deviation of the initial noise.
	InitNoiseSigma() float64
	// ScaleModelInput writes the model input for sample at timestep t to dst
	// (dst may be sample).
	ScaleModelInput(dst, sample *tensor.Dense, t float64) error
	// Step takes one reverse step from the model output at timestep t.
	// noise is used only by stochastic methods and may be nil otherwise.
	Step(modelOutput *tensor.Dense, t float64, sample *tensor.Dense, noise Noise) (*StepOutput, error)
	// AddNoise is forward diffusion: dst = x_t for clean samples x0 with the
	// given noise, timesteps[i] applying to batch element i.
	AddNoise(dst, original, noise *tensor.Dense, timesteps []float64) error
	// GetVelocity writes the v-prediction training target to dst:
	// sqrt(alphas_cumprod[t])*noise - sqrt(1-alphas_cumprod[t])*sample,
	// timesteps[i] (integer training timesteps) applying to batch element i.
	GetVelocity(dst, sample, noise *tensor.Dense, timesteps []float64) error
	// AlphasCumprod is the float32 table of cumulative alphas indexed by
	// training timestep. It belongs to the scheduler: do not modify it.
	AlphasCumprod() []float32
	// Config is the configuration the scheduler was built from.
	Config() *Config
}
