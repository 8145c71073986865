package vae

import (
	"math"
	"runtime"
	"testing"

	"github.com/ldm-go/ldm/nn"
)

func tinyVAE(t testing.TB) *AutoencoderKL {
	t.Helper()
	c, err := ParseConfig([]byte(`{"_class_name":"AutoencoderKL","in_channels":1,"out_channels":1,"latent_channels":2,
		"block_out_channels":[8,16],"down_block_types":["DownEncoderBlock2D","DownEncoderBlock2D"],
		"up_block_types":["UpDecoderBlock2D","UpDecoderBlock2D"],"norm_num_groups":4,"layers_per_block":1}`), ClassKL)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewAutoencoderKL(c)
	if err != nil {
		t.Fatal(err)
	}
	r := nn.NewRNG(5, 0)
	for _, p := range v.Params.List() {
		for i := range p.Data {
			if len(p.Shape) == 1 {
				p.Data[i] = 0.1 * r.NormFloat32()
				if p.Name[len(p.Name)-6:] == "weight" {
					p.Data[i] += 1
				}
			} else {
				p.Data[i] = 0.15 * r.NormFloat32()
			}
		}
	}
	return v
}

func image(seed uint64) *nn.Tensor {
	x := nn.NewTensor(2, 1, 8, 8)
	nn.NewRNG(seed, 1).FillNormal(x.Data)
	return x
}

func TestTapedForwardMatchesInference(t *testing.T) {
	v := tinyVAE(t)
	x := image(1)
	tp := nn.NewTape()
	post, err := v.EncodeTape(tp, x)
	if err != nil {
		t.Fatal(err)
	}
	want, err := v.EncodeTensor(x)
	if err != nil {
		t.Fatal(err)
	}
	eps := image(2).Data[:len(post.Mean.Data)]
	z := post.SampleTape(tp, eps)
	recon, err := v.DecodeTape(tp, z)
	if err != nil {
		t.Fatal(err)
	}
	wantRecon, err := v.DecodeTensor(want.Sample(eps))
	if err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2][]float32{{post.Mean.Data, want.Mean.Data}, {post.LogVar.Data, want.LogVar.Data}, {recon.Data, wantRecon.Data}} {
		for i := range pair[0] {
			if pair[0][i] != pair[1][i] {
				t.Fatalf("taped forward differs at %d: %v vs %v", i, pair[0][i], pair[1][i])
			}
		}
	}
	if _, err := v.DecodeTape(tp, image(3)); err == nil {
		t.Error("DecodeTape accepted latents with the wrong channel count")
	}
}

// TestVAELossGradientFiniteDifference checks the gradient of the training
// loss as a VAE trainer computes it: MSE of the
// decoded reparameterised sample plus 0.1 * KL, by central differences on a
// coordinate of every parameter, with the tolerance of the UNet check.
func TestVAELossGradientFiniteDifference(t *testing.T) {
	v := tinyVAE(t)
	x := image(4)
	eps := image(5).Data[:2*2*4*4]
	const klWeight = 0.1
	loss := func(tp *nn.Tape) float64 {
		post, err := v.EncodeTape(tp, x)
		if err != nil {
			t.Fatal(err)
		}
		recon, err := v.DecodeTape(tp, post.SampleTape(tp, eps))
		if err != nil {
			t.Fatal(err)
		}
		mse, g := nn.MSELoss(recon, x)
		kl := post.KLLoss(tp, klWeight)
		if tp != nil {
			tp.Constant(x)
			tp.AddGrad(recon, g)
			tp.Backward()
		}
		return mse + klWeight*kl
	}
	loss0 := loss(nn.NewTape())
	const h = 1e-2
	floor := 1e-6 * loss0 / h
	r := nn.NewRNG(3, 3)
	for _, p := range v.Params.List() {
		maxG := 0.0
		for _, g := range p.Grad {
			maxG = math.Max(maxG, math.Abs(float64(g)))
		}
		i := r.Intn(len(p.Data))
		orig := p.Data[i]
		p.Data[i] = orig + h
		hi, up := loss(nil), p.Data[i]
		p.Data[i] = orig - h
		lo, down := loss(nil), p.Data[i]
		p.Data[i] = orig
		fd := (hi - lo) / float64(up-down)
		an := float64(p.Grad[i])
		if d := math.Abs(fd - an); d > 1e-2*math.Abs(an)+2e-3*maxG+floor {
			t.Errorf("%s[%d]: backward %.6g, finite difference %.6g", p.Name, i, an, fd)
		}
	}
}

// TestDecodeIndependentOfThreadsAndBatch checks that a decode split into
// parts over the cores gives every image the bits of decoding it alone,
// on one thread and two.
func TestDecodeIndependentOfThreadsAndBatch(t *testing.T) {
	v := smallVAE(t)
	z := nn.NewTensor(9, 2, 4, 4)
	nn.NewRNG(8, 9).FillNormal(z.Data)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	per := len(z.Data) / z.N
	var want [][]float32
	runtime.GOMAXPROCS(1)
	for i := 0; i < z.N; i++ {
		one := &nn.Tensor{Data: z.Data[i*per : (i+1)*per], N: 1, C: 2, H: 4, W: 4}
		y, err := v.DecodeTensor(one)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, y.Data)
	}
	for _, procs := range []int{1, 2, 3} {
		runtime.GOMAXPROCS(procs)
		y, err := v.DecodeTensor(z)
		if err != nil {
			t.Fatal(err)
		}
		oper := len(y.Data) / y.N
		for i, w := range want {
			if !sameBits(y.Data[i*oper:(i+1)*oper], w) {
				t.Fatalf("GOMAXPROCS %d: image %d of the batch differs from its decode alone", procs, i)
			}
		}
	}
}
