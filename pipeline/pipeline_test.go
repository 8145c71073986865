package pipeline

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-go/ldm/nn"
	"github.com/ldm-go/ldm/scheduler"
	"github.com/ldm-go/ldm/unet"
	"github.com/ldm-go/ldm/vae"
)

const goldenPipeline = "../testdata/golden/ldm_ddim_e2e"

// tinyClassPipeline builds a small class-conditional latent pipeline with
// random weights: 2 classes plus the null class.
func tinyClassPipeline(t testing.TB) *Pipeline {
	t.Helper()
	uc, err := unet.ParseConfig([]byte(`{"in_channels":4,"out_channels":4,"sample_size":4,"block_out_channels":[16,16],
		"down_block_types":["DownBlock2D","AttnDownBlock2D"],"up_block_types":["AttnUpBlock2D","UpBlock2D"],
		"layers_per_block":1,"norm_num_groups":4,"attention_head_dim":8,"num_class_embeds":3}`))
	if err != nil {
		t.Fatal(err)
	}
	u, err := unet.New(uc)
	if err != nil {
		t.Fatal(err)
	}
	vc, err := vae.ParseConfig([]byte(`{"in_channels":1,"out_channels":1,"latent_channels":4,"block_out_channels":[8,8],
		"down_block_types":["DownEncoderBlock2D","DownEncoderBlock2D"],"up_block_types":["UpDecoderBlock2D","UpDecoderBlock2D"],
		"norm_num_groups":4,"sample_size":8,"scaling_factor":0.5}`), vae.ClassKL)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vae.NewAutoencoderKL(vc)
	if err != nil {
		t.Fatal(err)
	}
	r := nn.NewRNG(99, 0)
	for _, ps := range []*nn.Params{u.Params, v.Params} {
		for _, p := range ps.List() {
			for i := range p.Data {
				p.Data[i] = 0.1 * r.NormFloat32()
			}
		}
	}
	sc, err := scheduler.DefaultConfig("DDIMScheduler")
	if err != nil {
		t.Fatal(err)
	}
	return &Pipeline{Name: "tiny", UNet: u, VAE: v, Scheduler: sc}
}

func TestLoadDiffusersLayout(t *testing.T) {
	p, err := Load(goldenPipeline)
	if err != nil {
		t.Fatal(err)
	}
	if p.VAE == nil || p.UNet == nil || p.Scheduler.ClassName != "DDIMScheduler" {
		t.Fatalf("components not loaded: %+v", p)
	}
	if h, w := p.ImageSize(); h != 16 || w != 16 || p.ImageChannels() != 1 {
		t.Errorf("image size %dx%dx%d, want 1x16x16", p.ImageChannels(), h, w)
	}
}

