package scheduler

import (
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/ldm-go/ldm/nn"
	"gorgonia.org/tensor"
)

// contractConfigs are configurations of every registered class, covering
// the options the golden cases do not (thresholding, learned variance,
// Karras sigmas, zero-SNR rescaling, ...).
func contractConfigs(t *testing.T) []*Config {
	t.Helper()
	var out []*Config
	for _, js := range []string{
		`{"_class_name":"DDPMScheduler","variance_type":"fixed_small_log","thresholding":true,"sample_max_value":2.5}`,
		`{"_class_name":"DDPMScheduler","variance_type":"fixed_large","beta_schedule":"sigmoid","timestep_spacing":"trailing"}`,
		`{"_class_name":"DDIMScheduler","rescale_betas_zero_snr":true,"prediction_type":"v_prediction","timestep_spacing":"trailing","set_alpha_to_one":false}`,
		`{"_class_name":"PNDMScheduler","steps_offset":1}`,
		`{"_class_name":"PNDMScheduler","skip_prk_steps":true,"set_alpha_to_one":true}`,
		`{"_class_name":"EulerDiscreteScheduler","use_karras_sigmas":true,"final_sigmas_type":"sigma_min","prediction_type":"sample"}`,
		`{"_class_name":"EulerDiscreteScheduler","timestep_type":"continuous","prediction_type":"v_prediction"}`,
		`{"_class_name":"EulerAncestralDiscreteScheduler","rescale_betas_zero_snr":true}`,
		`{"_class_name":"HeunDiscreteScheduler","use_karras_sigmas":true,"clip_sample":true}`,
		`{"_class_name":"LMSDiscreteScheduler","use_karras_sigmas":true,"timestep_spacing":"leading","steps_offset":1}`,
		`{"_class_name":"DPMSolverMultistepScheduler","solver_order":3}`,
		`{"_class_name":"DPMSolverMultistepScheduler","algorithm_type":"sde-dpmsolver++","use_karras_sigmas":true}`,
		`{"_class_name":"UniPCMultistepScheduler"}`,
	} {
		c, err := ParseConfig([]byte(js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		if Registered(c.ClassName) {
			out = append(out, c)
		}
	}
	return out
}

func newTensor(shape ...int) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Float32))
}

// runLoop runs a sampling loop with a fixed stand-in model and returns the
// final sample and the number of heap allocations made by ScaleModelInput
// and Step after the first step.
func runLoop(t *testing.T, s Scheduler, n int, seed uint64) ([]float32, uint64) {
	t.Helper()
	if err := s.SetTimesteps(n); err != nil {
		t.Fatal(err)
	}
	shape := []int{2, 3, 4, 4}
	sample, in, out := newTensor(shape...), newTensor(shape...), newTensor(shape...)
	rng := nn.NewRNG(seed, 0)
	x := sample.Data().([]float32)
	rng.FillNormal(x)
	sig := float32(s.InitNoiseSigma())
	for i := range x {
		x[i] *= sig
	}
	var ms runtime.MemStats
	var before uint64
	mi, mo := in.Float32s(), out.Float32s()
	for i, ts := range s.Timesteps() {
		if i == 1 {
			runtime.ReadMemStats(&ms)
			before = ms.Mallocs
		}
		if err := s.ScaleModelInput(in, sample, ts); err != nil {
			t.Fatalf("%s step %d: %v", s.Config().ClassName, i, err)
		}
		for k := range mi {
			mo[k] = float32(math.Tanh(float64(mi[k])))*0.7 + 0.05
		}
		o, err := s.Step(out, ts, sample, rng)
		if err != nil {
			t.Fatalf("%s step %d: %v", s.Config().ClassName, i, err)
		}
		copy(x, o.PrevSample.Float32s())
	}
	runtime.ReadMemStats(&ms)
	allocs := ms.Mallocs - before
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("%s: final sample[%d] = %v", s.Config().ClassName, i, v)
		}
	}
	return append([]float32(nil), x...), allocs
}

