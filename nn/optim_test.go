package nn

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/ldm-go/ldm/internal/safetensors"
)

// ulps is the distance between a and b in float32 units in the last place.
func ulps(a, b float32) int64 {
	ia, ib := int64(math.Float32bits(a)), int64(math.Float32bits(b))
	if a < 0 {
		ia = -(ia &^ (1 << 31))
	}
	if b < 0 {
		ib = -(ib &^ (1 << 31))
	}
	d := ia - ib
	if d < 0 {
		d = -d
	}
	return d
}

func oneParam(data []float32) *Params {
	ps := &Params{}
	p := ps.New("w", len(data))
	copy(p.Data, data)
	return ps
}

// adamGrads and adamWant come from PyTorch 1.13:
//
//	p = torch.tensor([0.5, -1.25, 2.0, 0.0], requires_grad=True)
//	opt = torch.optim.AdamW([p], lr=1e-2, betas=(0.9, 0.999), eps=1e-8,
//	                        weight_decay=1e-2, foreach=False)
//	for g in adamGrads: p.grad = torch.tensor(g); opt.step(); print(p)
//
// and, after the three steps, opt.state[p]['exp_avg'] and ['exp_avg_sq'].
var (
	adamGrads = [][]float32{{0.1, -0.2, 0.3, 0}, {-0.05, 0.4, 0.3, 1e-3}, {0.2, 0, -0.7, 2}}
	adamWant  = [][]float32{
		{0.4899500012397766, -1.2398749589920044, 1.989799976348877, 0.0},
		{0.4872376322746277, -1.2434120178222656, 1.9796010255813599, -0.0074412627145648},
		{0.4806077778339386, -1.2461177110671997, 1.9808627367019653, -0.013831527903676033},
	}
	adamWantM = []float32{0.023600000888109207, 0.01979999989271164, -0.018699999898672104, 0.20009000599384308}
	adamWantV = []float32{5.2477513236226514e-05, 0.0001997600484173745, 0.0006697301287204027, 0.00400000112131238}
)

func TestAdamWMatchesTorch(t *testing.T) {
	ps := oneParam([]float32{0.5, -1.25, 2, 0})
	opt := NewAdamW(ps)
	p := ps.Get("w")
	// The weights match torch bit for bit; the moments can differ by one
	// ulp where torch's vectorised kernels fuse a multiply-add that we
	// round twice.
	const maxULPs = 1
	for s, g := range adamGrads {
		p.Grad = append([]float32(nil), g...)
		opt.Update(1e-2)
		for i := range p.Data {
			if d := ulps(p.Data[i], adamWant[s][i]); d > maxULPs {
				t.Errorf("step %d, p[%d] = %.9g, torch %.9g (%d ulps)", s+1, i, p.Data[i], adamWant[s][i], d)
			}
		}
	}
	for i := range adamWantM {
		if d := ulps(opt.ExpAvg["w"][i], adamWantM[i]); d > maxULPs {
			t.Errorf("exp_avg[%d] = %.9g, torch %.9g", i, opt.ExpAvg["w"][i], adamWantM[i])
		}
		if d := ulps(opt.ExpAvgSq["w"][i], adamWantV[i]); d > maxULPs {
			t.Errorf("exp_avg_sq[%d] = %.9g, torch %.9g", i, opt.ExpAvgSq["w"][i], adamWantV[i])
		}
	}
}

func TestAdamWSkipsParametersWithoutGradient(t *testing.T) {
	ps := &Params{}
	a := ps.New("a", 2)
	b := ps.New("b", 2)
	a.Data[0], b.Data[0] = 1, 1
	a.Grad = []float32{1, 1}
	NewAdamW(ps).Update(0.1)
	if b.Data[0] != 1 {
		t.Error("a parameter without gradient was changed (weight decay must not touch it)")
	}
	if a.Data[0] == 1 {
		t.Error("a parameter with a gradient was not changed")
	}
}

