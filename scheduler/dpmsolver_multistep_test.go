package scheduler

import (
	"math"
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

// msConfig is the default configuration of a multistep class with edits.
func msConfig(t *testing.T, class string, edit func(*Config)) *Config {
	t.Helper()
	c, err := DefaultConfig(class)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(c)
	}
	return c
}

func msNew(t *testing.T, c *Config) Scheduler {
	t.Helper()
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// gaussData is data distributed as N(mu, s^2) per element, for which the
// model's exact output and the exact probability-flow ODE trajectory are
// known in closed form: an oracle for the solvers.
type gaussData struct{ mu, s float64 }

func vpAlphaSigma(sigma float32) (a, st float64) {
	sg := float64(sigma)
	a = 1 / math.Sqrt(sg*sg+1)
	return a, sg * a
}

// output is the exact model output at noise level sigma (float64 math).
func (g gaussData) output(dst, x []float32, sigma float32, pred string) {
	a, st := vpAlphaSigma(sigma)
	v := a*a*g.s*g.s + st*st
	for i, xv := range x {
		x0 := g.mu + a*g.s*g.s/v*(float64(xv)-a*g.mu)
		eps := (float64(xv) - a*x0) / st
		switch pred {
		case "epsilon":
			dst[i] = float32(eps)
		case "sample":
			dst[i] = float32(x0)
		case "v_prediction":
			dst[i] = float32(a*eps - st*x0)
		}
	}
}

// at is the exact ODE trajectory through standardized value z.
func (g gaussData) at(z float64, sigma float32) float64 {
	a, st := vpAlphaSigma(sigma)
	return a*g.mu + math.Sqrt(a*a*g.s*g.s+st*st)*z
}

// msLoop runs stop steps of an n-step schedule on the Gaussian oracle and
// returns every prev_sample and the max error against the exact ODE
// solution at the last sigma reached.
func msLoop(t *testing.T, s Scheduler, n, stop int, noise Noise) ([][]float32, float64) {
	t.Helper()
	if err := s.SetTimesteps(n); err != nil {
		t.Fatal(err)
	}
	g := gaussData{0.3, 0.5}
	sig := s.Sigmas()
	const size = 2 * 32
	z := make([]float64, size)
	x := make([]float32, size)
	for i := range z {
		z[i] = math.Sin(float64(i)*1.7) * 1.5
		x[i] = float32(g.at(z[i], sig[0]))
	}
	sample := tensor.New(tensor.WithShape(2, 2, 4, 4), tensor.WithBacking(x))
	mo := tensor.New(tensor.WithShape(2, 2, 4, 4), tensor.WithBacking(make([]float32, size)))
	var outs [][]float32
	for i, ts := range s.Timesteps()[:stop] {
		g.output(data32(mo), x, sig[i], s.Config().PredictionType)
		out, err := s.Step(mo, ts, sample, noise)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		copy(x, data32(out.PrevSample))
		outs = append(outs, append([]float32(nil), x...))
	}
	e := 0.0
	for i := range z {
		e = math.Max(e, math.Abs(float64(x[i])-g.at(z[i], sig[stop])))
	}
	return outs, e
}

func allFinite(x []float32) bool {
	for _, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return false
		}
	}
	return true
}

