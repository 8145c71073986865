package pipeline

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-go/ldm/nn"
	"github.com/ldm-go/ldm/unet"
)

// guidedPipeline is tinyClassPipeline with a guide: a UNet of half the
// width with other random weights, and default weight w.
func guidedPipeline(t testing.TB, w float64) *Pipeline {
	t.Helper()
	p := tinyClassPipeline(t)
	c := *p.UNet.Config
	c.BlockOutChannels = []int{8, 8}
	g, err := unet.New(&c)
	if err != nil {
		t.Fatal(err)
	}
	r := nn.NewRNG(7, 0)
	for _, q := range g.Params.List() {
		for i := range q.Data {
			q.Data[i] = 0.1 * r.NormFloat32()
		}
	}
	if err := p.SetGuide(g, w); err != nil {
		t.Fatal(err)
	}
	return p
}

// The autoguided prediction is guide + w*(unet - guide) of the two
// models' own outputs, and weight 1 is the UNet's output alone.
func TestAutoGuidanceCombinesPredictions(t *testing.T) {
	p := guidedPipeline(t, 2)
	s, err := p.NewScheduler("")
	if err != nil {
		t.Fatal(err)
	}
	x := nn.NewTensor(3, 4, 4, 4)
	nn.NewRNG(3, 3).FillNormal(x.Data)
	labels := []int{2, 2, 1}
	ts := []float32{500}
	u, err := p.UNet.ForwardTensor(x, ts, labels)
	if err != nil {
		t.Fatal(err)
	}
	g, err := p.GuideUNet.ForwardTensor(x, ts, labels)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []float64{2, 1.5, 1} {
		got, err := p.PredictNoise(toDense(x), 500, Conditioning{Labels: labels, NullLabel: -1, Guide: p.GuideUNet, AutoGuidance: w}, s)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float32, len(u.Data))
		for i := range want {
			want[i] = g.Data[i] + float32(w)*(u.Data[i]-g.Data[i])
		}
		if w == 1 {
			want = u.Data
		}
		if !bitsEqual(got.Float32s(), want) {
			t.Errorf("weight %v: the prediction is not guide + w*(unet - guide)", w)
		}
	}
}

