package scheduler

import (
	"reflect"
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

// constNoise is a fixed noise source, so a fuzz input replays exactly.
type constNoise struct{}

func (constNoise) FillNormal(dst []float32) {
	for i := range dst {
		dst[i] = float32(i%3) - 1
	}
}

// FuzzParseConfig feeds arbitrary bytes to the scheduler_config.json parser
// and runs every accepted config: building the scheduler, setting a few step
// counts and stepping through the whole schedule on a tiny sample must give
// errors or results, never a panic or a hang, and a saved config must reload
// to the same values. The seed corpus is testdata/fuzz/FuzzParseConfig.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"_class_name":"DDIMScheduler","num_train_timesteps":20}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "scheduler config") {
				t.Fatalf("error does not say where it comes from: %v", err)
			}
			return
		}
		if c.NumTrainTimesteps > MaxTrainTimesteps {
			t.Fatalf("accepted num_train_timesteps = %d", c.NumTrainTimesteps)
		}
		b, err := c.MarshalJSON()
		if err != nil {
			t.Fatalf("cannot save an accepted config: %v", err)
		}
		c2, err := ParseConfig(b)
		if err != nil {
			t.Fatalf("cannot reload a saved config: %v\n%s", err, b)
		}
		if !sameConfig(c, c2) {
			t.Fatalf("config changed on reload:\n%+v\n%+v", c, c2)
		}
		s, err := New(c)
		if err != nil {
			return
		}
		for _, n := range []int{1, 3, 8} {
			if n > c.NumTrainTimesteps {
				continue
			}
			if err := s.SetTimesteps(n); err != nil {
				continue
			}
			ts := append([]float64(nil), s.Timesteps()...)
			if len(ts) == 0 {
				t.Fatalf("%d steps gave no timesteps", n)
			}
			x := tensor.New(tensor.WithShape(1, 1, 2, 2), tensor.WithBacking([]float32{0.5, -0.5, 0.25, 1}))
			in := tensor.New(tensor.WithShape(1, 1, 2, 2), tensor.Of(tensor.Float32))
			for _, tt := range ts {
				if err := s.ScaleModelInput(in, x, tt); err != nil {
					break
				}
				eps := tensor.New(tensor.WithShape(1, 1, 2, 2), tensor.WithBacking([]float32{0.1, 0.2, -0.3, 0}))
				out, err := s.Step(eps, tt, x, constNoise{})
				if err != nil {
					break
				}
				x = tensor.New(tensor.WithShape(1, 1, 2, 2), tensor.WithBacking(append([]float32(nil), out.PrevSample.Data().([]float32)...)))
			}
			if err := s.SetTimesteps(n); err == nil && !reflect.DeepEqual(ts, s.Timesteps()) {
				t.Fatalf("SetTimesteps(%d) is not repeatable: %v then %v", n, ts, s.Timesteps())
			}
		}
	})
}

// sameConfig compares configs, taking NaN as equal to NaN.
func sameConfig(a, b *Config) bool {
	ab, err1 := a.MarshalJSON()
	bb, err2 := b.MarshalJSON()
	return err1 == nil && err2 == nil && string(ab) == string(bb)
}