func TestLoadFlatLayout(t *testing.T) {
	p, err := Load("../testdata/golden/unet_small")
	if err != nil {
		t.Fatal(err)
	}
	if p.VAE != nil || p.Scheduler.ClassName != "DDPMScheduler" {
		t.Fatalf("flat folder: vae %v, scheduler %s", p.VAE, p.Scheduler.ClassName)
	}
	res, err := p.Generate(context.Background(), Options{N: 2, Steps: 3, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if s := res.Images.Shape(); s[0] != 2 || s[1] != 4 || s[2] != 8 {
		t.Errorf("pixel-space images have shape %v", s)
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		rel, _ := filepath.Rel(src, path)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, _ := os.ReadFile(path)
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
}

func TestLoadRefusesBrokenFolders(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(dir string)
		want   string
	}{
		{"missing folder", func(dir string) { os.RemoveAll(dir) }, "no such file"},
		{"no unet weights", func(dir string) { os.Remove(filepath.Join(dir, "unet", unet.WeightsFile)) },
			filepath.Join("unet", unet.WeightsFile)},
		{"no scheduler config", func(dir string) { os.Remove(filepath.Join(dir, "scheduler", SchedulerConfigFile)) },
			filepath.Join("scheduler", SchedulerConfigFile)},
		{"bad index json", func(dir string) { os.WriteFile(filepath.Join(dir, IndexFile), []byte("{"), 0o644) }, IndexFile},
		{"no unet component", func(dir string) {
			os.WriteFile(filepath.Join(dir, IndexFile), []byte(`{"scheduler":["diffusers","DDIMScheduler"]}`), 0o644)
		}, "names no unet"},
		{"unknown vae class", func(dir string) {
			os.WriteFile(filepath.Join(dir, IndexFile), []byte(`{"unet":["diffusers","UNet2DModel"],"vae":["diffusers","AutoencoderTiny"],"scheduler":["diffusers","DDIMScheduler"]}`), 0o644)
		}, `"AutoencoderTiny" is not supported`},
		{"unknown scheduler class", func(dir string) {
			os.WriteFile(filepath.Join(dir, "scheduler", SchedulerConfigFile), []byte(`{"_class_name":"FancyScheduler"}`), 0o644)
		}, "FancyScheduler"},
		{"mismatched channels", func(dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, "vae", "config.json"))
			os.WriteFile(filepath.Join(dir, "vae", "config.json"), []byte(strings.Replace(string(b), `"latent_channels": 4`, `"latent_channels": 2`, 1)), 0o644)
		}, `"decoder.conv_in.weight" has shape [32 4 3 3], expected [32 2 3 3]`},
	}
	for _, tc := range tests {
		dir := filepath.Join(t.TempDir(), "model")
		copyDir(t, goldenPipeline, dir)
		tc.break_(dir)
		_, err := Load(dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}

func TestCheckRefusesMismatchedComponents(t *testing.T) {
	p := tinyClassPipeline(t)
	c := *p.VAE.Config
	c.LatentChannels = 3
	v, err := vae.NewAutoencoderKL(&c)
	if err != nil {
		t.Fatal(err)
	}
	p.VAE = v
	if err := p.check(); err == nil || !strings.Contains(err.Error(), "latent_channels = 3") {
		t.Errorf("err = %v", err)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	p := tinyClassPipeline(t)
	dir := t.TempDir()
	if err := p.Save(dir); err != nil {
		t.Fatal(err)
	}
	q, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{N: 2, Steps: 4, Seed: 5, ClassLabels: []int{1}, GuidanceScale: 3}
	a, err := p.Generate(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := q.Generate(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !bitsEqual(a.Images.Float32s(), b.Images.Float32s()) {
		t.Error("a saved and reloaded pipeline generates different images")
	}
}

func bitsEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// Generating 8 images in batches of 8, 3 or 1 gives the same bits, for
// deterministic and stochastic samplers, with and without guidance.
func TestBatchSizeInvariance(t *testing.T) {
	p := tinyClassPipeline(t)
	for _, base := range []Options{
		{Scheduler: "ddim"},
		{Scheduler: "euler_a", ClassLabels: []int{0, 1, 0, 1, 1, 0, 0, 1}, GuidanceScale: 2.5},
		{Scheduler: "ddpm", ClassLabels: []int{1}},
		{Scheduler: "dpm++2m"},
		{Scheduler: "sde-dpm++2m", ClassLabels: []int{1, 0, 1, 1, 0, 1, 0, 0}, GuidanceScale: 3},
		{Scheduler: "sde-dpm++2m"},
		{Scheduler: "ddim", Eta: 1},
	} {
		var ref []float32
		for _, bs := range []int{8, 3, 1} {
			o := base
			o.N, o.Seed, o.Steps, o.BatchSize = 8, 42, 6, bs
			res, err := p.Generate(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			got := res.Images.Float32s()
			if ref == nil {
				ref = got
				continue
			}
			if !bitsEqual(ref, got) {
				t.Errorf("%s: batch size %d gives other images than batch size 8", base.Scheduler, bs)
			}
		}
		// And image i alone, from FirstIndex, is image i of the request.
		o := base
		o.N, o.Seed, o.Steps, o.FirstIndex = 1, 42, 6, 5
		if len(o.ClassLabels) > 1 {
			o.ClassLabels = o.ClassLabels[5:6]
		}
		res, err := p.Generate(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		per := len(ref) / 8
		if !bitsEqual(ref[5*per:6*per], res.Images.Float32s()) {
			t.Errorf("%s: image 5 regenerated alone differs", base.Scheduler)
		}
	}
}

func TestGuidanceAndLabelsMatter(t *testing.T) {
	p := tinyClassPipeline(t)
	gen := func(o Options) []float32 {
		o.N, o.Seed, o.Steps = 2, 3, 5
		res, err := p.Generate(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		return res.Images.Float32s()
	}
	uncond := gen(Options{})
	c0 := gen(Options{ClassLabels: []int{0}})
	c1 := gen(Options{ClassLabels: []int{1}})
	g1 := gen(Options{ClassLabels: []int{1}, GuidanceScale: 4})
	if bitsEqual(uncond, c0) || bitsEqual(c0, c1) || bitsEqual(c1, g1) {
		t.Error("labels or guidance had no effect")
	}
	// Guidance 0 and 1 both mean the conditional prediction alone.
	if !bitsEqual(c1, gen(Options{ClassLabels: []int{1}, GuidanceScale: 1})) {
		t.Error("guidance 1 differs from no guidance")
	}
}

func TestGenerateRefusesBadOptions(t *testing.T) {
	p := tinyClassPipeline(t)
	tests := []struct {
		o    Options
		want string
	}{
		{Options{Steps: -1}, "steps"},
		{Options{N: -3}, "number of images"},
		{Options{N: MaxImages + 1}, "number of images"},
		{Options{BatchSize: 5000}, "batch size"},
		{Options{Scheduler: "fancy"}, `unknown sampler "fancy"`},
		{Options{ClassLabels: []int{7}}, "class label 7"},
		{Options{ClassLabels: []int{1}, GuidanceScale: -1}, "guidance scale"},
		{Options{GuidanceScale: 3}, "needs class labels"},
		{Options{N: 3, ClassLabels: []int{0, 1}}, "2 class labels for 3 images"},
		{Options{Eta: 0.5, Scheduler: "euler"}, "eta applies to DDIM only"},
		{Options{Eta: 2}, "eta"},
		{Options{Steps: 5000}, "inference steps"},
	}
	for _, tc := range tests {
		_, err := p.Generate(context.Background(), tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want it to mention %q", tc.o, err, tc.want)
		}
	}
}

func TestGenerateStopsOnCancel(t *testing.T) {
	p := tinyClassPipeline(t)
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	_, err := p.Generate(ctx, Options{N: 4, BatchSize: 1, Steps: 10, Progress: func(pr Progress) {
		calls++
		if calls == 3 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if calls != 3 {
		t.Errorf("%d steps ran after cancelling at step 3", calls-3)
	}
}
