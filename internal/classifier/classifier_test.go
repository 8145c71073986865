package classifier

import (
	"context"
	"math"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ldm-go/ldm/internal/dataset"
	"github.com/ldm-go/ldm/nn"
)

// stripes is a two-class set: class 0 bright on the left, class 1 on the right.
func stripes(n int) *dataset.InMemory {
	d := &dataset.InMemory{C: 1, H: 8, W: 8, Classes: 2, Images: make([]float32, n*64), Labels: make([]int, n)}
	r := nn.NewRNG(3, 3)
	for i := 0; i < n; i++ {
		d.Labels[i] = i % 2
		for p := 0; p < 64; p++ {
			left := p%8 < 4
			v := -1.0
			if left == (i%2 == 0) {
				v = 1
			}
			d.Images[i*64+p] = float32(v + 0.3*r.Normal())
		}
	}
	return d
}

func smallConfig() *Config {
	c := DefaultConfig()
	c.SampleSize, c.Channels, c.Groups, c.Features, c.Classes = 8, []int{4, 8, 8}, 4, 8, 2
	return c
}

func TestTrainsSaveLoad(t *testing.T) {
	data := stripes(64)
	m, err := New(smallConfig())
	if err != nil {
		t.Fatal(err)
	}
	nn.InitKaiming(m.Params, nn.NewRNG(1, 1))
	o := TrainOptions{TrainOptions: nn.DefaultTrainOptions(), BatchSize: 16}
	o.Steps, o.WarmupSteps, o.LearningRate, o.EMA = 40, 5, 1e-2, false
	tr, err := NewTrainer(m, data, o)
	if err != nil {
		t.Fatal(err)
	}
	for tr.Opt.Step() < 40 {
		if _, err := tr.Step(); err != nil {
			t.Fatal(err)
		}
	}
	acc, err := Accuracy(context.Background(), m, stripes(32), 10)
	if err != nil {
		t.Fatal(err)
	}
	if acc < 0.95 {
		t.Errorf("accuracy %.2f on an easy two-class set", acc)
	}
	dir := filepath.Join(t.TempDir(), "cls")
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	m2, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	x := &nn.Tensor{Data: data.Images[:4*64], N: 4, C: 1, H: 8, W: 8}
	a, _ := m.Classify(x)
	b, _ := m2.Classify(x)
	for i := range a.Features {
		if math.Float32bits(a.Features[i]) != math.Float32bits(b.Features[i]) {
			t.Fatal("reloaded classifier gives other features")
		}
	}
	var s float64
	for _, p := range a.Probs[:2] {
		s += float64(p)
	}
	if math.Abs(s-1) > 1e-6 {
		t.Errorf("probabilities sum to %v", s)
	}
}

func TestRefuses(t *testing.T) {
	c := smallConfig()
	c.Groups = 3
	if _, err := New(c); err == nil || !strings.Contains(err.Error(), "norm_num_groups") {
		t.Errorf("err = %v", err)
	}
	m, _ := New(smallConfig())
	if _, err := m.Classify(nn.NewTensor(1, 1, 16, 16)); err == nil || !strings.Contains(err.Error(), "takes 1x8x8") {
		t.Errorf("err = %v", err)
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), ConfigFile) {
		t.Errorf("err = %v", err)
	}
}

// TestTrainingIndependentOfThreads checks that batches split into parts
// (16 images: two parts) give the same weights on one thread and two, and
// the gradient of the whole batch: one part's gradients to float32
// rounding.
func TestTrainingIndependentOfThreads(t *testing.T) {
	data := stripes(64)
	train := func(procs, parts int, steps int) []float32 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		defer func(saved int) { nn.TrainParts = saved }(nn.TrainParts)
		nn.TrainParts = parts
		m, _ := New(smallConfig())
		nn.InitKaiming(m.Params, nn.NewRNG(1, 1))
		o := TrainOptions{TrainOptions: nn.DefaultTrainOptions(), BatchSize: 16}
		o.Steps, o.WarmupSteps, o.LearningRate = 5, 1, 1e-2
		tr, err := NewTrainer(m, data, o)
		if err != nil {
			t.Fatal(err)
		}
		if steps == 0 {
			x := nn.NewTensor(16, 1, 8, 8)
			copy(x.Data, data.Images[:16*64])
			if _, err := tr.backward(x, data.Labels[:16]); err != nil {
				t.Fatal(err)
			}
			var g []float32
			for _, p := range m.Params.List() {
				g = append(g, p.Grad...)
			}
			return g
		}
		for tr.Opt.Step() < steps {
			if _, err := tr.Step(); err != nil {
				t.Fatal(err)
			}
		}
		var w []float32
		for _, p := range m.Params.List() {
			w = append(w, p.Data...)
		}
		return w
	}
	one, two := train(1, 2, 5), train(2, 2, 5)
	for i := range one {
		if math.Float32bits(one[i]) != math.Float32bits(two[i]) {
			t.Fatalf("weight %d: %v on one thread, %v on two", i, one[i], two[i])
		}
	}
	whole, split := train(2, 1, 0), train(2, 2, 0)
	var worst, scale float64
	for i := range whole {
		worst = math.Max(worst, math.Abs(float64(whole[i]-split[i])))
		scale = math.Max(scale, math.Abs(float64(whole[i])))
	}
	if scale == 0 || worst > 1e-5*scale {
		t.Errorf("split gradients differ by %.3g (largest %.3g)", worst, scale)
	}
}