func sameFloats(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestMultistepConvergenceOrder checks each solver order against the exact
// solution for Gaussian data: halving the step size must cut the error by
// about 2^order (UniPC's corrector adds one order), which fails for any
// wrong coefficient of the higher-order terms.
func TestMultistepConvergenceOrder(t *testing.T) {
	type tc struct {
		name  string
		class string
		edit  func(*Config)
		// minRatio[order-1] is the least error ratio between 20 and 40 steps.
		minRatio [3]float64
	}
	var cases []tc
	for _, alg := range []string{"dpmsolver++", "dpmsolver"} {
		for _, st := range []string{"midpoint", "heun"} {
			alg, st := alg, st
			cases = append(cases, tc{"dpm/" + alg + "/" + st, "DPMSolverMultistepScheduler", func(c *Config) {
				c.AlgorithmType, c.SolverType = alg, st
			}, [3]float64{1.7, 3.0, 4.0}})
		}
	}
	for _, st := range []string{"bh1", "bh2"} {
		for _, karras := range []bool{false, true} {
			st, karras := st, karras
			cases = append(cases, tc{"unipc/" + st, "UniPCMultistepScheduler", func(c *Config) {
				c.SolverType, c.UseKarrasSigmas = st, karras
			}, [3]float64{3.2, 6.0, 11}})
		}
	}
	for _, k := range cases {
		for _, pred := range []string{"epsilon", "v_prediction", "sample"} {
			var prev float64
			for order := 1; order <= 3; order++ {
				var e [2]float64
				for j, n := range []int{20, 40} {
					c := msConfig(t, k.class, func(c *Config) {
						k.edit(c)
						c.PredictionType = pred
						c.SolverOrder = order
						c.FinalSigmasType = "sigma_min"
					})
					_, e[j] = msLoop(t, msNew(t, c), n, n/2, nil)
				}
				if r := e[0] / e[1]; !(r >= k.minRatio[order-1]) {
					t.Errorf("%s %s order %d: error %.3g at 20 steps, %.3g at 40: ratio %.2f, want >= %.1f", k.name, pred, order, e[0], e[1], r, k.minRatio[order-1])
				}
				if order > 1 && !(e[0] < prev) {
					t.Errorf("%s %s: order %d error %.3g is not below order %d's %.3g", k.name, pred, order, e[0], order-1, prev)
				}
				prev = e[0]
			}
		}
	}
}

// TestMultistepWarmup checks that higher orders start as lower ones: the
// first step of every order is the same, the second of orders 2 and 3
// too, and order 3 departs at the third.
func TestMultistepWarmup(t *testing.T) {
	for _, class := range []string{"DPMSolverMultistepScheduler", "UniPCMultistepScheduler"} {
		var runs [3][][]float32
		for order := 1; order <= 3; order++ {
			c := msConfig(t, class, func(c *Config) { c.SolverOrder = order })
			runs[order-1], _ = msLoop(t, msNew(t, c), 10, 10, nil)
			for i, x := range runs[order-1] {
				if !allFinite(x) {
					t.Fatalf("%s order %d step %d: non-finite sample", class, order, i)
				}
			}
		}
		if !sameFloats(runs[0][0], runs[1][0]) || !sameFloats(runs[0][0], runs[2][0]) {
			t.Errorf("%s: first steps of orders 1, 2, 3 differ", class)
		}
		if sameFloats(runs[0][1], runs[1][1]) {
			t.Errorf("%s: second step of order 2 equals order 1's", class)
		}
		if !sameFloats(runs[1][1], runs[2][1]) {
			t.Errorf("%s: second steps of orders 2 and 3 differ", class)
		}
		if sameFloats(runs[1][2], runs[2][2]) {
			t.Errorf("%s: third step of order 3 equals order 2's", class)
		}
	}
}

// TestDPMSolverLowerOrderFinal checks lower_order_final and euler_at_final:
// below 15 steps the last step is first order (the DDIM-like update,
// recomputed here in float64), at 15 or more only euler_at_final forces it.
func TestDPMSolverLowerOrderFinal(t *testing.T) {
	run := func(n int, lof, euler bool) ([][]float32, Scheduler) {
		c := msConfig(t, "DPMSolverMultistepScheduler", func(c *Config) {
			c.FinalSigmasType, c.LowerOrderFinal, c.EulerAtFinal = "sigma_min", lof, euler
			c.PredictionType = "sample"
		})
		s := msNew(t, c)
		outs, _ := msLoop(t, s, n, n, nil)
		return outs, s
	}
	for _, n := range []int{10, 20} {
		on, s := run(n, true, false)
		off, _ := run(n, false, false)
		eu, _ := run(n, false, true)
		for i := 0; i < n-1; i++ {
			if !sameFloats(on[i], off[i]) || !sameFloats(on[i], eu[i]) {
				t.Fatalf("n=%d: step %d differs before the final step", n, i)
			}
		}
		if n < 15 == sameFloats(on[n-1], off[n-1]) {
			t.Errorf("n=%d: final step with lower_order_final differs=%v, want %v", n, !sameFloats(on[n-1], off[n-1]), n < 15)
		}
		if sameFloats(eu[n-1], off[n-1]) {
			t.Errorf("n=%d: euler_at_final did not change the final step", n)
		}
		// The first-order update from the model's x0 (prediction "sample").
		sig := s.Sigmas()
		at, st := vpAlphaSigma(sig[n])
		as, ss := vpAlphaSigma(sig[n-1])
		h := (math.Log(at) - math.Log(st)) - (math.Log(as) - math.Log(ss))
		g := gaussData{0.3, 0.5}
		x := on[n-2]
		x0 := make([]float32, len(x))
		g.output(x0, x, sig[n-1], "sample")
		want := eu[n-1]
		if n < 15 {
			want = on[n-1]
		}
		for i := range x {
			ref := st/ss*float64(x[i]) - at*(math.Exp(-h)-1)*float64(x0[i])
			if d := math.Abs(float64(want[i]) - ref); d > 1e-5 {
				t.Fatalf("n=%d: final first-order step element %d: got %v, want %v", n, i, want[i], ref)
			}
		}
	}
}

// TestDPMSolverFinalZero checks that with final_sigmas_type "zero" the last
// step lands exactly on the model's x0 estimate, for every variant.
func TestDPMSolverFinalZero(t *testing.T) {
	for _, alg := range []string{"dpmsolver++", "sde-dpmsolver++"} {
		for order := 1; order <= 2; order++ {
			for _, karras := range []bool{false, true} {
				c := msConfig(t, "DPMSolverMultistepScheduler", func(c *Config) {
					c.AlgorithmType, c.SolverOrder, c.UseKarrasSigmas = alg, order, karras
					c.LowerOrderFinal = false
				})
				s := msNew(t, c)
				noise := &countNoise{}
				outs, _ := msLoop(t, s, 20, 19, noise)
				if s.Sigmas()[20] != 0 {
					t.Fatalf("final sigma %v, want 0", s.Sigmas()[20])
				}
				x := outs[len(outs)-1]
				sample := tensor.New(tensor.WithShape(2, 2, 4, 4), tensor.WithBacking(append([]float32(nil), x...)))
				mo := tensor.New(tensor.WithShape(2, 2, 4, 4), tensor.WithBacking(make([]float32, len(x))))
				gaussData{0.3, 0.5}.output(data32(mo), x, s.Sigmas()[19], "epsilon")
				out, err := s.Step(mo, s.Timesteps()[19], sample, noise)
				if err != nil {
					t.Fatal(err)
				}
				if !allFinite(data32(out.PrevSample)) || !sameFloats(data32(out.PrevSample), data32(out.PredOriginalSample)) {
					t.Errorf("%s order %d karras %v: final sample is not the x0 estimate", alg, order, karras)
				}
				if want := 0; alg == "sde-dpmsolver++" {
					want = 20
					if noise.calls != want || noise.n != 20*64 {
						t.Errorf("%s: %d noise draws of %d values, want %d of %d", alg, noise.calls, noise.n, want, 20*64)
					}
				} else if noise.calls != want {
					t.Errorf("%s drew noise", alg)
				}
			}
		}
	}
}

type countNoise struct{ calls, n int }

func (c *countNoise) FillNormal(dst []float32) {
	c.calls++
	c.n += len(dst)
	for i := range dst {
		dst[i] = float32(math.Sin(float64(c.n + i)))
	}
}

func TestDPMSolverSchedules(t *testing.T) {
	// lambda_min_clipped cuts the noisiest timesteps of the cosine schedule.
	c := msConfig(t, "DPMSolverMultistepScheduler", func(c *Config) {
		c.BetaSchedule, c.TimestepSpacing, c.LambdaMinClipped = "squaredcos_cap_v2", "trailing", -5.1
	})
	s, err := NewDPMSolverMultistep(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTimesteps(10); err != nil {
		t.Fatal(err)
	}
	first := int(s.Timesteps()[0])
	if !(first < 999 && s.lambdas[first] >= -5.1 && s.lambdas[first+1] < -5.1) {
		t.Errorf("lambda_min_clipped -5.1: first timestep %d has lambda %v (next %v)", first, s.lambdas[first], s.lambdas[first+1])
	}
	// Karras and Lu schedules: integer timesteps, descending sigmas from
	// the table's largest, ending at the final sigma.
	for _, edit := range []func(*Config){
		func(c *Config) { c.UseKarrasSigmas = true },
		func(c *Config) { c.UseLuLambdas = true },
	} {
		for _, final := range []string{"zero", "sigma_min"} {
			c := msConfig(t, "DPMSolverMultistepScheduler", func(c *Config) { edit(c); c.FinalSigmasType = final })
			s := msNew(t, c)
			if err := s.SetTimesteps(12); err != nil {
				t.Fatal(err)
			}
			ts, sig := s.Timesteps(), s.Sigmas()
			if len(ts) != 12 || len(sig) != 13 {
				t.Fatalf("%d timesteps and %d sigmas, want 12 and 13", len(ts), len(sig))
			}
			tab := trainSigmas(s.AlphasCumprod())
			if math.Abs(float64(sig[0]/tab[999]-1)) > 1e-6 || ts[0] != 999 {
				t.Errorf("first sigma %v (timestep %v), want the table's largest %v (999)", sig[0], ts[0], tab[999])
			}
			for i := 1; i < 12; i++ {
				if !(sig[i] < sig[i-1]) || ts[i] > ts[i-1] || ts[i] != math.Trunc(ts[i]) {
					t.Errorf("step %d: sigma %v after %v, timestep %v after %v", i, sig[i], sig[i-1], ts[i], ts[i-1])
				}
			}
			if want := map[string]float32{"zero": 0, "sigma_min": tab[0]}[final]; sig[12] != want {
				t.Errorf("final sigma %v, want %v", sig[12], want)
			}
		}
	}
}

func TestMultistepResetAndAddNoise(t *testing.T) {
	for _, class := range []string{"DPMSolverMultistepScheduler", "UniPCMultistepScheduler"} {
		s := msNew(t, msConfig(t, class, func(c *Config) { c.SolverOrder = 3 }))
		a, _ := msLoop(t, s, 8, 8, nil)
		b, _ := msLoop(t, s, 8, 8, nil)
		for i := range a {
			if !sameFloats(a[i], b[i]) {
				t.Fatalf("%s: a second run after SetTimesteps differs at step %d", class, i)
			}
		}
		x0 := tensor.New(tensor.WithShape(2, 3), tensor.WithBacking([]float32{1, -2, 0.5, 3, 0, -1}))
		e := tensor.New(tensor.WithShape(2, 3), tensor.WithBacking([]float32{0.1, 0.2, -0.3, 1, -1, 2}))
		dst := tensor.New(tensor.WithShape(2, 3), tensor.Of(tensor.Float32))
		ts := s.Timesteps()
		if err := s.AddNoise(dst, x0, e, []float64{ts[0], ts[5]}); err != nil {
			t.Fatal(err)
		}
		for b, i := range []int{0, 5} {
			a, st := vpAlphaSigma(s.Sigmas()[i])
			for k := 0; k < 3; k++ {
				want := a*float64(data32(x0)[b*3+k]) + st*float64(data32(e)[b*3+k])
				if got := data32(dst)[b*3+k]; math.Abs(float64(got)-want) > 1e-6 {
					t.Errorf("%s AddNoise[%d,%d] = %v, want %v", class, b, k, got, want)
				}
			}
		}
		if err := s.AddNoise(dst, x0, e, []float64{ts[0], 1234}); err == nil || !strings.Contains(err.Error(), "1234") {
			t.Errorf("%s AddNoise at a timestep outside the schedule: err = %v", class, err)
		}
	}
}

// TestMultistepNoAllocs checks that steps after the first reuse their
// buffers, with every option that needs scratch space on.
func TestMultistepNoAllocs(t *testing.T) {
	for _, c := range []*Config{
		msConfig(t, "DPMSolverMultistepScheduler", func(c *Config) { c.SolverOrder, c.Thresholding = 3, true }),
		msConfig(t, "DPMSolverMultistepScheduler", func(c *Config) { c.AlgorithmType, c.Thresholding = "sde-dpmsolver++", true }),
		msConfig(t, "DPMSolverMultistepScheduler", func(c *Config) {
			c.AlgorithmType, c.FinalSigmasType, c.Thresholding, c.SolverOrder = "dpmsolver", "sigma_min", true, 3
		}),
		msConfig(t, "UniPCMultistepScheduler", func(c *Config) { c.SolverOrder, c.Thresholding = 3, true }),
	} {
		s := msNew(t, c)
		if err := s.SetTimesteps(500); err != nil {
			t.Fatal(err)
		}
		x := tensor.New(tensor.WithShape(2, 4, 8, 8), tensor.Of(tensor.Float32))
		mo := tensor.New(tensor.WithShape(2, 4, 8, 8), tensor.Of(tensor.Float32))
		for i := range data32(x) {
			data32(x)[i] = float32(math.Sin(float64(i)))
			data32(mo)[i] = float32(math.Cos(float64(i)))
		}
		noise := &countNoise{}
		i := 0
		step := func() {
			if _, err := s.Step(mo, s.Timesteps()[i], x, noise); err != nil {
				t.Fatal(err)
			}
			i++
		}
		step()
		if n := testing.AllocsPerRun(20, step); n != 0 {
			t.Errorf("%s %s: %v allocations per step", c.ClassName, c.AlgorithmType, n)
		}
	}
}

// TestMultistepErrors checks that bad configurations and arguments give
// errors that name what is wrong.
func TestMultistepErrors(t *testing.T) {
	dpm, unipc := "DPMSolverMultistepScheduler", "UniPCMultistepScheduler"
	for _, k := range []struct {
		class, key string
		edit       func(*Config)
	}{
		{dpm, "algorithm_type", func(c *Config) { c.AlgorithmType = "ddim" }},
		{dpm, "solver_type", func(c *Config) { c.SolverType = "rk4" }},
		{dpm, "final_sigmas_type", func(c *Config) { c.AlgorithmType = "dpmsolver" }},
		{dpm, "solver_order", func(c *Config) { c.AlgorithmType, c.SolverOrder = "sde-dpmsolver++", 3 }},
		{dpm, "solver_order", func(c *Config) { c.SolverOrder = 4 }},
		{dpm, "variance_type", func(c *Config) { c.VarianceType = "learned_range" }},
		{dpm, "lambda_min_clipped", func(c *Config) { c.LambdaMinClipped = math.NaN() }},
		{dpm, "use_lu_lambdas", func(c *Config) { c.UseKarrasSigmas, c.UseLuLambdas = true, true }},
		{dpm, "use_exponential_sigmas", func(c *Config) { c.UseExponentialSigmas = true }},
		{unipc, "solver_type", func(c *Config) { c.SolverType = "bh3" }},
		{unipc, "lower_order_final", func(c *Config) { c.LowerOrderFinal = false }},
		{unipc, "prediction_type", func(c *Config) { c.PredictionType = "noise" }},
		{unipc, "predict_x0", func(c *Config) { c.PredictX0 = false }},
	} {
		_, err := New(msConfig(t, k.class, k.edit))
		if err == nil || !strings.Contains(err.Error(), k.key) {
			t.Errorf("%s with bad %s: err = %v", k.class, k.key, err)
		}
	}
	// diffusers' renamed values are accepted.
	for _, edit := range []func(*Config){
		func(c *Config) { c.AlgorithmType = "deis" },
		func(c *Config) { c.SolverType = "logrho" },
	} {
		s := msNew(t, msConfig(t, dpm, edit)).(*DPMSolverMultistep)
		if s.Config().AlgorithmType != "dpmsolver++" || s.Config().SolverType != "midpoint" {
			t.Errorf("renamed values: got %s/%s", s.Config().AlgorithmType, s.Config().SolverType)
		}
	}

	for _, class := range []string{dpm, unipc} {
		s := msNew(t, msConfig(t, class, func(c *Config) {
			if class == dpm {
				c.AlgorithmType = "sde-dpmsolver++"
			}
		}))
		x := tensor.New(tensor.WithShape(1, 2, 2, 2), tensor.Of(tensor.Float32))
		mo := tensor.New(tensor.WithShape(1, 2, 2, 2), tensor.Of(tensor.Float32))
		noise := &countNoise{}
		if _, err := s.Step(mo, 999, x, noise); err == nil || !strings.Contains(err.Error(), "SetTimesteps") {
			t.Errorf("%s: Step before SetTimesteps: err = %v", class, err)
		}
		for _, n := range []int{0, -3, 1001} {
			if err := s.SetTimesteps(n); err == nil {
				t.Errorf("%s: SetTimesteps(%d) succeeded", class, n)
			}
		}
		if err := s.SetTimesteps(4); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Step(mo, 17, x, noise); err == nil || !strings.Contains(err.Error(), "17") {
			t.Errorf("%s: timestep outside the schedule: err = %v", class, err)
		}
		bad := tensor.New(tensor.WithShape(1, 2, 2, 3), tensor.Of(tensor.Float32))
		ts := s.Timesteps()
		if _, err := s.Step(bad, ts[0], x, noise); err == nil || !strings.Contains(err.Error(), "shape") {
			t.Errorf("%s: mismatched shapes: err = %v", class, err)
		}
		if class == dpm {
			if _, err := s.Step(mo, ts[0], x, nil); err == nil || !strings.Contains(err.Error(), "noise") {
				t.Errorf("sde-dpmsolver++ without noise: err = %v", err)
			}
		}
		if _, err := s.Step(mo, ts[0], x, noise); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Step(mo, ts[2], x, noise); err == nil || !strings.Contains(err.Error(), "next") {
			t.Errorf("%s: skipped timestep: err = %v", class, err)
		}
		big := tensor.New(tensor.WithShape(2, 2, 2, 2), tensor.Of(tensor.Float32))
		if _, err := s.Step(big, ts[1], big, noise); err == nil || !strings.Contains(err.Error(), "shape") {
			t.Errorf("%s: shape change mid-run: err = %v", class, err)
		}
		for _, t0 := range ts[1:] {
			if _, err := s.Step(mo, t0, x, noise); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Step(mo, ts[3], x, noise); err == nil || !strings.Contains(err.Error(), "SetTimesteps") {
			t.Errorf("%s: step past the end: err = %v", class, err)
		}
	}
}
