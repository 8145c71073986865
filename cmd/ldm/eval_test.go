package main

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-go/ldm/internal/classifier"
	"github.com/ldm-go/ldm/nn"
	"github.com/ldm-go/ldm/pipeline"
	"github.com/ldm-go/ldm/scheduler"
	"github.com/ldm-go/ldm/unet"
	"github.com/ldm-go/ldm/vae"
)

// evalUNet is a small class-conditional UNet with random weights, of
// channels x side x side samples.
func evalUNet(t *testing.T, channels, side int) *unet.Model {
	t.Helper()
	uc, err := unet.ParseConfig([]byte(fmt.Sprintf(`{"in_channels":%d,"out_channels":%d,"sample_size":%d,"block_out_channels":[8,8],
		"down_block_types":["DownBlock2D","DownBlock2D"],"up_block_types":["UpBlock2D","UpBlock2D"],
		"layers_per_block":1,"norm_num_groups":4,"num_class_embeds":11}`, channels, channels, side)))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := unet.New(uc)
	nn.InitKaiming(u.Params, nn.NewRNG(1, 1))
	return u
}

// A pixel-space class-conditional UNet making 1x32x32 images and a random
// classifier: enough to check the report's plumbing end to end.
func evalFixtures(t *testing.T) (model, cls string) {
	t.Helper()
	dir := t.TempDir()
	sc, _ := scheduler.DefaultConfig("DDIMScheduler")
	p := &pipeline.Pipeline{UNet: evalUNet(t, 1, 32), Scheduler: sc}
	model = filepath.Join(dir, "model")
	if err := p.Save(model); err != nil {
		t.Fatal(err)
	}
	c, _ := classifier.New(classifier.DefaultConfig())
	nn.InitKaiming(c.Params, nn.NewRNG(2, 2))
	cls = filepath.Join(dir, "cls")
	if err := c.Save(cls); err != nil {
		t.Fatal(err)
	}
	return model, cls
}

func TestEvalReport(t *testing.T) {
	model, cls := evalFixtures(t)
	code, out, stderr := ldm(t, "eval", "--model", model, "--classifier", cls, "-n", "20", "--real", "30", "--test", "40", "--steps", "2", "--conditional", "--json", "-q")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r pipeline.EvalReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if r.Samples.N != 20 || r.Real.N != 30 || len(r.ClassAccuracy) != 10 || r.Steps != 2 || r.Guidance != 3 {
		t.Errorf("report: %+v", r)
	}
	if r.Scheduler != "ddim" {
		t.Errorf("report names the sampler %q, want its short name ddim", r.Scheduler)
	}
	if r.Reconstructions != nil {
		t.Errorf("a pixel-space model has no VAE, but the report has reconstruction figures %+v", r.Reconstructions)
	}
	for _, s := range []pipeline.SetStats{r.Samples, r.Real} {
		var sum float64
		for _, x := range s.Shares {
			sum += x
		}
		if math.Abs(sum-1) > 1e-9 || !(s.FrechetDistance >= -1e-6) || !(s.InceptionScore >= 1-1e-9) {
			t.Errorf("implausible figures: %+v", s)
		}
	}
	code, out, _ = ldm(t, "eval", "--model", model, "--classifier", cls, "-n", "10", "--real", "10", "--test", "10", "--steps", "1", "-q")
	if code != 0 || !strings.Contains(out, "ratio to real") || !strings.Contains(out, "samples %") {
		t.Errorf("table output: exit %d\n%s", code, out)
	}
}

func TestEvalRefuses(t *testing.T) {
	model, cls := evalFixtures(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"eval", "--model", model, "--classifier", cls, "-n", "1"}, "at least 2"},
		{[]string{"eval", "--model", tinyModel, "--classifier", cls, "-n", "4", "--real", "4", "--test", "4", "-q"}, "the model makes 1x16x16 images"},
		{[]string{"eval", "--model", model, "--classifier", filepath.Join(t.TempDir(), "x"), "-q"}, "config.json"},
	} {
		code, _, stderr := ldm(t, tc.args...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("ldm %v: exit %d, %q", tc.args, code, stderr)
		}
	}
}

// A latent model's report adds the real images' figures after a trip
// through its VAE; with random weights they are far from the real ones.
func TestEvalReportReconstructions(t *testing.T) {
	model, cls := evalFixtures(t)
	u := evalUNet(t, 4, 8)
	vc, err := vae.ParseConfig([]byte(`{"in_channels":1,"out_channels":1,"latent_channels":4,"block_out_channels":[8,8,8],
		"down_block_types":["DownEncoderBlock2D","DownEncoderBlock2D","DownEncoderBlock2D"],
		"up_block_types":["UpDecoderBlock2D","UpDecoderBlock2D","UpDecoderBlock2D"],"norm_num_groups":4,"sample_size":32}`), vae.ClassKL)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := vae.NewAutoencoderKL(vc)
	nn.InitKaiming(v.Params, nn.NewRNG(3, 3))
	sc, _ := scheduler.DefaultConfig("DDIMScheduler")
	model = filepath.Join(filepath.Dir(model), "latent")
	if err := (&pipeline.Pipeline{UNet: u, VAE: v, Scheduler: sc}).Save(model); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := ldm(t, "eval", "--model", model, "--classifier", cls, "-n", "10", "--real", "30", "--test", "40", "--steps", "1", "--json", "-q")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r pipeline.EvalReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	rc := r.Reconstructions
	if rc == nil || rc.N != 30 {
		t.Fatalf("reconstruction figures %+v, want them for the 30 real images", rc)
	}
	if rc.FrechetDistance == r.Real.FrechetDistance || !(rc.FrechetDistance >= 0) {
		t.Errorf("reconstructions' Frechet distance %v, real %v: a random VAE should change it", rc.FrechetDistance, r.Real.FrechetDistance)
	}
	code, out, _ = ldm(t, "eval", "--model", model, "--classifier", cls, "-n", "10", "--real", "10", "--test", "10", "--steps", "1", "-q")
	if code != 0 || !strings.Contains(out, "real through the VAE") || !strings.Contains(out, "the VAE alone") {
		t.Errorf("table output: exit %d\n%s", code, out)
	}
}
