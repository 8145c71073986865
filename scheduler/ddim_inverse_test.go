package scheduler

import (
	"math"
	"testing"

	"gorgonia.org/tensor"
)

func TestDDIMInverseTimesteps(t *testing.T) {
	c, err := DefaultConfig("DDIMScheduler")
	if err != nil {
		t.Fatal(err)
	}
	c.StepsOffset = 1
	s, err := NewDDIMInverse(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTimesteps(4); err != nil {
		t.Fatal(err)
	}
	// diffusers: arange(0, 4) * (1000 // 4) + steps_offset.
	want := []float64{1, 251, 501, 751}
	for i, v := range s.Timesteps() {
		if v != want[i] {
			t.Fatalf("leading timesteps %v, want %v", s.Timesteps(), want)
		}
	}
	c.TimestepSpacing = "trailing"
	s, _ = NewDDIMInverse(c)
	s.SetTimesteps(4)
	want = []float64{249, 499, 749, 999}
	for i, v := range s.Timesteps() {
		if v != want[i] {
			t.Fatalf("trailing timesteps %v, want %v", s.Timesteps(), want)
		}
	}
	c.TimestepSpacing = "linspace"
	s, _ = NewDDIMInverse(c)
	if err := s.SetTimesteps(4); err == nil {
		t.Error("linspace spacing accepted; diffusers' inverse scheduler refuses it")
	}
}

// An inversion step undoes a DDIM step taken with the same model output
// for the prediction types whose x0 and noise estimates do not depend on
// the sample (for v-prediction they do, so the two steps see different
// estimates).
func TestDDIMInverseUndoesDDIMStep(t *testing.T) {
	for _, pt := range []string{"epsilon", "sample"} {
		c, _ := DefaultConfig("DDIMScheduler")
		c.PredictionType = pt
		c.ClipSample = false
		fwd, err := NewDDIM(c)
		if err != nil {
			t.Fatal(err)
		}
		inv, err := NewDDIMInverse(c)
		if err != nil {
			t.Fatal(err)
		}
		fwd.SetTimesteps(10)
		inv.SetTimesteps(10)
		x := make([]float32, 8)
		mo := make([]float32, 8)
		for i := range x {
			x[i] = float32(math.Sin(float64(i)))
			mo[i] = float32(math.Cos(float64(3 * i)))
		}
		xt := tensor.New(tensor.WithShape(2, 4), tensor.WithBacking(append([]float32(nil), x...)))
		m := tensor.New(tensor.WithShape(2, 4), tensor.WithBacking(mo))
		for _, ts := range []float64{900, 500, 0} {
			out, err := fwd.Step(m, ts, xt, nil)
			if err != nil {
				t.Fatal(err)
			}
			prev := tensor.New(tensor.WithShape(2, 4), tensor.WithBacking(append([]float32(nil), out.PrevSample.Float32s()...)))
			back, err := inv.Step(m, ts, prev, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range back.PrevSample.Float32s() {
				if math.Abs(float64(v-x[i])) > 2e-4*(1+math.Abs(float64(x[i]))) {
					t.Errorf("%s t=%v: inverse gives %v at %d, want %v", pt, ts, v, i, x[i])
					break
				}
			}
		}
	}
}
