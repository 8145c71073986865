package pipeline

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/ldm-go/ldm/nn"
)

// jobPipeline loads the tiny golden latent pipeline (1x16x16 images, KL VAE,
// DDIM).
func jobPipeline(t testing.TB) *Pipeline {
	t.Helper()
	p, err := Load(goldenPipeline)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testImages makes n distinct smooth images in [-1, 1] of p's size.
func testImages(p *Pipeline, n int, seed uint64) *tensor.Dense {
	c := p.ImageChannels()
	h, w := p.ImageSize()
	r := nn.NewRNG(seed, 0)
	d := make([]float32, n*c*h*w)
	for i := 0; i < n; i++ {
		fx, fy, ph := 0.2+0.5*r.Float64(), 0.2+0.5*r.Float64(), 6*r.Float64()
		for j := 0; j < c*h*w; j++ {
			y, x := (j/w)%h, j%w
			d[i*c*h*w+j] = float32(0.9 * math.Sin(fx*float64(x)+fy*float64(y)+ph))
		}
	}
	return tensor.New(tensor.WithShape(n, c, h, w), tensor.WithBacking(d))
}

func one(t *tensor.Dense, i int) *tensor.Dense {
	s := t.Shape()
	per := s[1] * s[2] * s[3]
	d := t.Data().([]float32)[i*per : (i+1)*per]
	return tensor.New(tensor.WithShape(1, s[1], s[2], s[3]), tensor.WithBacking(append([]float32(nil), d...)))
}

func TestDenoiseStrengthZeroIsReconstruction(t *testing.T) {
	p := jobPipeline(t)
	x := testImages(p, 2, 1)
	rec, err := p.Reconstruct(x)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.DenoiseImages(context.Background(), x, DenoiseOptions{JobOptions: JobOptions{Steps: 10, Seed: 3}})
	if err != nil {
		t.Fatal(err)
	}
	if !bitsEqual(rec.Float32s(), got.Float32s()) {
		t.Error("strength 0 does not return the reconstruction")
	}
	half, err := p.DenoiseImages(context.Background(), x, DenoiseOptions{JobOptions: JobOptions{Steps: 10, Seed: 3}, Strength: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if bitsEqual(rec.Float32s(), half.Float32s()) {
		t.Error("strength 0.5 changed nothing")
	}
}

func TestStartIndexAsDiffusers(t *testing.T) {
	ts := make([]float64, 10)
	for _, tc := range []struct {
		strength float64
		want     int
	}{{0, 10}, {0.05, 10}, {0.1, 9}, {0.55, 5}, {1, 0}} {
		if got := startIndex(ts, 10, tc.strength); got != tc.want {
			t.Errorf("strength %v: start %d, want %d", tc.strength, got, tc.want)
		}
	}
	// Heun: 2n-1 timesteps, order 2.
	if got := startIndex(make([]float64, 19), 10, 0.5); got != 10 {
		t.Errorf("heun start %d, want 10", got)
	}
}

// Image i's result depends only on its own stream: batches of 3 or 1, and
// the image alone with its stream given explicitly, agree bit for bit.
func TestDenoiseBatchAndStreamInvariance(t *testing.T) {
	p := jobPipeline(t)
	x := testImages(p, 4, 2)
	for _, sched := range []string{"ddim", "euler_a", "ddpm"} {
		var ref []float32
		for _, bs := range []int{4, 3, 1} {
			o := DenoiseOptions{JobOptions: JobOptions{Steps: 6, Seed: 9, Scheduler: sched, BatchSize: bs, Streams: []uint64{11, 12, 13, 14}}, Strength: 0.7}
			got, err := p.DenoiseImages(context.Background(), x, o)
			if err != nil {
				t.Fatal(err)
			}
			if ref == nil {
				ref = got.Float32s()
			} else if !bitsEqual(ref, got.Float32s()) {
				t.Errorf("%s: batch size %d changes the images", sched, bs)
			}
		}
		alone, err := p.DenoiseImages(context.Background(), one(x, 2),
			DenoiseOptions{JobOptions: JobOptions{Steps: 6, Seed: 9, Scheduler: sched, Streams: []uint64{13}}, Strength: 0.7})
		if err != nil {
			t.Fatal(err)
		}
		per := len(ref) / 4
		if !bitsEqual(ref[2*per:3*per], alone.Float32s()) {
			t.Errorf("%s: image 2 alone differs from image 2 of the batch", sched)
		}
	}
}

func TestDenoiseClassGuidanceMatters(t *testing.T) {
	p := tinyClassPipeline(t)
	x := testImages(p, 2, 3)
	run := func(labels []int, g float64) []float32 {
		out, err := p.DenoiseImages(context.Background(), x, DenoiseOptions{JobOptions: JobOptions{Steps: 5, Seed: 1, ClassLabels: labels, GuidanceScale: g}, Strength: 0.8})
		if err != nil {
			t.Fatal(err)
		}
		return out.Float32s()
	}
	u, c0, c0g := run(nil, 0), run([]int{0}, 0), run([]int{0}, 4)
	if bitsEqual(u, c0) || bitsEqual(c0, c0g) {
		t.Error("class label or guidance had no effect on denoising")
	}
}

// checkerMask returns a [1, 1, H, W] mask with random cells regenerated.
func randomMask(h, w int, seed uint64) *tensor.Dense {
	r := nn.NewRNG(seed, 1)
	m := make([]float32, h*w)
	for i := range m {
		m[i] = float32(r.Float64())
	}
	return tensor.New(tensor.WithShape(1, 1, h, w), tensor.WithBacking(m))
}

// Property: outside the mask, the output equals the input bit for bit,
// whatever the mask, feathering, resampling and sampler.
func TestInpaintLeavesUnmaskedPixelsAlone(t *testing.T) {
	p := jobPipeline(t)
	h, w := p.ImageSize()
	x := testImages(p, 3, 4)
	for k, o := range []InpaintOptions{
		{JobOptions: JobOptions{Steps: 5, Seed: 1}},
		{JobOptions: JobOptions{Steps: 6, Seed: 2}, JumpLength: 2, Resample: 2, Feather: 1.5},
		{JobOptions: JobOptions{Steps: 5, Seed: 3, Scheduler: "euler_a"}, Feather: 0.7},
		{JobOptions: JobOptions{Steps: 4, Seed: 4, Scheduler: "ddpm"}, JumpLength: 1, Resample: 1},
		{JobOptions: JobOptions{Steps: 4, Seed: 5, Scheduler: "ddim"}, ReEncode: true},
	} {
		o.Mask = randomMask(h, w, uint64(k))
		out, err := p.Inpaint(context.Background(), x, o)
		if err != nil {
			t.Fatal(err)
		}
		m := o.Mask.Float32s()
		in, got := x.Float32s(), out.Float32s()
		changed := false
		for j := range got {
			mv := m[j%(h*w)]
			if mv < 0.5 && math.Float32bits(got[j]) != math.Float32bits(in[j]) {
				t.Fatalf("case %d: unmasked value %d changed: %v -> %v", k, j, in[j], got[j])
			}
			if mv >= 0.5 && got[j] != in[j] {
				changed = true
			}
		}
		if !changed {
			t.Errorf("case %d: nothing inside the mask was regenerated", k)
		}
	}
}

func TestInpaintResamplingChangesResult(t *testing.T) {
	p := jobPipeline(t)
	h, w := p.ImageSize()
	x := testImages(p, 1, 5)
	base := InpaintOptions{JobOptions: JobOptions{Steps: 6, Seed: 2}, Mask: randomMask(h, w, 9)}
	a, err := p.Inpaint(context.Background(), x, base)
	if err != nil {
		t.Fatal(err)
	}
	base.JumpLength, base.Resample = 3, 1
	calls := 0
	base.Progress = func(Progress) { calls++ }
	b, err := p.Inpaint(context.Background(), x, base)
	if err != nil {
		t.Fatal(err)
	}
	if bitsEqual(a.Float32s(), b.Float32s()) {
		t.Error("RePaint resampling changed nothing")
	}
	// 6 steps plus one jump back of 3 steps at step 3 (none at the end).
	if calls != 9 {
		t.Errorf("%d denoising steps, want 9", calls)
	}
}

func TestInpaintReEncode(t *testing.T) {
	p := jobPipeline(t)
	h, w := p.ImageSize()
	x := testImages(p, 2, 6)
	o := InpaintOptions{JobOptions: JobOptions{Steps: 4, Seed: 3}, Mask: randomMask(h, w, 4)}
	a, err := p.Inpaint(context.Background(), x, o)
	if err != nil {
		t.Fatal(err)
	}
	o.ReEncode = true
	b, err := p.Inpaint(context.Background(), x, o)
	if err != nil {
		t.Fatal(err)
	}
	if bitsEqual(a.Float32s(), b.Float32s()) {
		t.Error("re-encoding changed nothing")
	}
	// One image at a time gives the same bits: each image's masks and
	// pixels are its own.
	o.BatchSize = 1
	c, err := p.Inpaint(context.Background(), x, o)
	if err != nil {
		t.Fatal(err)
	}
	if !bitsEqual(b.Float32s(), c.Float32s()) {
		t.Error("re-encoding depends on the batch size")
	}
	o.Scheduler = "euler"
	if _, err := p.Inpaint(context.Background(), x, o); err == nil || !strings.Contains(err.Error(), "sigma-scaled") {
		t.Errorf("re-encoding with euler: error %v, want a refusal naming sigma-scaled samples", err)
	}
}

// Property: re-encoding a v or clean-latent prediction gives the
// prediction that the epsilon re-encoding of the same step implies: the
// three prediction types describe one denoised estimate.
func TestReEncodePredictionTypes(t *testing.T) {
	p := jobPipeline(t)
	h, w := p.ImageSize()
	img, err := fromDense(testImages(p, 2, 9))
	if err != nil {
		t.Fatal(err)
	}
	lat, err := p.encode(img) // for the latents' shape
	if err != nil {
		t.Fatal(err)
	}
	mask := randomMask(h, w, 5).Data().([]float32)
	r := nn.NewRNG(4, 0)
	x := nn.NewTensor(lat.N, lat.C, lat.H, lat.W)
	eps := make([]float32, len(x.Data))
	r.FillNormal(x.Data)
	r.FillNormal(eps)
	const a = 0.6
	sa, sb := math.Sqrt(a), math.Sqrt(1-a)
	v, x0 := make([]float32, len(eps)), make([]float32, len(eps))
	for j := range eps {
		c := (float64(x.Data[j]) - sb*float64(eps[j])) / sa
		x0[j] = float32(c)
		v[j] = float32(sa*float64(eps[j]) - sb*c)
	}
	if err := p.reEncode(eps, "epsilon", x, img, mask, a); err != nil {
		t.Fatal(err)
	}
	if err := p.reEncode(v, "v_prediction", x, img, mask, a); err != nil {
		t.Fatal(err)
	}
	if err := p.reEncode(x0, "sample", x, img, mask, a); err != nil {
		t.Fatal(err)
	}
	for j, e := range eps {
		z := (float64(x.Data[j]) - sb*float64(e)) / sa
		if d := math.Abs(float64(v[j]) - (sa*float64(e) - sb*z)); d > 1e-4 {
			t.Fatalf("value %d: v re-encoded to %v, the epsilon re-encoding implies %v", j, v[j], sa*float64(e)-sb*z)
		}
		if d := math.Abs(float64(x0[j]) - z); d > 1e-4 {
			t.Fatalf("value %d: clean latents re-encoded to %v, the epsilon re-encoding implies %v", j, x0[j], z)
		}
	}
	if err := p.reEncode(eps, "flow", x, img, mask, a); err == nil || !strings.Contains(err.Error(), "flow") {
		t.Errorf("unknown prediction type: error %v, want one naming it", err)
	}
}

// Property: with candidates, each image is one of the single runs (seeds
// Seed, Seed+1, ... or one run per class), namely the one whose result the
// denoiser predicts best, asked with the run's own class; the choice is per
// image and does not depend on the batch size.
func TestInpaintCandidatesKeepBestFit(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		p     *Pipeline
		o     InpaintOptions
		runs  func(o InpaintOptions) []InpaintOptions
		count int
	}{
		{name: "seeds", p: jobPipeline(t), o: InpaintOptions{JobOptions: JobOptions{Steps: 4, Seed: 7}, Candidates: 3, ReEncode: true, Feather: 1},
			runs: func(o InpaintOptions) (rs []InpaintOptions) {
				for k := range 3 {
					r := o
					r.Candidates, r.Seed = 0, o.Seed+uint64(k)
					rs = append(rs, r)
				}
				return rs
			}},
		{name: "classes", p: tinyClassPipeline(t), o: InpaintOptions{JobOptions: JobOptions{Steps: 3, Seed: 2, GuidanceScale: 2}, Candidates: 2, EveryClass: true},
			runs: func(o InpaintOptions) (rs []InpaintOptions) {
				for k := range 2 {
					for c := range 2 {
						r := o
						r.Candidates, r.EveryClass, r.Seed, r.ClassLabels = 0, false, o.Seed+uint64(k), []int{c}
						rs = append(rs, r)
					}
				}
				return rs
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			h, w := p.ImageSize()
			x := testImages(p, 5, 8)
			tc.o.Mask = randomMask(h, w, 3)
			steps := 0
			tc.o.Progress = func(pr Progress) {
				steps++
				if pr.Step > pr.Steps {
					t.Fatalf("progress step %d of %d", pr.Step, pr.Steps)
				}
			}
			got, err := p.Inpaint(ctx, x, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			per := len(got.Float32s()) / 5
			var singles [][]float32
			var errs [][]float64
			distinct := map[int]bool{}
			for _, r := range tc.runs(tc.o) {
				r.Progress = nil
				out, err := p.Inpaint(ctx, x, r)
				if err != nil {
					t.Fatal(err)
				}
				req, err := p.checkJob(r.JobOptions, 5)
				if err != nil {
					t.Fatal(err)
				}
				o, err := fromDense(out)
				if err != nil {
					t.Fatal(err)
				}
				e, err := p.fitErrors(o, req.labels, tc.o.JobOptions, 3)
				if err != nil {
					t.Fatal(err)
				}
				singles = append(singles, out.Float32s())
				errs = append(errs, e)
			}
			if want := len(singles) * tc.o.Steps; steps != want {
				t.Errorf("%d progress calls, want %d (one batch)", steps, want)
			}
			for i := 0; i < 5; i++ {
				best := 0
				for k := range errs {
					if errs[k][i] < errs[best][i] {
						best = k
					}
				}
				distinct[best] = true
				if !bitsEqual(got.Float32s()[i*per:(i+1)*per], singles[best][i*per:(i+1)*per]) {
					t.Errorf("image %d is not its best-fitting single run (%d)", i, best)
				}
			}
			if len(distinct) < 2 {
				t.Errorf("every image chose the same candidate %v: the test needs a case where the choice matters", distinct)
			}
			o := tc.o
			o.BatchSize, o.Progress = 2, nil
			again, err := p.Inpaint(ctx, x, o)
			if err != nil {
				t.Fatal(err)
			}
			if !bitsEqual(got.Float32s(), again.Float32s()) {
				t.Error("the candidates' result depends on the batch size")
			}
		})
	}
}

func TestInpaintCandidatesRefuseBadOptions(t *testing.T) {
	ctx := context.Background()
	p := jobPipeline(t)
	h, w := p.ImageSize()
	x := testImages(p, 1, 1)
	m := randomMask(h, w, 1)
	for _, tc := range []struct {
		p    *Pipeline
		o    InpaintOptions
		want string
	}{
		{p, InpaintOptions{Mask: m, Candidates: -1}, "candidates -1"},
		{p, InpaintOptions{Mask: m, Candidates: maxCandidates + 1}, "candidates"},
		{p, InpaintOptions{Mask: m, EveryClass: true}, "class-conditional"},
		{tinyClassPipeline(t), InpaintOptions{Mask: randomMask(8, 8, 1), EveryClass: true, JobOptions: JobOptions{ClassLabels: []int{1}}}, "give no class labels"},
	} {
		xx := x
		if tc.p != p {
			xx = testImages(tc.p, 1, 1)
		}
		if _, err := tc.p.Inpaint(ctx, xx, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one containing %q", tc.o, err, tc.want)
		}
	}
}

func TestLatentMaskCoversMaskedPixels(t *testing.T) {
	m := make([]float32, 4*4)
	m[1*4+2] = 1 // pixel (2, 1) is in latent cell (1, 0) with factor 2
	lm := latentMask(m, 1, 4, 4, 2, 2)
	want := []float32{0, 1, 0, 0}
	for i, v := range lm.Data {
		if v != want[i] {
			t.Fatalf("latent mask %v, want %v", lm.Data, want)
		}
	}
}

func TestFeatherStaysInsideMask(t *testing.T) {
	m := make([]float32, 8*8)
	for y := 2; y < 6; y++ {
		for x := 2; x < 6; x++ {
			m[y*8+x] = 1
		}
	}
	w := weights(m, 8, 8, 1)
	for i, v := range w {
		if m[i] == 0 && v != 0 {
			t.Fatalf("feathered weight %v outside the mask at %d", v, i)
		}
		if m[i] == 1 && !(v > 0 && v <= 1) {
			t.Fatalf("feathered weight %v inside the mask at %d", v, i)
		}
	}
	if w[2*8+2] >= w[3*8+3] {
		t.Errorf("the corner (%v) should weigh less than the inside (%v)", w[2*8+2], w[3*8+3])
	}
}

func TestInterpolateEndpointsReproduceReconstructions(t *testing.T) {
	p := jobPipeline(t)
	x := testImages(p, 2, 6)
	a, b := one(x, 0), one(x, 1)
	ctx := context.Background()
	lin, err := p.Interpolate(ctx, a, b, InterpolateOptions{Frames: 4})
	if err != nil {
		t.Fatal(err)
	}
	ra, _ := p.Reconstruct(a)
	rb, _ := p.Reconstruct(b)
	per := len(ra.Float32s())
	f := lin.Float32s()
	if !bitsEqual(f[:per], ra.Float32s()) || !bitsEqual(f[3*per:], rb.Float32s()) {
		t.Error("linear interpolation endpoints differ from the reconstructions")
	}
	if bitsEqual(f[per:2*per], ra.Float32s()) {
		t.Error("the middle frame equals an endpoint")
	}
	sph, err := p.Interpolate(ctx, a, b, InterpolateOptions{Frames: 3, Mode: SphericalNoise, Steps: 5})
	if err != nil {
		t.Fatal(err)
	}
	for k, img := range []*tensor.Dense{a, b} {
		z, _ := p.EncodeLatents(img)
		n, err := p.InvertDDIM(ctx, z, 5, nil)
		if err != nil {
			t.Fatal(err)
		}
		l, err := p.SampleDDIM(ctx, n, 5, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := p.DecodeImages(l)
		if !bitsEqual(sph.Float32s()[2*k*per:(2*k+1)*per], want.Float32s()) {
			t.Errorf("spherical endpoint %d differs from its DDIM round trip", k)
		}
	}
}

func TestLerpSlerp(t *testing.T) {
	a := tensor.New(tensor.WithShape(1, 2), tensor.WithBacking([]float32{1, 0}))
	b := tensor.New(tensor.WithShape(1, 2), tensor.WithBacking([]float32{0, 1}))
	m, err := Slerp(a, b, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	// Halfway along the unit circle.
	if d := m.Float32s(); math.Abs(float64(d[0])-math.Sqrt(0.5)) > 1e-6 || math.Abs(float64(d[1])-math.Sqrt(0.5)) > 1e-6 {
		t.Errorf("slerp halfway = %v", d)
	}
	l, _ := Lerp(a, b, 0.25)
	if d := l.Float32s(); d[0] != 0.75 || d[1] != 0.25 {
		t.Errorf("lerp = %v", d)
	}
	c := tensor.New(tensor.WithShape(1, 3), tensor.WithBacking([]float32{0, 1, 2}))
	for _, f := range []func(a, b *tensor.Dense, alpha float64) (*tensor.Dense, error){Lerp, Slerp} {
		for _, alpha := range []float64{-0.1, 1.5, math.NaN()} {
			if _, err := f(a, b, alpha); err == nil || !strings.Contains(err.Error(), "outside [0, 1]") {
				t.Errorf("alpha %v: err = %v", alpha, err)
			}
		}
		if _, err := f(a, c, 0.5); err == nil || !strings.Contains(err.Error(), "shapes") {
			t.Errorf("mismatched shapes: err = %v", err)
		}
	}
}

func TestDirectionEditAndSaveLoad(t *testing.T) {
	p := jobPipeline(t)
	ctx := context.Background()
	x := testImages(p, 5, 7)
	y := testImages(p, 3, 8)
	ma, err := p.MeanLatent(ctx, x, 2)
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := p.MeanLatent(ctx, y, 0)
	// The mean of batch-by-batch encoding equals the mean of the latents.
	z, _ := p.EncodeLatents(x)
	zd := z.Float32s()
	per := len(ma.Float32s())
	for j, v := range ma.Float32s() {
		var s float64
		for i := 0; i < 5; i++ {
			s += float64(zd[i*per+j])
		}
		if math.Abs(s/5-float64(v)) > 1e-6 {
			t.Fatalf("mean latent %d: %v, want %v", j, v, s/5)
		}
	}
	d, err := LatentDirection(ma, mb)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dir.safetensors")
	if err := SaveDirection(path, d, map[string]string{"from": "x", "to": "y"}); err != nil {
		t.Fatal(err)
	}
	d2, meta, err := LoadDirection(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bitsEqual(d.Float32s(), d2.Float32s()) || meta["from"] != "x" || meta["to"] != "y" {
		t.Error("direction did not survive saving")
	}
	// Alpha 0 without SDEdit is the reconstruction; alpha 1 decodes z + d.
	e0, err := p.Edit(ctx, x, EditOptions{Direction: d2})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := p.Reconstruct(x)
	if !bitsEqual(e0.Float32s(), rec.Float32s()) {
		t.Error("edit with alpha 0 differs from the reconstruction")
	}
	e1, _ := p.Edit(ctx, one(x, 0), EditOptions{Direction: d2, Alpha: 1})
	moved := make([]float32, per)
	for j := range moved {
		moved[j] = zd[j] + d.Float32s()[j]
	}
	want, _ := p.DecodeImages(tensor.New(tensor.WithShape(ma.Shape().Clone()...), tensor.WithBacking(moved)))
	if !bitsEqual(e1.Float32s(), want.Float32s()) {
		t.Error("edit with alpha 1 does not decode latent + direction")
	}
	if _, err := p.Edit(ctx, x, EditOptions{Direction: d2, Alpha: 1, Strength: 2}); err == nil || !strings.Contains(err.Error(), "strength 2 outside [0, 1]") {
		t.Errorf("strength 2: err = %v", err)
	}
}

func TestAnomalyScores(t *testing.T) {
	p := jobPipeline(t)
	ctx := context.Background()
	x := testImages(p, 3, 10)
	o := AnomalyOptions{Seed: 1, Streams: []uint64{5, 6, 7}, BatchSize: 3}
	s3, err := p.AnomalyScores(ctx, x, o)
	if err != nil {
		t.Fatal(err)
	}
	o.BatchSize = 1
	s1, _ := p.AnomalyScores(ctx, x, o)
	for i := range s3 {
		if !sameScores(s3[i], s1[i]) {
			t.Errorf("image %d: batch size changes the scores: %+v vs %+v", i, s3[i], s1[i])
		}
		if !math.IsNaN(s3[i].ClassNoiseError) {
			t.Errorf("image %d: class noise error %v without ClassMin", i, s3[i].ClassNoiseError)
		}
	}
	// ReconMSE is the error of the reconstruction (up to the rounding of
	// scaling the latents there and back), and NegELBO follows from it, the
	// KL and the constants.
	rec, _ := p.Reconstruct(x)
	in, rd := x.Float32s(), rec.Float32s()
	per := len(in) / 3
	xt, _ := fromDense(x)
	post, _ := p.VAE.EncodeTensor(xt)
	kl := post.KL()
	for i := 0; i < 3; i++ {
		var se float64
		for j := i * per; j < (i+1)*per; j++ {
			d := float64(in[j] - rd[j])
			se += d * d
		}
		if math.Abs(se/float64(per)-s3[i].ReconMSE) > 1e-6*se/float64(per) {
			t.Errorf("image %d: recon MSE %v, want %v", i, s3[i].ReconMSE, se/float64(per))
		}
		sig := DefaultPixelStd
		want := float64(per)/2*math.Log(2*math.Pi*sig*sig) + se/(2*sig*sig) + float64(kl[i])
		if math.Abs(want-s3[i].NegELBO) > 1e-5*math.Abs(want) {
			t.Errorf("image %d: -ELBO %v, want %v", i, s3[i].NegELBO, want)
		}
		if !(s3[i].NoiseError > 0) {
			t.Errorf("image %d: noise error %v", i, s3[i].NoiseError)
		}
	}
	// The noise error is the geometric mean of the per-timestep errors.
	ts := []int{100, 600}
	two, err := p.AnomalyScores(ctx, x, AnomalyOptions{Seed: 1, Streams: []uint64{5, 6, 7}, Timesteps: ts})
	if err != nil {
		t.Fatal(err)
	}
	for i, stream := range []uint64{5, 6, 7} {
		e := handNoiseErrors(t, p, one(x, i), 1, stream, ts, -1)
		if want := math.Sqrt(e[0] * e[1]); math.Abs(two[i].NoiseError-want) > 1e-6*want {
			t.Errorf("image %d: noise error %v, want the geometric mean %v of %v", i, two[i].NoiseError, want, e)
		}
	}
	if _, err := p.AnomalyScores(ctx, x, AnomalyOptions{Timesteps: []int{1000}}); err == nil {
		t.Error("timestep 1000 accepted")
	}
	if _, err := p.AnomalyScores(ctx, x, AnomalyOptions{ClassMin: true}); err == nil || !strings.Contains(err.Error(), "class-conditional model") {
		t.Errorf("ClassMin on an unconditional model: err = %v", err)
	}
}

// sameScores compares two scores bit for bit (NaN equal to NaN).
func sameScores(a, b AnomalyScore) bool {
	x := []float64{a.ReconMSE, a.NegELBO, a.NoiseError, a.ClassNoiseError}
	y := []float64{b.ReconMSE, b.NegELBO, b.NoiseError, b.ClassNoiseError}
	for i := range x {
		if math.Float64bits(x[i]) != math.Float64bits(y[i]) {
			return false
		}
	}
	return true
}

// handNoiseErrors recomputes, step by step, the mean squared noise
// prediction error of image x (an epsilon-prediction model) at each
// timestep of ts, with the noise AnomalyScores draws from stream (seed,
// stream), asking for label (-1: none).
func handNoiseErrors(t *testing.T, p *Pipeline, x *tensor.Dense, seed, stream uint64, ts []int, label int) []float64 {
	t.Helper()
	z, err := p.EncodeLatents(x)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := p.NewScheduler("")
	ac := s.AlphasCumprod()
	r := nn.NewRNG(seed, stream)
	zd := z.Float32s()
	var cond Conditioning
	cond.NullLabel = -1
	if label >= 0 {
		cond.Labels = []int{label}
	}
	var errs []float64
	for _, tt := range ts {
		eps := make([]float32, len(zd))
		r.FillNormal(eps)
		sa, sb := float32(math.Sqrt(float64(ac[tt]))), float32(math.Sqrt(float64(1-ac[tt])))
		xt := make([]float32, len(zd))
		for j := range xt {
			xt[j] = sa*zd[j] + sb*eps[j]
		}
		pred, err := p.PredictNoise(tensor.New(tensor.WithShape(z.Shape().Clone()...), tensor.WithBacking(xt)), float64(tt), cond, s)
		if err != nil {
			t.Fatal(err)
		}
		var se float64
		for j, v := range pred.Float32s()[:len(zd)] {
			d := float64(v - eps[j])
			se += d * d
		}
		errs = append(errs, se/float64(len(zd)))
	}
	return errs
}

func TestClassNoiseError(t *testing.T) {
	p := tinyClassPipeline(t)
	ctx := context.Background()
	x := testImages(p, 3, 4)
	ts := []int{200, 700}
	o := AnomalyOptions{Seed: 2, Timesteps: ts, BatchSize: 3}
	plain, err := p.AnomalyScores(ctx, x, o)
	if err != nil {
		t.Fatal(err)
	}
	o.ClassMin = true
	s3, err := p.AnomalyScores(ctx, x, o)
	if err != nil {
		t.Fatal(err)
	}
	o.BatchSize = 2
	s2, _ := p.AnomalyScores(ctx, x, o)
	for i := range s3 {
		if !sameScores(s3[i], s2[i]) {
			t.Errorf("image %d: batch size changes the scores: %+v vs %+v", i, s3[i], s2[i])
		}
		if s3[i].NoiseError != plain[i].NoiseError {
			t.Errorf("image %d: ClassMin changes the unconditional noise error: %v vs %v", i, s3[i].NoiseError, plain[i].NoiseError)
		}
		// The smallest over the two classes of each class's geometric mean.
		want := math.Inf(1)
		for c := 0; c < 2; c++ {
			e := handNoiseErrors(t, p, one(x, i), 2, uint64(i), ts, c)
			want = math.Min(want, math.Sqrt(e[0]*e[1]))
		}
		if math.Abs(s3[i].ClassNoiseError-want) > 1e-6*want {
			t.Errorf("image %d: class noise error %v, want %v", i, s3[i].ClassNoiseError, want)
		}
		if u := handNoiseErrors(t, p, one(x, i), 2, uint64(i), ts, 2); math.Abs(s3[i].NoiseError-math.Sqrt(u[0]*u[1])) > 1e-6*s3[i].NoiseError {
			t.Errorf("image %d: unconditional noise error %v is not the null class's %v", i, s3[i].NoiseError, u)
		}
	}
}

func TestAUC(t *testing.T) {
	for _, tc := range []struct {
		in, out []float64
		want    float64
	}{
		{[]float64{1, 2, 3}, []float64{4, 5}, 1},
		{[]float64{4, 5}, []float64{1, 2, 3}, 0},
		{[]float64{1, 1}, []float64{1}, 0.5},
		{[]float64{1, 3}, []float64{2}, 0.5},
		{[]float64{1, 2, 3, 4}, []float64{2.5, 5}, 0.75},
	} {
		got, err := AUC(tc.in, tc.out)
		if err != nil || got != tc.want {
			t.Errorf("AUC(%v, %v) = %v, %v; want %v", tc.in, tc.out, got, err, tc.want)
		}
	}
	// Against the pairwise definition, with ties.
	r := nn.NewRNG(1, 1)
	in, out := make([]float64, 50), make([]float64, 40)
	for i := range in {
		in[i] = float64(r.Intn(20))
	}
	for i := range out {
		out[i] = float64(r.Intn(20) + 3)
	}
	var pairs float64
	for _, a := range in {
		for _, b := range out {
			switch {
			case b > a:
				pairs++
			case b == a:
				pairs += 0.5
			}
		}
	}
	got, _ := AUC(in, out)
	if math.Abs(got-pairs/2000) > 1e-12 {
		t.Errorf("AUC %v, pairwise %v", got, pairs/2000)
	}
	if _, err := AUC(nil, out); err == nil {
		t.Error("empty inliers accepted")
	}
	if _, err := AUC([]float64{math.NaN()}, out); err == nil {
		t.Error("NaN accepted")
	}
}

func TestJobsRefuseBadOptions(t *testing.T) {
	p := jobPipeline(t)
	ctx := context.Background()
	h, w := p.ImageSize()
	x := testImages(p, 2, 1)
	small := tensor.New(tensor.WithShape(1, 1, h/2, w/2), tensor.WithBacking(make([]float32, h*w/4)))
	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"strength above 1", func() error {
			_, err := p.DenoiseImages(ctx, x, DenoiseOptions{Strength: 1.5})
			return err
		}, "strength 1.5 outside [0, 1]"},
		{"negative strength", func() error {
			_, err := p.DenoiseImages(ctx, x, DenoiseOptions{Strength: -0.1})
			return err
		}, "strength -0.1 outside [0, 1]"},
		{"negative guidance", func() error {
			_, err := tinyClassPipeline(t).DenoiseImages(ctx, testImages(tinyClassPipeline(t), 1, 1), DenoiseOptions{JobOptions: JobOptions{ClassLabels: []int{1}, GuidanceScale: -2}, Strength: 0.5})
			return err
		}, "guidance scale -2"},
		{"image of another size", func() error {
			_, err := p.DenoiseImages(ctx, small, DenoiseOptions{Strength: 0.5})
			return err
		}, "the model takes [N, 1, 16, 16]"},
		{"mask of another size", func() error {
			_, err := p.Inpaint(ctx, x, InpaintOptions{Mask: small})
			return err
		}, "the mask is 8x8 but the images are 16x16"},
		{"no mask", func() error {
			_, err := p.Inpaint(ctx, x, InpaintOptions{})
			return err
		}, "needs a mask"},
		{"resampling with euler", func() error {
			_, err := p.Inpaint(ctx, x, InpaintOptions{JobOptions: JobOptions{Scheduler: "euler"}, Mask: randomMask(h, w, 1), JumpLength: 2, Resample: 1})
			return err
		}, "needs the ddim or ddpm sampler"},
		{"half resampling", func() error {
			_, err := p.Inpaint(ctx, x, InpaintOptions{Mask: randomMask(h, w, 1), JumpLength: 2})
			return err
		}, "both a jump length and a resample count"},
		{"streams count", func() error {
			_, err := p.DenoiseImages(ctx, x, DenoiseOptions{JobOptions: JobOptions{Streams: []uint64{1}}})
			return err
		}, "1 noise streams for 2 images"},
		{"one frame", func() error {
			_, err := p.Interpolate(ctx, one(x, 0), one(x, 1), InterpolateOptions{Frames: 1})
			return err
		}, "frames 1 outside"},
		{"edit NaN alpha", func() error {
			d, _ := p.MeanLatent(ctx, x, 0)
			_, err := p.Edit(ctx, x, EditOptions{Direction: d, Alpha: math.Inf(1)})
			return err
		}, "not a finite number"},
	}
	for _, tc := range tests {
		err := tc.run()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}

// The jobs that start from an image run a stochastic default sampler
// without its noise: with the pipeline's scheduler set to sde-dpmsolver++,
// denoising, editing and inpainting with Scheduler "" give the bits of the
// same pipeline set to dpmsolver++, and naming sde-dpm++2m still gives the
// stochastic results. Sampling keeps the noise.
func TestJobsRunDefaultSamplerWithoutNoise(t *testing.T) {
	p := jobPipeline(t)
	h, w := p.ImageSize()
	x := testImages(p, 2, 4)
	ode, err := p.Scheduler.Convert("DPMSolverMultistepScheduler")
	if err != nil {
		t.Fatal(err)
	}
	ode.AlgorithmType = "dpmsolver++"
	sde := *ode
	sde.AlgorithmType = "sde-dpmsolver++"
	jobs := map[string]func(name string) ([]float32, error){
		"denoise": func(name string) ([]float32, error) {
			o := DenoiseOptions{JobOptions: JobOptions{Steps: 8, Seed: 3, Scheduler: name}, Strength: 0.6}
			y, err := p.DenoiseImages(context.Background(), x, o)
			if err != nil {
				return nil, err
			}
			return y.Float32s(), nil
		},
		"inpaint": func(name string) ([]float32, error) {
			o := InpaintOptions{JobOptions: JobOptions{Steps: 8, Seed: 3, Scheduler: name}, Mask: randomMask(h, w, 2)}
			y, err := p.Inpaint(context.Background(), x, o)
			if err != nil {
				return nil, err
			}
			return y.Float32s(), nil
		},
	}
	generate := func(name string) []float32 {
		res, err := p.Generate(context.Background(), Options{N: 2, Seed: 3, Steps: 8, Scheduler: name})
		if err != nil {
			t.Fatal(err)
		}
		return res.Images.Float32s()
	}
	p.Scheduler = ode
	deterministic := generate("")
	p.Scheduler = &sde
	if got := generate(""); !bitsEqual(got, generate("sde-dpm++2m")) || bitsEqual(got, deterministic) {
		t.Error("sampling: the default sde-dpmsolver++ sampler does not sample as sde-dpm++2m")
	}
	for job, run := range jobs {
		p.Scheduler = ode
		want, err := run("")
		if err != nil {
			t.Fatal(err)
		}
		p.Scheduler = &sde
		got, err := run("")
		if err != nil {
			t.Fatal(err)
		}
		if !bitsEqual(want, got) {
			t.Errorf("%s: the default sde-dpmsolver++ sampler does not run as dpmsolver++", job)
		}
		named, err := run("sde-dpm++2m")
		if err != nil {
			t.Fatal(err)
		}
		if bitsEqual(want, named) {
			t.Errorf("%s: naming sde-dpm++2m gives the deterministic results", job)
		}
	}
}