// TestReuseIsIdentical checks that SetTimesteps resets all run state: a
// second run (after a run with another step count) matches a fresh
// scheduler bit for bit, and steps after the first do not allocate (in
// one of three runs: the count is the whole process's).
func TestReuseIsIdentical(t *testing.T) {
	for _, c := range contractConfigs(t) {
		fresh, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := runLoop(t, fresh, 7, 3)
		reused, _ := New(c)
		runLoop(t, reused, 5, 9)
		got, allocs := runLoop(t, reused, 7, 3)
		// The count is process-wide (runtime.MemStats): a run that
		// allocates per step does so every time, where a stray
		// allocation elsewhere in the process does not repeat.
		for i := 0; i < 2 && allocs != 0; i++ {
			_, allocs = runLoop(t, reused, 7, 3)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: reused run differs at %d: %v vs %v", c.ClassName, i, got[i], want[i])
				break
			}
		}
		if allocs != 0 {
			t.Errorf("%s: %d allocations in steps after the first", c.ClassName, allocs)
		}
	}
}

func TestArgumentErrors(t *testing.T) {
	for _, c := range contractConfigs(t) {
		name := c.ClassName
		s, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		x, mo := newTensor(1, 3, 4, 4), newTensor(1, 3, 4, 4)
		if _, err := s.Step(mo, 999, x, nn.NewRNG(1, 0)); err == nil {
			t.Errorf("%s: Step before SetTimesteps accepted", name)
		}
		for _, n := range []int{0, -3, c.NumTrainTimesteps + 1} {
			if err := s.SetTimesteps(n); err == nil || !strings.Contains(err.Error(), "steps") {
				t.Errorf("%s: SetTimesteps(%d): %v", name, n, err)
			}
		}
		if err := s.SetTimesteps(10); err != nil {
			t.Fatal(err)
		}
		t0 := s.Timesteps()[0]
		if _, err := s.Step(mo, 12345.5, x, nn.NewRNG(1, 0)); err == nil || !strings.Contains(err.Error(), "12345.5") {
			t.Errorf("%s: timestep outside the schedule: %v", name, err)
		}
		if err := s.SetTimesteps(10); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Step(newTensor(1, 3, 4, 5), t0, x, nn.NewRNG(1, 0)); err == nil || !strings.Contains(err.Error(), "shape") {
			t.Errorf("%s: mismatched shapes: %v", name, err)
		}
		if err := s.ScaleModelInput(newTensor(2, 3, 4, 4), x, t0); err == nil {
			t.Errorf("%s: ScaleModelInput with a wrong dst shape accepted", name)
		}
		if _, err := s.Step(mo, t0, nil, nil); err == nil {
			t.Errorf("%s: nil sample accepted", name)
		}
		f64 := tensor.New(tensor.WithShape(1, 3, 4, 4), tensor.Of(tensor.Float64))
		if _, err := s.Step(mo, t0, f64, nil); err == nil || !strings.Contains(err.Error(), "float32") {
			t.Errorf("%s: float64 sample: %v", name, err)
		}
		if err := s.AddNoise(newTensor(2, 3, 4, 4), newTensor(2, 3, 4, 4), newTensor(2, 3, 4, 4), []float64{t0}); err == nil {
			t.Errorf("%s: AddNoise with 1 timestep for 2 samples accepted", name)
		}
		if err := s.GetVelocity(newTensor(1, 2), newTensor(1, 2), newTensor(1, 2), []float64{float64(c.NumTrainTimesteps)}); err == nil {
			t.Errorf("%s: GetVelocity with a timestep out of range accepted", name)
		}
	}
}

