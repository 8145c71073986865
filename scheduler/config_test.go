package scheduler

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestParseConfigNonFinite(t *testing.T) {
	c, err := ParseConfig([]byte(`{"_class_name": "DPMSolverMultistepScheduler", "_diffusers_version": "0.31.0",
		"lambda_min_clipped": -Infinity, "sigma_note": "Infinity and NaN stay text", "beta_end": 0.012}`))
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsInf(c.LambdaMinClipped, -1) {
		t.Errorf("lambda_min_clipped = %v, want -Inf", c.LambdaMinClipped)
	}
	if c.BetaEnd != 0.012 {
		t.Errorf("beta_end = %v, want 0.012", c.BetaEnd)
	}
	c, err = ParseConfig([]byte(`{"_class_name":"DPMSolverMultistepScheduler","lambda_min_clipped":NaN}`))
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(c.LambdaMinClipped) {
		t.Errorf("lambda_min_clipped = %v, want NaN", c.LambdaMinClipped)
	}
	c, err = ParseConfig([]byte(`{"_class_name":"EulerDiscreteScheduler","sigma_max":Infinity}`))
	if err == nil {
		t.Errorf("sigma_max Infinity accepted: %v", *c.SigmaMax)
	} else if !strings.Contains(err.Error(), "sigma_max") {
		t.Errorf("error does not name sigma_max: %v", err)
	}
}

func TestParseConfigDefaultsAndUnknownKeys(t *testing.T) {
	c, err := ParseConfig([]byte(`{"_class_name": "DDIMScheduler", "some_future_key": [1, 2], "variance_type": "bogus"}`))
	if err != nil {
		t.Fatalf("unknown keys and keys of other classes must be ignored: %v", err)
	}
	if !c.ClipSample || !c.SetAlphaToOne || c.TimestepSpacing != "leading" || c.BetaSchedule != "linear" {
		t.Errorf("DDIM defaults wrong: %+v", c)
	}
	for class, spacing := range map[string]string{
		"DDPMScheduler": "leading", "PNDMScheduler": "leading", "EulerDiscreteScheduler": "linspace",
		"EulerAncestralDiscreteScheduler": "linspace", "HeunDiscreteScheduler": "linspace",
		"LMSDiscreteScheduler": "linspace", "DPMSolverMultistepScheduler": "linspace", "UniPCMultistepScheduler": "linspace",
	} {
		d, err := DefaultConfig(class)
		if err != nil {
			t.Fatal(err)
		}
		if d.TimestepSpacing != spacing {
			t.Errorf("%s: timestep_spacing default %q, want %q", class, d.TimestepSpacing, spacing)
		}
	}
	h, _ := DefaultConfig("HeunDiscreteScheduler")
	if h.BetaStart != 0.00085 || h.BetaEnd != 0.012 || h.ClipSample {
		t.Errorf("Heun defaults wrong: %+v", h)
	}
	p, _ := DefaultConfig("PNDMScheduler")
	if p.SetAlphaToOne || p.SkipPRKSteps {
		t.Errorf("PNDM defaults wrong: %+v", p)
	}
}

func TestParseConfigRefusals(t *testing.T) {
	for _, tc := range []struct{ json, key string }{
		{`{"beta_end": 0.02}`, "_class_name"},
		{`{"_class_name": "FlowMatchEulerDiscreteScheduler"}`, "_class_name"},
		{`{"_class_name": "DDIMScheduler", "beta_schedule": "cosine"}`, "beta_schedule"},
		{`{"_class_name": "DDIMScheduler", "prediction_type": "flow"}`, "prediction_type"},
		{`{"_class_name": "DDIMScheduler", "timestep_spacing": "karras"}`, "timestep_spacing"},
		{`{"_class_name": "DDIMScheduler", "clip_sample": "yes"}`, "clip_sample"},
		{`{"_class_name": "DDIMScheduler", "num_train_timesteps": 1}`, "num_train_timesteps"},
		{`{"_class_name": "DDIMScheduler", "trained_betas": [0.1, 0.2]}`, "trained_betas"},
		{`{"_class_name": "DDPMScheduler", "variance_type": "huge"}`, "variance_type"},
		{`{"_class_name": "EulerDiscreteScheduler", "use_beta_sigmas": true}`, "use_beta_sigmas"},
		{`{"_class_name": "EulerDiscreteScheduler", "use_exponential_sigmas": true}`, "use_exponential_sigmas"},
		{`{"_class_name": "EulerDiscreteScheduler", "final_sigmas_type": "one"}`, "final_sigmas_type"},
		{`{"_class_name": "UniPCMultistepScheduler", "solver_p": {"x": 1}}`, "solver_p"},
		{`{"_class_name": "DPMSolverMultistepScheduler", "solver_order": 4}`, "solver_order"},
		{`{"_class_name": "DDIMScheduler", "beta_schedule": NaN}`, "beta_schedule"},
		{`[1, 2]`, "JSON object"},
	} {
		_, err := ParseConfig([]byte(tc.json))
		if err == nil {
			t.Errorf("%s: accepted", tc.json)
			continue
		}
		if !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: error %q does not name %s", tc.json, err, tc.key)
		}
	}
}

