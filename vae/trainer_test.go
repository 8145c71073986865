package vae

import (
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/ldm-go/ldm/internal/dataset"
	"github.com/ldm-go/ldm/nn"
)

func tinyData(n int) *dataset.InMemory {
	d := &dataset.InMemory{C: 1, H: 8, W: 8, Images: make([]float32, n*64)}
	r := nn.NewRNG(1, 2)
	for i := range d.Images {
		d.Images[i] = float32(math.Tanh(r.Normal()))
	}
	return d
}

func smallVAE(t *testing.T) *AutoencoderKL {
	t.Helper()
	c, err := ParseConfig([]byte(`{"in_channels":1,"out_channels":1,"latent_channels":2,"block_out_channels":[8,8],
		"down_block_types":["DownEncoderBlock2D","DownEncoderBlock2D"],"up_block_types":["UpDecoderBlock2D","UpDecoderBlock2D"],
		"norm_num_groups":4,"sample_size":8}`), ClassKL)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewAutoencoderKL(c)
	if err != nil {
		t.Fatal(err)
	}
	r := nn.NewRNG(3, 4)
	for _, p := range v.Params.List() {
		if len(p.Shape) > 1 {
			for i := range p.Data {
				p.Data[i] = 0.2 * r.NormFloat32()
			}
		}
	}
	return v
}

func tinyOpts() TrainOptions {
	o := TrainOptions{TrainOptions: nn.DefaultTrainOptions(), BatchSize: 4, Loss: "l1", KLWeight: 1e-3, Seed: 9}
	o.Steps, o.WarmupSteps, o.LearningRate, o.Accumulation = 6, 1, 3e-3, 2
	return o
}