func generate(t *testing.T, p *Pipeline, o Options) []float32 {
	t.Helper()
	res, err := p.Generate(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return res.Images.Float32s()
}

// Options.AutoGuidance 0 takes the pipeline's weight and 1 turns it off;
// samples with classifier-free guidance are not autoguided; the images do
// not depend on the batch size.
func TestAutoGuidanceOptions(t *testing.T) {
	p := guidedPipeline(t, 2)
	plain := tinyClassPipeline(t)
	base := Options{N: 5, Seed: 9, Steps: 5, Scheduler: "sde-dpm++2m"}
	with := func(f func(*Options)) Options { o := base; f(&o); return o }

	def := generate(t, p, base)
	if !bitsEqual(def, generate(t, p, with(func(o *Options) { o.AutoGuidance = 2 }))) {
		t.Error("weight 0 is not the pipeline's default weight")
	}
	if !bitsEqual(def, generate(t, p, with(func(o *Options) { o.AutoGuidance = 2; o.BatchSize = 2 }))) {
		t.Error("autoguided images depend on the batch size")
	}
	off := generate(t, p, with(func(o *Options) { o.AutoGuidance = 1 }))
	if !bitsEqual(off, generate(t, plain, base)) {
		t.Error("weight 1 does not give the images of the pipeline without a guide")
	}
	if bitsEqual(def, off) {
		t.Error("autoguidance changed nothing")
	}
	if bitsEqual(def, generate(t, p, with(func(o *Options) { o.AutoGuidance = 3 }))) {
		t.Error("the weight changed nothing")
	}
	cfg := with(func(o *Options) { o.ClassLabels = []int{1}; o.GuidanceScale = 3 })
	if !bitsEqual(generate(t, p, cfg), generate(t, plain, cfg)) {
		t.Error("classifier-free guided samples were autoguided")
	}
	// The conditional model without classifier-free guidance is guided by
	// the guide's conditional prediction.
	cond := with(func(o *Options) { o.ClassLabels = []int{1} })
	if bitsEqual(generate(t, p, cond), generate(t, plain, cond)) {
		t.Error("conditional samples without classifier-free guidance were not autoguided")
	}

	for _, tc := range []struct {
		p    *Pipeline
		o    Options
		want string
	}{
		{plain, with(func(o *Options) { o.AutoGuidance = 2 }), "needs a guide UNet (guide_unet/)"},
		{p, with(func(o *Options) { o.AutoGuidance = 2; o.ClassLabels = []int{1}; o.GuidanceScale = 3 }), "without classifier-free guidance"},
		{p, with(func(o *Options) { o.AutoGuidance = -1 }), "autoguidance weight -1"},
		{p, with(func(o *Options) { o.AutoGuidance = math.NaN() }), "autoguidance weight NaN"},
	} {
		if _, err := tc.p.Generate(context.Background(), tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want it to mention %q", err, tc.want)
		}
	}
}

// A pipeline with a guide saves it as guide_unet/ with its weight in
// model_index.json, and loads back to the same images.
func TestAutoGuidanceSaveLoad(t *testing.T) {
	p := guidedPipeline(t, 1.5)
	dir := filepath.Join(t.TempDir(), "p")
	if err := p.Save(dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	var index map[string]any
	if err := json.Unmarshal(b, &index); err != nil {
		t.Fatal(err)
	}
	if c, _ := index[GuideComponent].([]any); len(c) != 2 || c[1] != "UNet2DModel" {
		t.Errorf("model_index.json %s = %v", GuideComponent, index[GuideComponent])
	}
	if index[AutoGuidanceKey] != 1.5 {
		t.Errorf("model_index.json %s = %v, want 1.5", AutoGuidanceKey, index[AutoGuidanceKey])
	}
	q, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if q.GuideUNet == nil || q.AutoGuidance != 1.5 {
		t.Fatalf("loaded guide %v, weight %v", q.GuideUNet != nil, q.AutoGuidance)
	}
	o := Options{N: 3, Seed: 4, Steps: 4}
	if !bitsEqual(generate(t, p, o), generate(t, q, o)) {
		t.Error("the reloaded pipeline generates other images")
	}

	// A guide without a weight in model_index.json is off by default.
	delete(index, AutoGuidanceKey)
	b, _ = json.Marshal(index)
	if err := os.WriteFile(filepath.Join(dir, IndexFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if q, err = Load(dir); err != nil {
		t.Fatal(err)
	}
	if q.AutoGuidance != 1 || !bitsEqual(generate(t, q, o), generate(t, tinyClassPipeline(t), o)) {
		t.Errorf("without %s the weight is %v and images are not the unguided ones", AutoGuidanceKey, q.AutoGuidance)
	}
}

func TestAutoGuidanceRefusesBadGuides(t *testing.T) {
	p := tinyClassPipeline(t)
	c := *p.UNet.Config
	c.OutChannels = 8
	g, err := unet.New(&c)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetGuide(g, 2); err == nil || !strings.Contains(err.Error(), "guide_unet in/out channels 4/8") {
		t.Errorf("a guide with other output channels: err = %v", err)
	}
	c = *p.UNet.Config
	n := 5
	c.NumClassEmbeds = &n
	if g, err = unet.New(&c); err != nil {
		t.Fatal(err)
	}
	if err := p.SetGuide(g, 2); err == nil || !strings.Contains(err.Error(), "same classes") {
		t.Errorf("a guide with other classes: err = %v", err)
	}

	dir := filepath.Join(t.TempDir(), "p")
	if err := guidedPipeline(t, 2).Save(dir); err != nil {
		t.Fatal(err)
	}
	index := filepath.Join(dir, IndexFile)
	orig, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ from, to, want string }{
		{`"_autoguidance_scale": 2`, `"_autoguidance_scale": "strong"`, `_autoguidance_scale: want a number, 0 or more, found "strong"`},
		{`"_autoguidance_scale": 2`, `"_autoguidance_scale": -2`, `_autoguidance_scale: want a number, 0 or more, found -2`},
		{`"UNet2DModel"
  ],
  "scheduler"`, `"UNet2DConditionModel"
  ],
  "scheduler"`, `guide_unet class "UNet2DConditionModel" is not supported`},
	} {
		s := strings.Replace(string(orig), tc.from, tc.to, 1)
		if s == string(orig) {
			t.Fatalf("%q is not in model_index.json:\n%s", tc.from, orig)
		}
		if err := os.WriteFile(index, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), IndexFile) {
			t.Errorf("%s: err = %v, want it to name %s and mention %q", tc.to, err, IndexFile, tc.want)
		}
	}
}

// The jobs on images and DDIM inversion run the UNet alone: a pipeline
// with a guide gives the bits of the same pipeline without one.
func TestJobsAreNotAutoguided(t *testing.T) {
	guided, plain := guidedPipeline(t, 2), tinyClassPipeline(t)
	h, w := plain.ImageSize()
	x := testImages(plain, 2, 4)
	ctx := context.Background()
	jobs := map[string]func(p *Pipeline) ([]float32, error){
		"denoise": func(p *Pipeline) ([]float32, error) {
			y, err := p.DenoiseImages(ctx, x, DenoiseOptions{JobOptions: JobOptions{Steps: 4, Seed: 3}, Strength: 0.6})
			if err != nil {
				return nil, err
			}
			return y.Float32s(), nil
		},
		"inpaint": func(p *Pipeline) ([]float32, error) {
			y, err := p.Inpaint(ctx, x, InpaintOptions{JobOptions: JobOptions{Steps: 4, Seed: 3}, Mask: randomMask(h, w, 2)})
			if err != nil {
				return nil, err
			}
			return y.Float32s(), nil
		},
		"ddim inversion": func(p *Pipeline) ([]float32, error) {
			z, err := p.EncodeLatents(x)
			if err != nil {
				return nil, err
			}
			y, err := p.InvertDDIM(ctx, z, 4, nil)
			if err != nil {
				return nil, err
			}
			return y.Float32s(), nil
		},
	}
	for name, run := range jobs {
		want, err := run(plain)
		if err != nil {
			t.Fatal(err)
		}
		got, err := run(guided)
		if err != nil {
			t.Fatal(err)
		}
		if !bitsEqual(want, got) {
			t.Errorf("%s: the guide changed the result", name)
		}
	}
}