func roundTrip(t *testing.T, tensors []*safetensors.Tensor) *safetensors.File {
	t.Helper()
	var buf bytes.Buffer
	if err := safetensors.Encode(&buf, tensors, nil); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestOptimizerAndEMAStateResumeBitIdentically(t *testing.T) {
	run := func(steps int, resumeAt int) ([]float32, map[string][]float32) {
		ps := oneParam([]float32{0.5, -1.25, 2, 0})
		opt := NewAdamW(ps)
		ema := NewEMA(ps)
		for s := 0; s < steps; s++ {
			if s == resumeAt {
				// Save, rebuild everything from the files, continue.
				of := roundTrip(t, opt.StateTensors())
				ef := roundTrip(t, ema.StateTensors())
				opt = NewAdamW(ps)
				ema = NewEMA(ps)
				if err := opt.LoadState(of); err != nil {
					t.Fatal(err)
				}
				if err := ema.LoadState(ef); err != nil {
					t.Fatal(err)
				}
			}
			ps.Get("w").Grad = adamGrads[s%len(adamGrads)]
			opt.Update(1e-2)
			ema.Update()
		}
		return append([]float32(nil), ps.Get("w").Data...), ema.Shadow
	}
	w1, e1 := run(7, -1)
	w2, e2 := run(7, 4)
	for i := range w1 {
		if w1[i] != w2[i] || e1["w"][i] != e2["w"][i] {
			t.Fatalf("resumed run differs at %d: weights %v vs %v, EMA %v vs %v", i, w1[i], w2[i], e1["w"][i], e2["w"][i])
		}
	}
}

func TestAdamWLoadStateRejectsMismatches(t *testing.T) {
	ps := oneParam([]float32{1, 2})
	bad := []*safetensors.Tensor{
		safetensors.I64Tensor("step", nil, []int64{3}),
		safetensors.F32Tensor("exp_avg.w", []int{3}, []float32{1, 2, 3}),
		safetensors.F32Tensor("exp_avg_sq.w", []int{2}, []float32{1, 2}),
	}
	if err := NewAdamW(ps).LoadState(roundTrip(t, bad)); err == nil {
		t.Error("a mis-shaped exp_avg was accepted")
	}
	if err := NewAdamW(ps).LoadState(roundTrip(t, bad[1:])); err == nil {
		t.Error("a state without step was accepted")
	}
}

func TestClipGradNormMatchesTorch(t *testing.T) {
	// torch.nn.utils.clip_grad_norm_ on grads [3, 4, 0] and [12, 0] with
	// max_norm 6.5 returns 13 and leaves [1.4999998807907104,
	// 1.9999998807907104, 0] and [5.999999523162842, 0].
	ps := &Params{}
	a, b := ps.New("a", 3), ps.New("b", 2)
	a.Grad = []float32{3, 4, 0}
	b.Grad = []float32{12, 0}
	if total := ClipGradNorm(ps, 6.5); total != 13 {
		t.Errorf("total norm %v, want 13", total)
	}
	want := []float32{1.4999998807907104, 1.9999998807907104, 0, 5.999999523162842, 0}
	got := append(append([]float32(nil), a.Grad...), b.Grad...)
	for i := range want {
		if ulps(got[i], want[i]) > 1 {
			t.Errorf("clipped grad %d = %.9g, torch %.9g", i, got[i], want[i])
		}
	}
	// Below the limit nothing changes.
	a.Grad = []float32{0.3, 0.4, 0}
	b.Grad = nil
	if total := ClipGradNorm(ps, 1); math.Abs(total-0.5) > 1e-7 || a.Grad[0] != 0.3 || a.Grad[1] != 0.4 {
		t.Errorf("norm 0.5 under max 1: total %v, grads %v", total, a.Grad)
	}
}

func TestLRSchedules(t *testing.T) {
	tests := []struct {
		name          string
		warmup, total int
		step          int
		want          float64
	}{
		{"constant", 0, 0, 0, 1},
		{"constant_with_warmup", 10, 0, 0, 0},
		{"constant_with_warmup", 10, 0, 5, 0.5},
		{"constant_with_warmup", 10, 0, 10, 1},
		{"constant_with_warmup", 10, 0, 1000, 1},
		{"cosine", 10, 110, 5, 0.5},
		{"cosine", 10, 110, 10, 1},
		{"cosine", 10, 110, 35, 0.8535533905932737}, // 0.5 (1 + cos(pi/4))
		{"cosine", 10, 110, 60, 0.5},
		{"cosine", 10, 110, 110, 0},
		{"linear", 10, 110, 60, 0.5},
		{"linear", 10, 110, 200, 0},
	}
	for _, tc := range tests {
		s, err := NewLRSchedule(tc.name, 2e-4, tc.warmup, max(tc.total, 1))
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Factor(tc.step); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s warmup %d total %d: factor at step %d = %v, want %v", tc.name, tc.warmup, tc.total, tc.step, got, tc.want)
		}
		if got := s.LR(tc.step); math.Abs(got-2e-4*tc.want) > 1e-16 {
			t.Errorf("%s: LR at step %d = %v, want %v", tc.name, tc.step, got, 2e-4*tc.want)
		}
	}
	for _, bad := range []struct {
		name   string
		lr     float64
		warmup int
		key    string
	}{{"cosine_with_restarts", 1e-4, 0, "lr_scheduler"}, {"constant", 0, 0, "learning_rate"}, {"constant", 1e-4, -1, "lr_warmup_steps"}} {
		if _, err := NewLRSchedule(bad.name, bad.lr, bad.warmup, 10); err == nil || !bytes.Contains([]byte(err.Error()), []byte(bad.key)) {
			t.Errorf("NewLRSchedule(%q, %v, %d): err %v, want one naming %s", bad.name, bad.lr, bad.warmup, err, bad.key)
		}
	}
}

