package parity

import (
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/ldm-go/ldm/internal/golden"
	"github.com/ldm-go/ldm/scheduler"
	"gorgonia.org/tensor"
)

func init() {
	runners["scheduler_loop"] = runSchedulerLoop
	runners["scheduler_add_noise"] = runSchedulerAddNoise
	delete(pending, "scheduler_loop")
	delete(pending, "scheduler_add_noise")
}

func caseScheduler(t *testing.T, c *golden.Case) scheduler.Scheduler {
	t.Helper()
	cfg, err := scheduler.LoadConfig(filepath.Join(c.Dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := c.Meta["scheduler_class"].(string); want != "" && want != cfg.ClassName {
		t.Fatalf("case.json says %s but config.json has _class_name %s", want, cfg.ClassName)
	}
	s, err := scheduler.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func dense(a golden.Array) *tensor.Dense {
	return tensor.New(tensor.WithShape(a.Shape...), tensor.WithBacking(append([]float32(nil), a.Data...)))
}

func like(x *tensor.Dense) *tensor.Dense {
	return tensor.New(tensor.WithShape(x.Shape().Clone()...), tensor.Of(tensor.Float32))
}

func data(x *tensor.Dense) []float32 { return x.Data().([]float32) }

func copyOf(x *tensor.Dense) []float32 { return append([]float32(nil), data(x)...) }

func f64To32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// replayNoise hands out diffusers' recorded noise of the current step. A
// step that draws noise diffusers did not draw, or draws twice, fails.
type replayNoise struct {
	t     *testing.T
	c     *golden.Case
	step  int
	drawn int
}

func (r *replayNoise) FillNormal(dst []float32) {
	r.t.Helper()
	r.drawn++
	if r.drawn > 1 {
		r.t.Errorf("step %d: the scheduler drew noise twice", r.step)
	}
	for _, suffix := range []string{"noise", "variance_noise"} {
		if a, ok := r.c.IO[fmt.Sprintf("step%03d.%s", r.step, suffix)]; ok {
			if len(a.Data) != len(dst) {
				r.t.Fatalf("step %d: the scheduler drew %d noise values, diffusers drew %d", r.step, len(dst), len(a.Data))
			}
			copy(dst, a.Data)
			return
		}
	}
	r.t.Errorf("step %d: the scheduler drew noise but diffusers did not", r.step)
}

// standInModel is the case's MODEL: tanh(x)*a + b in float32, with
// a = float32(1 - t/1000) and b = float32(0.1*cos(t/100)).
func standInModel(dst, x []float32, t float64) {
	a := float32(1 - t/1000)
	b := float32(0.1 * math.Cos(t/100))
	for i, v := range x {
		dst[i] = float32(float32(math.Tanh(float64(v)))*a) + b
	}
}

func runSchedulerLoop(t *testing.T, c *golden.Case) {
	s := caseScheduler(t, c)
	n := int(c.Meta["num_inference_steps"].(float64))
	for k, v := range metaMap(c, "step_kwargs") {
		switch k {
		case "eta":
			e, ok := s.(interface{ SetEta(float64) error })
			if !ok {
				t.Fatalf("step kwarg eta: %T has no SetEta", s)
			}
			if err := e.SetEta(v.(float64)); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("step kwarg %q is not handled by the runner", k)
		}
	}
	if err := s.SetTimesteps(n); err != nil {
		t.Fatal(err)
	}
	got := map[string][]float32{}
	shapes := map[string][]int{}
	ts := s.Timesteps()
	got["timesteps"] = f64To32(ts)
	if sig := s.Sigmas(); sig != nil {
		got["sigmas"] = append([]float32(nil), sig...)
	}
	if b, ok := s.(interface{ Betas() []float32 }); ok {
		got["betas"] = append([]float32(nil), b.Betas()...)
	}
	got["alphas_cumprod"] = append([]float32(nil), s.AlphasCumprod()...)
	got["init_noise_sigma"] = []float32{float32(s.InitNoiseSigma())}

	noise, err := c.Input("initial_noise")
	if err != nil {
		t.Fatal(err)
	}
	sample := dense(noise)
	sigma := float32(s.InitNoiseSigma())
	for i, v := range data(sample) {
		data(sample)[i] = v * sigma
	}
	got["initial_sample"] = copyOf(sample)
	if want, ok := c.Meta["num_step_calls"].(float64); ok && int(want) != len(ts) {
		t.Errorf("%d timesteps, want %d step calls", len(ts), int(want))
	}
	input, output := like(sample), like(sample)
	rn := &replayNoise{t: t, c: c}
	for i, step := range ts {
		key := fmt.Sprintf("step%03d.", i)
		if err := s.ScaleModelInput(input, sample, step); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		got[key+"model_input"] = copyOf(input)
		standInModel(data(output), data(input), step)
		got[key+"model_output"] = copyOf(output)
		rn.step, rn.drawn = i, 0
		out, err := s.Step(output, step, sample, rn)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if rn.drawn == 0 {
			for _, suffix := range []string{"noise", "variance_noise"} {
				if _, ok := c.IO[key+suffix]; ok {
					t.Errorf("step %d: diffusers drew %s but the scheduler did not", i, suffix)
				}
			}
		}
		got[key+"prev_sample"] = copyOf(out.PrevSample)
		if out.PredOriginalSample != nil {
			got[key+"pred_original_sample"] = copyOf(out.PredOriginalSample)
		}
		copy(data(sample), data(out.PrevSample))
	}
	got["final_sample"] = copyOf(sample)
	check(t, c, got, shapes)
}

func metaMap(c *golden.Case, key string) map[string]any {
	m, _ := c.Meta[key].(map[string]any)
	return m
}

func runSchedulerAddNoise(t *testing.T, c *golden.Case) {
	s := caseScheduler(t, c)
	got := map[string][]float32{}
	if n, ok := c.Meta["set_timesteps"].(float64); ok {
		if err := s.SetTimesteps(int(n)); err != nil {
			t.Fatal(err)
		}
		got["schedule_timesteps"] = f64To32(s.Timesteps())
		if sig := s.Sigmas(); sig != nil {
			got["sigmas"] = append([]float32(nil), sig...)
		}
	}
	got["alphas_cumprod"] = append([]float32(nil), s.AlphasCumprod()...)
	var in [3]golden.Array
	for i, name := range []string{"original_samples", "noise", "timesteps"} {
		a, err := c.Input(name)
		if err != nil {
			t.Fatal(err)
		}
		in[i] = a
	}
	orig, noise := dense(in[0]), dense(in[1])
	ts := make([]float64, len(in[2].Data))
	for i, v := range in[2].Data {
		ts[i] = float64(v)
	}
	dst := like(orig)
	if err := s.AddNoise(dst, orig, noise, ts); err != nil {
		t.Fatal(err)
	}
	got["noisy_samples"] = copyOf(dst)
	if _, ok := c.IO["velocity"]; ok {
		if err := s.GetVelocity(dst, orig, noise, ts); err != nil {
			t.Fatal(err)
		}
		got["velocity"] = copyOf(dst)
	}
	check(t, c, got, map[string][]int{})
}
