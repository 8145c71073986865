package parity

import (
	"context"
	"fmt"
	"testing"

	"github.com/ldm-go/ldm/internal/golden"
	"github.com/ldm-go/ldm/nn"
	"github.com/ldm-go/ldm/pipeline"
)

func init() {
	runners["ldm_e2e"] = runLDMEndToEnd
}

// runLDMEndToEnd loads the case folder as a pipeline and runs its
// scheduler loop from the recorded initial noise, checking every step.
func runLDMEndToEnd(t *testing.T, c *golden.Case) {
	p, err := pipeline.Load(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.NewScheduler("")
	if err != nil {
		t.Fatal(err)
	}
	if kw, ok := c.Meta["step_kwargs"].(map[string]any); ok {
		if eta, ok := kw["eta"].(float64); ok && eta != 0 {
			t.Fatalf("step_kwargs eta = %v: the runner only knows eta 0", eta)
		}
	}
	steps, _ := c.Meta["num_inference_steps"].(float64)
	if err := s.SetTimesteps(int(steps)); err != nil {
		t.Fatal(err)
	}
	noise := mustInput(t, c, "initial_noise")
	x := dense(noise)
	xd := data(x)
	sigma := float32(s.InitNoiseSigma())
	for i := range xd {
		xd[i] *= sigma
	}
	got := map[string][]float32{"initial_latents": copyOf(x), "timesteps": f64To32(s.Timesteps())}
	shapes := map[string][]int{}
	err = p.Denoise(context.Background(), s, x, pipeline.Conditioning{NullLabel: -1}, nil, func(st pipeline.StepInfo) error {
		got[fmt.Sprintf("step%02d.model_output", st.Index)] = copyOf(st.ModelOutput)
		got[fmt.Sprintf("step%02d.latents", st.Index)] = copyOf(st.Latents)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got["final_latents"] = copyOf(x)
	lat := &nn.Tensor{Data: data(x), N: noise.Shape[0], C: noise.Shape[1], H: noise.Shape[2], W: noise.Shape[3]}
	z := p.DecoderInput(lat)
	got["decoder_input"] = z.Data
	img, err := p.DecodeLatents(lat)
	if err != nil {
		t.Fatal(err)
	}
	got["image"] = img.Data
	shapes["image"] = []int{img.N, img.C, img.H, img.W}
	check(t, c, got, shapes)
}