func TestConvertCarriesTrainingKeys(t *testing.T) {
	src, err := ParseConfig([]byte(`{"_class_name": "DDPMScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085,
		"beta_end": 0.012, "prediction_type": "v_prediction", "steps_offset": 1, "clip_sample": false, "variance_type": "fixed_large"}`))
	if err != nil {
		t.Fatal(err)
	}
	e, err := src.Convert("EulerDiscreteScheduler")
	if err != nil {
		t.Fatal(err)
	}
	if e.BetaSchedule != "scaled_linear" || e.BetaStart != 0.00085 || e.PredictionType != "v_prediction" || e.StepsOffset != 1 {
		t.Errorf("training keys not carried over: %+v", e)
	}
	// DDPM's timestep_spacing default ("leading") is carried, as diffusers
	// carries every key of the saved config.
	if e.TimestepSpacing != "leading" {
		t.Errorf("timestep_spacing = %q, want the source's \"leading\"", e.TimestepSpacing)
	}
	d, err := src.Convert("DDIMScheduler")
	if err != nil {
		t.Fatal(err)
	}
	if d.ClipSample || !d.SetAlphaToOne {
		t.Errorf("DDIM from DDPM: clip_sample %v (want false, carried), set_alpha_to_one %v (want default true)", d.ClipSample, d.SetAlphaToOne)
	}
	// A partial file is a scheduler with defaults for the rest, and those
	// carry over too; keys the source class lacks take the target's.
	part, _ := ParseConfig([]byte(`{"_class_name": "DDIMScheduler", "beta_end": 0.03}`))
	h, _ := part.Convert("HeunDiscreteScheduler")
	if h.BetaStart != 0.0001 || h.BetaEnd != 0.03 || h.TimestepSpacing != "leading" || h.ClipSample != true {
		t.Errorf("partial convert: %+v", h)
	}
	l, _ := part.Convert("LMSDiscreteScheduler")
	if l.UseKarrasSigmas {
		t.Errorf("LMS from DDIM: use_karras_sigmas should be the LMS default")
	}
}

