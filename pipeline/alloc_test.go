package pipeline

import (
	"testing"

	"github.com/ldm-go/ldm/nn"
)

// TestDenoiseStepNoAllocs checks that once the first step has run, a
// denoising step (UNet, guidance, scheduler step) allocates nothing, for a
// deterministic and a stochastic multistep sampler, with classifier-free
// guidance and with autoguidance.
func TestDenoiseStepNoAllocs(t *testing.T) {
	p := guidedPipeline(t, 2)
	for _, name := range []string{"dpm++2m", "ddim", "sde-dpm++2m"} {
		for _, cond := range []Conditioning{
			{Labels: []int{2, 2}, NullLabel: -1},
			{Labels: []int{0, 1}, NullLabel: 2, GuidanceScale: 3},
			{Labels: []int{2, 2}, NullLabel: -1, Guide: p.GuideUNet, AutoGuidance: 2},
		} {
			s, err := p.NewScheduler(name)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if err := s.SetTimesteps(100); err != nil {
				t.Fatal(err)
			}
			x := nn.NewTensor(2, 4, 4, 4)
			rngs := streams{nn.NewRNG(1, 0), nn.NewRNG(1, 1)}
			rngs.FillNormal(x.Data)
			d, err := p.newDenoiser(s, toDense(x), cond, rngs)
			if err != nil {
				t.Fatal(err)
			}
			ts := s.Timesteps()
			i := 0
			step := func() {
				if err := d.step(ts[i]); err != nil {
					t.Fatal(err)
				}
				i++
			}
			step()
			step()
			if a := testing.AllocsPerRun(10, step); a != 0 {
				t.Errorf("%s, guidance %v, autoguidance %v: %v allocations per step, want 0", name, cond.GuidanceScale, cond.AutoGuidance, a)
			}
		}
	}
}
