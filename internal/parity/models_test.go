package parity

import (
	"testing"

	"github.com/ldm-go/ldm/internal/golden"
	"github.com/ldm-go/ldm/nn"
	"github.com/ldm-go/ldm/unet"
	"github.com/ldm-go/ldm/vae"
)

func init() {
	runners["unet_forward"] = runUNetForward
	runners["vae_forward"] = runVAEForward
	runners["vq_forward"] = runVQForward
}

func ints(a golden.Array) []int {
	out := make([]int, len(a.Data))
	for i, v := range a.Data {
		out[i] = int(v)
	}
	return out
}

func mustInput(t *testing.T, c *golden.Case, name string) golden.Array {
	t.Helper()
	a, err := c.Input(name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func runUNetForward(t *testing.T, c *golden.Case) {
	m, err := unet.Load(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	freeze(m.Params)
	sample := mustInput(t, c, "sample")
	ts := mustInput(t, c, "timesteps")
	var labels []int
	if l, ok := c.IO["class_labels"]; ok {
		labels = ints(l)
	}
	out, err := m.Forward(dense(sample), ts.Data, labels)
	if err != nil {
		t.Fatal(err)
	}
	check(t, c, map[string][]float32{"out": out.Data().([]float32)}, map[string][]int{"out": out.Shape()})
}

func nnTensor(a golden.Array) *nn.Tensor {
	return &nn.Tensor{Data: append([]float32(nil), a.Data...), N: a.Shape[0], C: a.Shape[1], H: a.Shape[2], W: a.Shape[3]}
}

func shapeOf(t *nn.Tensor) []int { return []int{t.N, t.C, t.H, t.W} }

func runVAEForward(t *testing.T, c *golden.Case) {
	v, err := vae.LoadAutoencoderKL(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	freeze(v.Params)
	x := nnTensor(mustInput(t, c, "x"))
	mom, err := v.Moments(x)
	if err != nil {
		t.Fatal(err)
	}
	post := vae.PosteriorFromMoments(mom)
	sample := post.Sample(mustInput(t, c, "posterior_eps").Data)
	dec, err := v.DecodeTensor(nnTensor(mustInput(t, c, "z")))
	if err != nil {
		t.Fatal(err)
	}
	fwd, err := v.DecodeTensor(post.Mean)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]float32{
		"moments":          mom.Data,
		"posterior_mean":   post.Mean.Data,
		"posterior_logvar": post.LogVar.Data,
		"posterior_std":    post.Std().Data,
		"posterior_sample": sample.Data,
		"kl":               post.KL(),
		"decode_z":         dec.Data,
		"forward":          fwd.Data,
	}
	shapes := map[string][]int{
		"moments": shapeOf(mom), "posterior_mean": shapeOf(post.Mean), "posterior_logvar": shapeOf(post.LogVar),
		"posterior_std": shapeOf(post.Mean), "posterior_sample": shapeOf(sample), "kl": {post.Mean.N},
		"decode_z": shapeOf(dec), "forward": shapeOf(fwd),
	}
	check(t, c, got, shapes)
}

func runVQForward(t *testing.T, c *golden.Case) {
	v, err := vae.LoadVQModel(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	freeze(v.Params)
	x := nnTensor(mustInput(t, c, "x"))
	lat, err := v.EncodeTensor(x)
	if err != nil {
		t.Fatal(err)
	}
	q, err := v.Quantize(lat)
	if err != nil {
		t.Fatal(err)
	}
	dec, decLoss, err := v.DecodeTensor(lat, false)
	if err != nil {
		t.Fatal(err)
	}
	notq, _, err := v.DecodeTensor(lat, true)
	if err != nil {
		t.Fatal(err)
	}
	fwd, _, err := v.ForwardTensor(x)
	if err != nil {
		t.Fatal(err)
	}
	idx := make([]float32, len(q.Indices))
	for i, j := range q.Indices {
		idx[i] = float32(j)
	}
	got := map[string][]float32{
		"latents": lat.Data, "quantized": q.Quantized.Data, "indices": idx,
		"commit_loss": {q.CommitLoss}, "decode": dec.Data, "decode_commit_loss": {decLoss},
		"decode_not_quantized": notq.Data, "forward": fwd.Data,
	}
	shapes := map[string][]int{
		"latents": shapeOf(lat), "quantized": shapeOf(q.Quantized), "indices": {len(idx)},
		"commit_loss": {1}, "decode": shapeOf(dec), "decode_commit_loss": {1},
		"decode_not_quantized": shapeOf(notq), "forward": shapeOf(fwd),
	}
	check(t, c, got, shapes)
}
