package diffusion

import (
	"context"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/ldm-go/ldm/internal/dataset"
	"github.com/ldm-go/ldm/nn"
	"github.com/ldm-go/ldm/scheduler"
	"github.com/ldm-go/ldm/unet"
	"github.com/ldm-go/ldm/vae"
)

func tinyUNet(t *testing.T) *unet.Model {
	t.Helper()
	c, err := unet.ParseConfig([]byte(`{"in_channels":2,"out_channels":2,"sample_size":4,"block_out_channels":[8,8],
		"down_block_types":["DownBlock2D","AttnDownBlock2D"],"up_block_types":["AttnUpBlock2D","UpBlock2D"],
		"layers_per_block":1,"norm_num_groups":4,"attention_head_dim":4,"num_class_embeds":4}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := unet.New(c)
	if err != nil {
		t.Fatal(err)
	}
	r := nn.NewRNG(5, 6)
	for _, p := range m.Params.List() {
		if len(p.Shape) > 1 {
			for i := range p.Data {
				p.Data[i] = 0.1 * r.NormFloat32()
			}
		}
	}
	return m
}

// tinyLatents encodes 12 labelled 8x8 images (3 classes) with a random VAE.
func tinyLatents(t *testing.T) *Latents {
	t.Helper()
	vc, err := vae.ParseConfig([]byte(`{"in_channels":1,"out_channels":1,"latent_channels":2,"block_out_channels":[4,4],
		"down_block_types":["DownEncoderBlock2D","DownEncoderBlock2D"],"up_block_types":["UpDecoderBlock2D","UpDecoderBlock2D"],
		"norm_num_groups":2,"sample_size":8,"scaling_factor":0.7}`), vae.ClassKL)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := vae.NewAutoencoderKL(vc)
	r := nn.NewRNG(7, 8)
	for _, p := range v.Params.List() {
		for i := range p.Data {
			p.Data[i] = 0.2 * r.NormFloat32()
		}
	}
	d := &dataset.InMemory{C: 1, H: 8, W: 8, Classes: 3, Images: make([]float32, 12*64), Labels: make([]int, 12)}
	r.FillNormal(d.Images)
	for i := range d.Labels {
		d.Labels[i] = i % 3
	}
	l, err := Encode(context.Background(), v, d, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func noiseScheduleB(t testing.TB) scheduler.Scheduler { return noiseSchedule(t, "epsilon") }

func noiseSchedule(t testing.TB, pred string) scheduler.Scheduler {
	c, _ := scheduler.DefaultConfig("DDPMScheduler")
	c.PredictionType = pred
	s, err := scheduler.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func opts() TrainOptions {
	o := TrainOptions{TrainOptions: nn.DefaultTrainOptions(), BatchSize: 4, Seed: 11, LabelDropout: 0.3, MinSNRGamma: 5, OffsetNoise: 0.1}
	o.Steps, o.WarmupSteps, o.LearningRate, o.Accumulation = 6, 1, 2e-3, 2
	return o
}

func params(m *unet.Model) []float32 {
	var w []float32
	for _, p := range m.Params.List() {
		w = append(w, p.Data...)
	}
	return w
}

func same(a, b []float32) bool {
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return len(a) == len(b)
}

// TestTrainerResumeAndThreadsBitIdentical trains with batches of 4 (one
// part) and 8 (two parts run at the same time): stopping and resuming, or
// one thread instead of two, must give the same weights bit for bit.
func TestTrainerResumeAndThreadsBitIdentical(t *testing.T) {
	data := tinyLatents(t)
	for _, c := range []struct {
		pred  string
		batch int
	}{{"epsilon", 4}, {"v_prediction", 4}, {"sample", 4}, {"epsilon", 8}, {"v_prediction", 8}} {
		pred := c.pred
		o := opts()
		o.BatchSize = c.batch
		train := func(stopAt int, dir string, resume bool) *unet.Model {
			m := tinyUNet(t)
			tr, err := NewTrainer(m, noiseSchedule(t, pred), data, o)
			if err != nil {
				t.Fatal(err)
			}
			if resume {
				if s, err := tr.Resume(dir); err != nil || s != 3 {
					t.Fatalf("resume: %d, %v", s, err)
				}
			}
			for tr.Opt.Step() < stopAt {
				if _, err := tr.Step(); err != nil {
					t.Fatal(err)
				}
			}
			if dir != "" && !resume {
				if _, err := tr.SaveCheckpoint(dir, 1); err != nil {
					t.Fatal(err)
				}
			}
			return m
		}
		full := params(train(6, "", false))
		dir := t.TempDir()
		train(3, dir, false)
		if !same(full, params(train(6, dir, true))) {
			t.Errorf("%s, batch %d: resumed run differs from the uninterrupted one", pred, c.batch)
		}
		prev := runtime.GOMAXPROCS(1)
		one := params(train(6, "", false))
		runtime.GOMAXPROCS(2)
		two := params(train(6, "", false))
		runtime.GOMAXPROCS(prev)
		if !same(full, one) || !same(full, two) {
			t.Errorf("%s, batch %d: one or two threads give other weights", pred, c.batch)
		}
	}
}

// TestPartsGiveTheBatchGradient checks that splitting a batch into parts
// computes the gradient of the whole batch's loss: the same loss and
// gradients as one part, to float32 rounding.
func TestPartsGiveTheBatchGradient(t *testing.T) {
	data := tinyLatents(t)
	const b = 8
	r := nn.NewRNG(21, 22)
	xt, target := nn.NewTensor(b, 2, 4, 4), nn.NewTensor(b, 2, 4, 4)
	r.FillNormal(xt.Data)
	r.FillNormal(target.Data)
	ts, ts32, labels := make([]float64, b), make([]float32, b), make([]int, b)
	for i := range ts {
		ts[i] = float64(100 * i)
		ts32[i] = float32(ts[i])
		labels[i] = i % 4
	}
	grads := func(parts int) (float64, []float32) {
		defer func(saved int) { nn.TrainParts = saved }(nn.TrainParts)
		nn.TrainParts = parts
		m := tinyUNet(t)
		o := opts()
		o.BatchSize = b
		tr, err := NewTrainer(m, noiseScheduleB(t), data, o)
		if err != nil {
			t.Fatal(err)
		}
		loss, err := tr.backward(xt, target, ts, ts32, labels)
		if err != nil {
			t.Fatal(err)
		}
		if len(tr.parts) != parts {
			t.Fatalf("%d parts, want %d", len(tr.parts), parts)
		}
		var g []float32
		for _, p := range m.Params.List() {
			g = append(g, p.Grad...)
		}
		return loss, g
	}
	l1, one := grads(1)
	l2, two := grads(2)
	if len(one) != len(two) || len(one) == 0 {
		t.Fatalf("%d and %d gradient values", len(one), len(two))
	}
	if math.Abs(l1-l2) > 1e-12*math.Abs(l1) {
		t.Errorf("loss %v with two parts, %v with one", l2, l1)
	}
	var worst, scale float64
	for i := range one {
		worst = math.Max(worst, math.Abs(float64(one[i]-two[i])))
		scale = math.Max(scale, math.Abs(float64(one[i])))
	}
	if scale == 0 || worst > 1e-5*scale {
		t.Errorf("gradients differ by %.3g (largest gradient %.3g)", worst, scale)
	}
}

func TestLossFalls(t *testing.T) {
	data := tinyLatents(t)
	o := opts()
	o.Steps, o.Accumulation, o.LabelDropout, o.MinSNRGamma, o.OffsetNoise = 200, 1, 0, 0, 0
	o.LRScheduler, o.LearningRate, o.BatchSize = "constant", 3e-3, 12
	m := tinyUNet(t)
	tr, err := NewTrainer(m, noiseSchedule(t, "sample"), data, o)
	if err != nil {
		t.Fatal(err)
	}
	var first, last float64
	for i := 0; i < 200; i++ {
		st, err := tr.Step()
		if err != nil {
			t.Fatal(err)
		}
		if i < 10 {
			first += st.Loss
		}
		if i >= 190 {
			last += st.Loss
		}
	}
	if !(last < 0.9*first) {
		t.Errorf("mean loss of the last 10 steps %v not below 0.9x the first 10 %v", last/10, first/10)
	}
}

func TestWeightedMSEMinSNR(t *testing.T) {
	out := &nn.Tensor{Data: []float32{1, 1, 3, 3}, N: 2, C: 1, H: 1, W: 2}
	tgt := &nn.Tensor{Data: []float32{0, 0, 0, 0}, N: 2, C: 1, H: 1, W: 2}
	ac := []float32{0.9, 0.5}
	// snr = 9 and 1; gamma 5: weights min(9,5)/9 and min(1,5)/1 for epsilon.
	loss, g := weightedMSE(out, tgt, []float64{0, 1}, ac, "epsilon", 5, 1, 2)
	w0 := 5.0 / (float64(float32(0.9)) / (1 - float64(float32(0.9))))
	want := (w0*1 + 1*9) / 2
	if math.Abs(loss-want) > 1e-9 {
		t.Errorf("loss %v, want %v", loss, want)
	}
	if math.Abs(float64(g[2])-2*3/4.0) > 1e-6 {
		t.Errorf("gradient %v", g)
	}
}

func TestNewTrainerRefuses(t *testing.T) {
	data := tinyLatents(t)
	o := opts()
	o.LabelDropout = 2
	if _, err := NewTrainer(tinyUNet(t), noiseSchedule(t, "epsilon"), data, o); err == nil || !strings.Contains(err.Error(), "label dropout") {
		t.Errorf("err = %v", err)
	}
	data.Classes = 5
	if _, err := NewTrainer(tinyUNet(t), noiseSchedule(t, "epsilon"), data, opts()); err == nil || !strings.Contains(err.Error(), "num_class_embeds") {
		t.Errorf("err = %v", err)
	}
}