func TestStochasticStepNeedsNoise(t *testing.T) {
	for _, js := range []string{`{"_class_name":"DDPMScheduler"}`, `{"_class_name":"EulerAncestralDiscreteScheduler"}`} {
		c, _ := ParseConfig([]byte(js))
		s, _ := New(c)
		s.SetTimesteps(4)
		x := newTensor(1, 1, 2, 2)
		t0 := s.Timesteps()[0]
		if err := s.ScaleModelInput(newTensor(1, 1, 2, 2), x, t0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Step(newTensor(1, 1, 2, 2), t0, x, nil); err == nil || !strings.Contains(err.Error(), "Noise") {
			t.Errorf("%s: nil noise: %v", c.ClassName, err)
		}
	}
}

// TestDDPMLearnedVariance checks the channel split of learned variances:
// the first half of the channels must act exactly as a fixed-variance
// model output does when the variance half reproduces that variance.
func TestDDPMLearnedVariance(t *testing.T) {
	fixed, _ := ParseConfig([]byte(`{"_class_name":"DDPMScheduler","variance_type":"fixed_small","clip_sample":false}`))
	learned, _ := ParseConfig([]byte(`{"_class_name":"DDPMScheduler","variance_type":"learned","clip_sample":false}`))
	a, _ := New(fixed)
	b, _ := New(learned)
	a.SetTimesteps(10)
	b.SetTimesteps(10)
	t0 := a.Timesteps()[2]
	x := newTensor(2, 3, 2, 2)
	nn.NewRNG(5, 0).FillNormal(x.Data().([]float32))
	eps := newTensor(2, 3, 2, 2)
	nn.NewRNG(6, 0).FillNormal(eps.Data().([]float32))
	// The fixed_small variance at t0, from the tables.
	ac := a.AlphasCumprod()
	at, ap := ac[int(t0)], ac[int(t0)-100]
	v := float32((1-ap)/(1-at)) * (1 - at/ap)
	two := newTensor(2, 6, 2, 2)
	td, ed := two.Data().([]float32), eps.Data().([]float32)
	for bi := 0; bi < 2; bi++ {
		copy(td[bi*24:bi*24+12], ed[bi*12:(bi+1)*12])
		for k := bi*24 + 12; k < (bi+1)*24; k++ {
			td[k] = v
		}
	}
	oa, err := a.Step(eps, t0, x, nn.NewRNG(7, 0))
	if err != nil {
		t.Fatal(err)
	}
	ob, err := b.Step(two, t0, x, nn.NewRNG(7, 0))
	if err != nil {
		t.Fatal(err)
	}
	pa, pb := oa.PrevSample.Data().([]float32), ob.PrevSample.Data().([]float32)
	for i := range pa {
		if math.Abs(float64(pa[i]-pb[i])) > 1e-6 {
			t.Fatalf("learned variance split: %v vs %v at %d", pb[i], pa[i], i)
		}
	}
	if _, err := b.Step(eps, t0, x, nn.NewRNG(7, 0)); err == nil || !strings.Contains(err.Error(), "twice the channels") {
		t.Errorf("learned variance without variance channels: %v", err)
	}
}

// TestVelocityRoundTrip checks GetVelocity against AddNoise: with
// x_t = sqrt(a) x0 + sqrt(1-a) eps and v = sqrt(a) eps - sqrt(1-a) x0,
// sqrt(a) x_t - sqrt(1-a) v recovers x0.
func TestVelocityRoundTrip(t *testing.T) {
	c, _ := ParseConfig([]byte(`{"_class_name":"DDPMScheduler","beta_schedule":"scaled_linear","beta_start":0.00085,"beta_end":0.012}`))
	s, _ := New(c)
	x0, eps, xt, v := newTensor(3, 2, 3, 3), newTensor(3, 2, 3, 3), newTensor(3, 2, 3, 3), newTensor(3, 2, 3, 3)
	nn.NewRNG(1, 0).FillNormal(x0.Data().([]float32))
	nn.NewRNG(2, 0).FillNormal(eps.Data().([]float32))
	ts := []float64{0, 500, 999}
	if err := s.AddNoise(xt, x0, eps, ts); err != nil {
		t.Fatal(err)
	}
	if err := s.GetVelocity(v, x0, eps, ts); err != nil {
		t.Fatal(err)
	}
	per := 18
	for b, tt := range ts {
		a := float64(s.AlphasCumprod()[int(tt)])
		for k := b * per; k < (b+1)*per; k++ {
			got := math.Sqrt(a)*float64(xt.Data().([]float32)[k]) - math.Sqrt(1-a)*float64(v.Data().([]float32)[k])
			if want := float64(x0.Data().([]float32)[k]); math.Abs(got-want) > 1e-5 {
				t.Fatalf("t=%v: recovered x0 %v, want %v", tt, got, want)
			}
		}
	}
}
