package unet

import (
	"math"
	"runtime"
	"testing"

	"github.com/ldm-go/ldm/nn"
)

// tinyModel is a two-level UNet with attention, small enough for finite
// differences; extra is spliced into the JSON.
func tinyModel(t testing.TB, extra string) *Model {
	t.Helper()
	cfg, err := ParseConfig([]byte(`{"in_channels":2,"out_channels":2,"block_out_channels":[8,16],"layers_per_block":1,
		"down_block_types":["DownBlock2D","AttnDownBlock2D"],"up_block_types":["AttnUpBlock2D","UpBlock2D"],
		"norm_num_groups":4,"attention_head_dim":8` + extra + `}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := nn.NewRNG(42, 0)
	for _, p := range m.Params.List() {
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
	return m
}

var variants = []struct {
	name, json string
	ts         []float32
	labels     []int
}{
	{"default", ``, []float32{10, 700}, nil},
	{"scale_shift, centred input, class table", `,"resnet_time_scale_shift":"scale_shift","center_input_sample":true,"num_class_embeds":3`, []float32{10, 700}, []int{2, 0}},
	{"learned time table, class timestep embedding", `,"time_embedding_type":"learned","num_train_timesteps":1000,"class_embed_type":"timestep","num_class_embeds":3`, []float32{10, 700}, []int{1, 2}},
	{"fourier", `,"time_embedding_type":"fourier","flip_sin_to_cos":false`, []float32{0.5, 3}, nil},
}

func TestForwardTapeMatchesInference(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			m := tinyModel(t, v.json)
			x := randomInput(2, 2, 8, 8, 3)
			want, err := m.ForwardTensor(x, v.ts, v.labels)
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.ForwardTape(nn.NewTape(), x, v.ts, v.labels)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want.Data {
				if got.Data[i] != want.Data[i] {
					t.Fatalf("taped forward differs at %d: %v vs %v", i, got.Data[i], want.Data[i])
				}
			}
		})
	}
}

// gradients runs one loss.backward() for m and returns every parameter
// gradient and the input gradient.
func gradients(t testing.TB, m *Model, x, target *nn.Tensor, ts []float32, labels []int) (float64, map[string][]float32) {
	m.Params.ZeroGrad()
	tp := nn.NewTape()
	out, err := m.ForwardTape(tp, x, ts, labels)
	if err != nil {
		t.Fatal(err)
	}
	loss, g := nn.MSELoss(out, target)
	tp.AddGrad(out, g)
	tp.Backward()
	grads := map[string][]float32{"input": append([]float32(nil), tp.Grad(x)...)}
	for _, p := range m.Params.List() {
		grads[p.Name] = append([]float32(nil), p.Grad...)
	}
	return loss, grads
}

// TestModelGradientFiniteDifference checks the gradients of whole models in
// every variant, including the embeddings the golden case does not use, by
// central differences (step 1e-2) of the MSE loss on a few coordinates of
// each parameter. The tolerance is that of the layer checks in nn: 1e-2
// relative plus 2e-3 of the parameter's largest gradient, plus 1e-6 * loss
// / step for the float32 rounding of the loss itself.
func TestModelGradientFiniteDifference(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			m := tinyModel(t, v.json)
			x := randomInput(2, 2, 8, 8, 5)
			target := randomInput(2, 2, 8, 8, 6)
			loss0, grads := gradients(t, m, x, target, v.ts, v.labels)
			const h = 1e-2
			floor := 1e-6 * loss0 / h
			lossAt := func() float64 {
				out, err := m.ForwardTensor(x, v.ts, v.labels)
				if err != nil {
					t.Fatal(err)
				}
				l, _ := nn.MSELoss(out, target)
				return l
			}
			r := nn.NewRNG(9, 9)
			check := func(name string, data, grad []float32) {
				maxG := 0.0
				for _, g := range grad {
					maxG = math.Max(maxG, math.Abs(float64(g)))
				}
				for k := 0; k < 1; k++ {
					i := r.Intn(len(data))
					// In the lookup tables, probe the rows the batch uses.
					if p := m.Params.Get(name); p != nil && len(p.Shape) == 2 {
						switch {
						case name == "time_proj.weight":
							i = int(v.ts[k])*p.Shape[1] + i%p.Shape[1]
						case name == "class_embedding.weight" && m.ClassEmbedding != nil:
							i = v.labels[k]*p.Shape[1] + i%p.Shape[1]
						}
					}
					orig := data[i]
					data[i] = orig + h
					hi, up := lossAt(), data[i]
					data[i] = orig - h
					lo, down := lossAt(), data[i]
					data[i] = orig
					fd := (hi - lo) / float64(up-down)
					an := float64(grad[i])
					if d := math.Abs(fd - an); d > 1e-2*math.Abs(an)+2e-3*maxG+floor {
						t.Errorf("%s[%d]: backward %.6g, finite difference %.6g", name, i, an, fd)
					}
				}
			}
			for _, p := range m.Params.List() {
				if p.Name == "time_proj.weight" && m.Config.TimeEmbeddingType == "fourier" {
					if grads[p.Name] != nil && len(grads[p.Name]) > 0 {
						t.Errorf("the Fourier frequencies received a gradient; diffusers freezes them")
					}
					continue
				}
				check(p.Name, p.Data, grads[p.Name])
			}
			check("input", x.Data, grads["input"])
		})
	}
}

func TestGradientsIndependentOfThreadCount(t *testing.T) {
	m := tinyModel(t, `,"resnet_time_scale_shift":"scale_shift","num_class_embeds":3`)
	x := randomInput(3, 2, 8, 8, 7)
	target := randomInput(3, 2, 8, 8, 8)
	ts := []float32{1, 400, 999}
	labels := []int{0, 1, 2}
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	_, one := gradients(t, m, x, target, ts, labels)
	runtime.GOMAXPROCS(4)
	_, four := gradients(t, m, x, target, ts, labels)
	for name, g := range one {
		for i := range g {
			if math.Float32bits(g[i]) != math.Float32bits(four[name][i]) {
				t.Fatalf("%s[%d]: %v with 1 thread, %v with 4", name, i, g[i], four[name][i])
			}
		}
	}
}

// BenchmarkTrainStep measures forward, backward and an AdamW update of a
// small UNet (channels 32/64, attention at the lower level) on a batch of 8
// 16x16 four-channel latents.
func BenchmarkTrainStep(b *testing.B) {
	cfg, err := ParseConfig([]byte(`{"in_channels":4,"out_channels":4,"block_out_channels":[32,64],"layers_per_block":1,
		"down_block_types":["DownBlock2D","AttnDownBlock2D"],"up_block_types":["AttnUpBlock2D","UpBlock2D"],
		"norm_num_groups":8,"attention_head_dim":32}`))
	if err != nil {
		b.Fatal(err)
	}
	m, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	randomize(m, 1)
	const batch = 8
	x := randomInput(batch, 4, 16, 16, 2)
	target := randomInput(batch, 4, 16, 16, 3)
	ts := make([]float32, batch)
	for i := range ts {
		ts[i] = float32(100 * i)
	}
	opt := nn.NewAdamW(m.Params)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tp := nn.NewTape()
		tp.Constant(x)
		out, err := m.ForwardTape(tp, x, ts, nil)
		if err != nil {
			b.Fatal(err)
		}
		_, g := nn.MSELoss(out, target)
		tp.AddGrad(out, g)
		tp.Backward()
		opt.Update(1e-4)
		m.Params.ZeroGrad()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "steps/s")
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "images/s")
}