func weightsOf(ps *nn.Params) []float32 {
	var w []float32
	for _, p := range ps.List() {
		w = append(w, p.Data...)
	}
	return w
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// A run stopped at a checkpoint and resumed ends bit-identical to an
// uninterrupted run, and so does a run on one thread, with batches of 4
// (one part) and 8 (two parts run at the same time).
func TestTrainerResumeAndThreadsBitIdentical(t *testing.T) {
	for _, batch := range []int{4, 8} {
		t.Run(fmt.Sprintf("batch%d", batch), func(t *testing.T) { checkResumeAndThreads(t, batch) })
	}
}

func checkResumeAndThreads(t *testing.T, batch int) {
	tinyOpts := func() TrainOptions {
		o := tinyOpts()
		o.BatchSize = batch
		return o
	}
	data := tinyData(10)
	run := func(steps int, m *AutoencoderKL, tr *Trainer) {
		for tr.Opt.Step() < steps {
			if _, err := tr.Step(); err != nil {
				t.Fatal(err)
			}
		}
	}
	full := smallVAE(t)
	tf, err := NewTrainer(full, data, tinyOpts())
	if err != nil {
		t.Fatal(err)
	}
	first, _ := tf.Step()
	run(6, full, tf)

	dir := t.TempDir()
	a := smallVAE(t)
	ta, _ := NewTrainer(a, data, tinyOpts())
	run(3, a, ta)
	if _, err := ta.SaveCheckpoint(dir, 2); err != nil {
		t.Fatal(err)
	}
	b := smallVAE(t)
	tb, _ := NewTrainer(b, data, tinyOpts())
	step, err := tb.Resume(dir)
	if err != nil || step != 3 {
		t.Fatalf("resume: step %d, %v", step, err)
	}
	run(6, b, tb)
	if !sameBits(weightsOf(full.Params), weightsOf(b.Params)) {
		t.Error("resumed run differs from the uninterrupted one")
	}
	if !sameBits(tf.Opt.EMA.Shadow["decoder.conv_out.weight"], tb.Opt.EMA.Shadow["decoder.conv_out.weight"]) {
		t.Error("resumed EMA differs")
	}

	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	one := smallVAE(t)
	t1, _ := NewTrainer(one, data, tinyOpts())
	run(6, one, t1)
	if !sameBits(weightsOf(full.Params), weightsOf(one.Params)) {
		t.Error("one thread gives other weights than the default")
	}
	runtime.GOMAXPROCS(2)
	two := smallVAE(t)
	t2, _ := NewTrainer(two, data, tinyOpts())
	run(6, two, t2)
	if !sameBits(weightsOf(full.Params), weightsOf(two.Params)) {
		t.Error("two threads give other weights than the default")
	}
	runtime.GOMAXPROCS(1)
	last, _ := t1.Step()
	if !(last.Loss < first.Loss) {
		t.Errorf("loss did not fall: first %v, after 7 steps %v", first.Loss, last.Loss)
	}
}

// TestPartsGiveTheBatchGradient checks that splitting a batch into parts
// computes the gradient of the whole batch's loss: the same losses and
// gradients as one part, to float32 rounding.
func TestPartsGiveTheBatchGradient(t *testing.T) {
	data := tinyData(10)
	x := nn.NewTensor(8, 1, 8, 8)
	copy(x.Data, data.Images[:8*64])
	eps := make([]float32, 8*2*4*4)
	nn.NewRNG(5, 6).FillNormal(eps)
	grads := func(parts int) (float64, float64, []float32) {
		defer func(saved int) { nn.TrainParts = saved }(nn.TrainParts)
		nn.TrainParts = parts
		m := smallVAE(t)
		o := tinyOpts()
		o.BatchSize = 8
		tr, err := NewTrainer(m, data, o)
		if err != nil {
			t.Fatal(err)
		}
		rec, kl, err := tr.backward(x, eps, 2*4*4)
		if err != nil {
			t.Fatal(err)
		}
		var g []float32
		for _, p := range m.Params.List() {
			g = append(g, p.Grad...)
		}
		return rec, kl, g
	}
	r1, k1, one := grads(1)
	r2, k2, two := grads(2)
	if math.Abs(r1-r2) > 1e-9*r1 || math.Abs(k1-k2) > 1e-9*k1 {
		t.Errorf("losses %v, %v with two parts, %v, %v with one", r2, k2, r1, k1)
	}
	var worst, scale float64
	for i := range one {
		worst = math.Max(worst, math.Abs(float64(one[i]-two[i])))
		scale = math.Max(scale, math.Abs(float64(one[i])))
	}
	if len(one) != len(two) || scale == 0 || worst > 1e-5*scale {
		t.Errorf("gradients differ by %.3g (largest gradient %.3g)", worst, scale)
	}
}

func TestTrainerRefusesBadOptions(t *testing.T) {
	data := tinyData(4)
	for _, tc := range []struct {
		mod  func(*TrainOptions)
		want string
	}{
		{func(o *TrainOptions) { o.Loss = "huber" }, "loss"},
		{func(o *TrainOptions) { o.BatchSize = 0 }, "batch size"},
		{func(o *TrainOptions) { o.KLWeight = -1 }, "KL weight"},
		{func(o *TrainOptions) { o.Steps = 0 }, "steps"},
		{func(o *TrainOptions) { o.LearningRate = 0 }, "learning_rate"},
	} {
		o := tinyOpts()
		tc.mod(&o)
		if _, err := NewTrainer(smallVAE(t), data, o); err == nil || !contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want it to mention %q", err, tc.want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// A NaN loss stops training with the step named.
func TestTrainerStopsOnNaN(t *testing.T) {
	data := tinyData(4)
	data.Images[5] = float32(math.NaN())
	v := smallVAE(t)
	o := tinyOpts()
	o.Accumulation = 1
	tr, _ := NewTrainer(v, data, o)
	var err error
	for i := 0; i < 3 && err == nil; i++ {
		_, err = tr.Step()
	}
	if e, ok := err.(*nn.ErrNonFinite); !ok || e.Step < 1 {
		t.Fatalf("err = %v, want a non-finite loss error naming the step", err)
	}
}
