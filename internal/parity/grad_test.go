package parity

import (
	"testing"

	"github.com/ldm-go/ldm/internal/golden"
	"github.com/ldm-go/ldm/nn"
	"github.com/ldm-go/ldm/unet"
	"github.com/ldm-go/ldm/vae"
)

func init() {
	runners["unet_grad"] = runUNetGrad
	runners["vae_grad"] = runVAEGrad
}

// addParamGrads stores every parameter's gradient as grad.<name>; a
// parameter the loss does not reach has a zero gradient, as PyTorch's
// stored zeros.
func addParamGrads(ps *nn.Params, got map[string][]float32, shapes map[string][]int) {
	for _, p := range ps.List() {
		g := p.Grad
		if g == nil {
			g = make([]float32, len(p.Data))
		}
		got["grad."+p.Name] = g
		shapes["grad."+p.Name] = p.Shape
	}
}

func runUNetGrad(t *testing.T, c *golden.Case) {
	m, err := unet.Load(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	sample := nnTensor(mustInput(t, c, "sample"))
	target := nnTensor(mustInput(t, c, "target"))
	ts := mustInput(t, c, "timesteps")
	tp := nn.NewTape()
	out, err := m.ForwardTape(tp, sample, ts.Data, nil)
	if err != nil {
		t.Fatal(err)
	}
	loss, g := nn.MSELoss(out, target)
	tp.AddGrad(out, g)
	tp.Backward()
	got := map[string][]float32{"out": out.Data, "loss": {float32(loss)}, "sample_grad": tp.Grad(sample)}
	shapes := map[string][]int{"out": shapeOf(out), "loss": {1}, "sample_grad": shapeOf(sample)}
	addParamGrads(m.Params, got, shapes)
	check(t, c, got, shapes)
}

func runVAEGrad(t *testing.T, c *golden.Case) {
	v, err := vae.LoadAutoencoderKL(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	x := nnTensor(mustInput(t, c, "x"))
	tp := nn.NewTape()
	post, err := v.EncodeTape(tp, x)
	if err != nil {
		t.Fatal(err)
	}
	recon, err := v.DecodeTape(tp, post.Mean)
	if err != nil {
		t.Fatal(err)
	}
	mse, g := nn.MSELoss(recon, x)
	const klWeight = 1e-3
	kl := post.KLLoss(tp, klWeight)
	tp.AddGrad(recon, g)
	// x is also the MSE target, so the loss reaches it directly too.
	for i := range g {
		g[i] = -g[i]
	}
	tp.AddGrad(x, g)
	tp.Backward()
	got := map[string][]float32{
		"recon": recon.Data, "loss": {float32(mse + klWeight*kl)}, "loss_mse": {float32(mse)}, "loss_kl": {float32(kl)},
		"x_grad": tp.Grad(x),
	}
	shapes := map[string][]int{"recon": shapeOf(recon), "loss": {1}, "loss_mse": {1}, "loss_kl": {1}, "x_grad": shapeOf(x)}
	addParamGrads(v.Params, got, shapes)
	check(t, c, got, shapes)
}