func TestEMADecay(t *testing.T) {
	e := NewEMA(&Params{})
	tests := []struct {
		step int64
		want float64
	}{
		{0, 0}, {1, 0},
		{2, 0.3700394750525634},  // 1 - 2^(-2/3)
		{11, 0.7978199917664258}, // 1 - 11^(-2/3)
		{1_000_002, 0.9999},      // capped at decay once 1 - (1+k)^(-2/3) passes it
	}
	for _, tc := range tests {
		if got := e.DecayAt(tc.step); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("warm-up decay at step %d = %v, want %v", tc.step, got, tc.want)
		}
	}
	e.UseWarmup = false
	if got := e.DecayAt(2); math.Abs(got-2.0/11) > 1e-15 {
		t.Errorf("decay without warm-up at step 2 = %v, want 2/11", got)
	}
	e.UpdateAfterStep = 5
	if got := e.DecayAt(6); got != 0 {
		t.Errorf("decay at the first step after update_after_step = %v, want 0", got)
	}
}

func TestOptimizerEMAPower(t *testing.T) {
	o := DefaultTrainOptions()
	o.EMAPower = 0.75
	opt, err := NewOptimizer(oneParam([]float32{1}), o)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := opt.EMA.DecayAt(11), 1-math.Pow(11, -0.75); math.Abs(got-want) > 1e-15 {
		t.Errorf("decay at step 11 with power 3/4 = %v, want %v", got, want)
	}
	o.EMAPower = -1
	if _, err := NewOptimizer(oneParam([]float32{1}), o); err == nil || !strings.Contains(err.Error(), "EMA power") {
		t.Errorf("power -1: got error %v, want one naming the EMA power", err)
	}
}

func TestEMAUpdate(t *testing.T) {
	ps := oneParam([]float32{1, -2})
	e := NewEMA(ps)
	w := ps.Get("w")
	// Step 1 has decay 0: the average jumps to the weights.
	w.Data[0], w.Data[1] = 3, 4
	e.Update()
	if s := e.Shadow["w"]; s[0] != 3 || s[1] != 4 {
		t.Fatalf("after step 1 the shadow is %v, want the weights [3 4]", s)
	}
	// Step 2: decay d = 1 - 2^(-2/3); shadow = d*shadow + (1-d)*w.
	w.Data[0], w.Data[1] = 5, 0
	e.Update()
	d := 1 - math.Pow(2, -2.0/3)
	for i, want := range []float64{d*3 + (1-d)*5, d * 4} {
		if got := float64(e.Shadow["w"][i]); math.Abs(got-want) > 1e-6 {
			t.Errorf("after step 2 shadow[%d] = %v, want %v", i, got, want)
		}
	}
	other := oneParam([]float32{0, 0})
	e.CopyTo(other)
	if other.Get("w").Data[0] != e.Shadow["w"][0] {
		t.Error("CopyTo did not copy the shadow weights")
	}
}

func TestGradAccumulation(t *testing.T) {
	a := &GradAccumulation{Steps: 3}
	if a.Scale() != float32(1)/3 {
		t.Errorf("scale %v, want 1/3", a.Scale())
	}
	var got []bool
	for i := 0; i < 6; i++ {
		got = append(got, a.Done())
	}
	want := []bool{false, false, true, false, false, true}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Done sequence %v, want %v", got, want)
		}
	}
}

// TestDerivedOnlyWhenFrozen checks that a parameter keeps derived values
// only once frozen, builds each once, and hands concurrent callers the same
// value.
func TestDerivedOnlyWhenFrozen(t *testing.T) {
	ps := &Params{}
	p := ps.New("w", 4)
	builds := 0
	build := func() any { builds++; return new(int) }
	if v := p.Derived("k", build); v != nil || builds != 0 {
		t.Fatalf("before Freeze: Derived = %v after %d builds, want nil and none", v, builds)
	}
	ps.Freeze()
	first := p.Derived("k", build)
	if first == nil || p.Derived("k", build) != first || builds != 1 {
		t.Fatalf("after Freeze: %d builds, values %v and %v", builds, first, p.Derived("k", build))
	}
	if other := p.Derived("other", build); other == first || builds != 2 {
		t.Fatalf("another key shares a value or was not built (%d builds)", builds)
	}
	got := make(chan any, 8)
	for range 8 {
		go func() { got <- p.Derived("k", func() any { return new(int) }) }()
	}
	for range 8 {
		if v := <-got; v != first {
			t.Fatalf("a concurrent caller got %v, want %v", v, first)
		}
	}
}