func TestFromName(t *testing.T) {
	train, _ := ParseConfig([]byte(`{"_class_name": "DDPMScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}`))
	for _, name := range Names() {
		class, _ := ClassFor(name)
		s, err := FromName(name, train)
		if !Registered(class) {
			if err == nil || !strings.Contains(err.Error(), "not registered") {
				t.Errorf("%s: unregistered class %s: error %v", name, class, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if s.Config().ClassName != class || s.Config().BetaSchedule != "scaled_linear" {
			t.Errorf("%s: got %s with beta_schedule %s", name, s.Config().ClassName, s.Config().BetaSchedule)
		}
	}
	if _, err := FromName("k_dpm_fast", train); err == nil || !strings.Contains(err.Error(), "k_dpm_fast") {
		t.Errorf("unknown name: %v", err)
	}
}

// Every sampler can be built from every other's saved config, as a
// pipeline's --scheduler flag does: DPM-Solver's variance_type None, for
// one, must become DDPM's "fixed_small".
func TestFromNameEveryPair(t *testing.T) {
	for _, from := range Names() {
		class, _ := ClassFor(from)
		if !Registered(class) {
			continue
		}
		src, err := DefaultConfig(class)
		if err != nil {
			t.Fatal(err)
		}
		for _, to := range Names() {
			if toClass, _ := ClassFor(to); !Registered(toClass) {
				continue
			}
			if _, err := FromName(to, src); err != nil {
				t.Errorf("%s from %s's config: %v", to, class, err)
			}
		}
	}
	dpm, _ := DefaultConfig("DPMSolverMultistepScheduler")
	d, err := dpm.Convert("DDPMScheduler")
	if err != nil {
		t.Fatal(err)
	}
	if d.VarianceType != "fixed_small" {
		t.Errorf("DDPM from DPM-Solver: variance_type %q, want fixed_small", d.VarianceType)
	}
}

func TestRescaleZeroSNR(t *testing.T) {
	c, _ := ParseConfig([]byte(`{"_class_name": "DDIMScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "rescale_betas_zero_snr": true}`))
	plain, _ := ParseConfig([]byte(`{"_class_name": "DDIMScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}`))
	a, b := newTables(c), newTables(plain)
	if got := a.alphasCumprod[len(a.alphasCumprod)-1]; got != 0 {
		t.Errorf("terminal alphas_cumprod = %v, want 0", got)
	}
	if d := math.Abs(float64(a.alphasCumprod[0] - b.alphasCumprod[0])); d > 1e-6 {
		t.Errorf("first alphas_cumprod moved by %v", d)
	}
}

// WithoutNoise turns the stochastic DPM-Solver forms into their
// deterministic ones, keeps every other key, and leaves other samplers and
// its receiver alone.
func TestWithoutNoise(t *testing.T) {
	for alg, want := range map[string]string{
		"sde-dpmsolver++": "dpmsolver++", "sde-dpmsolver": "dpmsolver",
		"dpmsolver++": "dpmsolver++", "dpmsolver": "dpmsolver",
	} {
		c, err := DefaultConfig("DPMSolverMultistepScheduler")
		if err != nil {
			t.Fatal(err)
		}
		c.AlgorithmType, c.PredictionType, c.TimestepSpacing = alg, "v_prediction", "trailing"
		if !isPlusPlus(alg) {
			c.FinalSigmasType = "sigma_min" // the deprecated forms refuse "zero"
		}
		d := c.WithoutNoise()
		if d.AlgorithmType != want || c.AlgorithmType != alg {
			t.Errorf("%s: got %q (receiver now %q), want %q", alg, d.AlgorithmType, c.AlgorithmType, want)
		}
		if d.PredictionType != "v_prediction" || d.TimestepSpacing != "trailing" {
			t.Errorf("%s: other keys changed: %+v", alg, d)
		}
		if _, err := New(d); err != nil {
			t.Errorf("%s: %v", alg, err)
		}
	}
	c, err := DefaultConfig("EulerAncestralDiscreteScheduler")
	if err != nil {
		t.Fatal(err)
	}
	if d := c.WithoutNoise(); d.ClassName != c.ClassName || d == c {
		t.Errorf("Euler ancestral: got class %q (same pointer: %v)", d.ClassName, d == c)
	}
}

// ShortName names the method of a saved configuration, so that FromName
// with that name and the configuration builds the same configuration.
func TestShortName(t *testing.T) {
	for _, tc := range []struct {
		class, algorithm string
		order            int
		want             string
	}{
		{"DPMSolverMultistepScheduler", "sde-dpmsolver++", 2, "sde-dpm++2m"},
		{"DPMSolverMultistepScheduler", "dpmsolver++", 2, "dpm++2m"},
		{"DPMSolverMultistepScheduler", "dpmsolver++", 3, ""},
		{"DPMSolverMultistepScheduler", "dpmsolver", 2, ""},
		{"DDIMScheduler", "", 0, "ddim"},
		{"EulerAncestralDiscreteScheduler", "", 0, "euler_a"},
	} {
		c, err := DefaultConfig(tc.class)
		if err != nil {
			t.Fatal(err)
		}
		c.TimestepSpacing = "trailing"
		if tc.algorithm != "" {
			c.AlgorithmType, c.SolverOrder = tc.algorithm, tc.order
		}
		got := c.ShortName()
		if got != tc.want {
			t.Errorf("%s %s order %d: short name %q, want %q", tc.class, tc.algorithm, tc.order, got, tc.want)
			continue
		}
		if got == "" {
			continue
		}
		s, err := FromName(got, c)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(s.Config(), c) {
			t.Errorf("%s: FromName(%q) builds %+v, want %+v", tc.class, got, s.Config(), c)
		}
	}
}
