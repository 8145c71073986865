package main

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ldm-go/ldm/internal/presets"
	"github.com/ldm-go/ldm/pipeline"
)

// writeTinyFolder writes n 8x8 grey PNGs in each of the class subfolders.
func writeTinyFolder(t *testing.T, dir string, classes []string, n int) {
	t.Helper()
	for ci, c := range classes {
		os.MkdirAll(filepath.Join(dir, c), 0o755)
		for i := 0; i < n; i++ {
			img := image.NewGray(image.Rect(0, 0, 8, 8))
			for p := range img.Pix {
				img.Pix[p] = uint8((p*37 + i*11 + ci*80) % 256)
			}
			img.SetGray(i%8, ci, color.Gray{255})
			var buf bytes.Buffer
			png.Encode(&buf, img)
			os.WriteFile(filepath.Join(dir, c, string(rune('a'+i))+".png"), buf.Bytes(), 0o644)
		}
	}
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	x, err1 := os.ReadFile(a)
	y, err2 := os.ReadFile(b)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return bytes.Equal(x, y)
}

// Train a tiny VAE, then a tiny class-conditional UNet on its latents; the
// result is a pipeline that samples; a run resumed from a checkpoint ends
// with the same weights, byte for byte.
func TestTrainVAEThenUNet(t *testing.T) {
	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	writeTinyFolder(t, data, []string{"cats", "dogs", "owls"}, 4)
	vaeOut := filepath.Join(tmp, "vae")
	code, _, stderr := ldm(t, "train", "vae", "--data", data, "--size", "8", "--labels", "--preset", "tiny", "--steps", "4",
		"--batch-size", "4", "--out", vaeOut, "--eval-every", "2", "--eval-images", "4", "--checkpoint-every", "2", "-q")
	if code != 0 {
		t.Fatalf("train vae: exit %d: %s", code, stderr)
	}
	unetArgs := []string{"train", "unet", "--data", data, "--size", "8", "--labels", "--vae", vaeOut, "--preset", "tiny",
		"--steps", "6", "--batch-size", "4", "--accum", "2", "--min-snr-gamma", "5", "--checkpoint-every", "3", "--sample-every", "6", "--sample-steps", "2", "-q"}
	full := filepath.Join(tmp, "full")
	if code, _, stderr := ldm(t, append(unetArgs, "--out", full)...); code != 0 {
		t.Fatalf("train unet: exit %d: %s", code, stderr)
	}
	p, err := pipeline.Load(full)
	if err != nil {
		t.Fatal(err)
	}
	if p.NullClass() != 3 {
		t.Errorf("null class %d, want 3 (three folders)", p.NullClass())
	}
	if _, err := os.Stat(filepath.Join(full+".checkpoints", "samples-00000006.png")); err != nil {
		t.Errorf("no sample grid: %v", err)
	}
	// Stop after 3 steps (the checkpoint), then resume to 6.
	part := filepath.Join(tmp, "part")
	args := append(unetArgs, "--out", part)
	for i, a := range args {
		if a == "--steps" {
			args[i+1] = "3"
		}
	}
	if code, _, stderr := ldm(t, args...); code != 0 {
		t.Fatalf("partial run: exit %d: %s", code, stderr)
	}
	if code, _, stderr := ldm(t, append(unetArgs, "--out", part, "--resume")...); code != 0 {
		t.Fatalf("resumed run: exit %d: %s", code, stderr)
	}
	if !sameFile(t, filepath.Join(full, "unet", "diffusion_pytorch_model.safetensors"), filepath.Join(part, "unet", "diffusion_pytorch_model.safetensors")) {
		t.Error("resumed training ended with other weights")
	}
	trainGuide(t, data, vaeOut, p)
}

// trainGuide trains a guide for the pipeline p (trained on data with the
// VAE vaeOut) and checks that it learned the pipeline's own latents and
// schedule: its weights are those of a plain run given them explicitly.
// The pipeline it writes keeps the UNet and VAE, and samples with the
// guide's default weight unless told otherwise.
func trainGuide(t *testing.T, data, vaeOut string, p *pipeline.Pipeline) {
	tmp := t.TempDir()
	// A scaling factor and a prediction type that the defaults would not
	// give, so that only a guide that takes them from the pipeline matches.
	p.VAE.Config.ScalingFactor = 0.77
	p.Scheduler.PredictionType = "v_prediction"
	full := filepath.Join(tmp, "full")
	if err := p.Save(full); err != nil {
		t.Fatal(err)
	}
	common := []string{"train", "unet", "--data", data, "--size", "8", "--labels", "--preset", "tiny", "--steps", "3",
		"--batch-size", "4", "--seed", "3", "--sample-every", "0", "-q"}
	guided := filepath.Join(tmp, "guided")
	args := append(common, "--guide-for", full, "--out", guided, "--autoguidance", "1.5")
	if code, _, stderr := ldm(t, args...); code != 0 {
		t.Fatalf("train unet --guide-for: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(guided + ".guide.checkpoints"); err != nil {
		t.Errorf("the guide's checkpoints: %v", err)
	}
	sf := strconv.FormatFloat(p.ScalingFactor(), 'g', -1, 64)
	plain := filepath.Join(tmp, "plain")
	if code, _, stderr := ldm(t, append(common, "--vae", vaeOut, "--scaling-factor", sf, "--prediction-type", "v_prediction", "--out", plain)...); code != 0 {
		t.Fatalf("plain run: exit %d: %s", code, stderr)
	}
	weights := "diffusion_pytorch_model.safetensors"
	if !sameFile(t, filepath.Join(guided, pipeline.GuideComponent, weights), filepath.Join(plain, "unet", weights)) {
		t.Error("the guide's weights differ from a plain run on the pipeline's latents and schedule")
	}
	for _, c := range []string{"unet", "vae"} {
		if !sameFile(t, filepath.Join(guided, c, weights), filepath.Join(full, c, weights)) {
			t.Errorf("%s/ changed", c)
		}
	}
	g, err := pipeline.Load(guided)
	if err != nil {
		t.Fatal(err)
	}
	if g.GuideUNet == nil || g.AutoGuidance != 1.5 {
		t.Fatalf("guide loaded %v, weight %v; want a guide with weight 1.5", g.GuideUNet != nil, g.AutoGuidance)
	}
	sample := func(model string, extra ...string) string {
		out := filepath.Join(tmp, strings.Join(append([]string{filepath.Base(model)}, extra...), "")+".png")
		args := append([]string{"sample", "--model", model, "-n", "4", "--steps", "3", "--seed", "5", "-o", out, "-q"}, extra...)
		if code, _, stderr := ldm(t, args...); code != 0 {
			t.Fatalf("ldm %s: exit %d: %s", strings.Join(args, " "), code, stderr)
		}
		return out
	}
	unguided, def, off, explicit := sample(full), sample(guided), sample(guided, "--autoguidance", "1"), sample(guided, "--autoguidance", "1.5")
	if !samePixels(t, unguided, off) {
		t.Error("--autoguidance 1 does not give the unguided samples")
	}
	if samePixels(t, unguided, def) || !samePixels(t, def, explicit) {
		t.Error("the default is not the saved weight 1.5")
	}
	again := filepath.Join(tmp, "again.png")
	if code, _, stderr := ldm(t, "sample", "--from", def, "-o", again, "-q"); code != 0 || !samePixels(t, def, again) {
		t.Errorf("sample --from an autoguided grid: exit %d (%s), or other pixels", code, stderr)
	}

	wide := filepath.Join(tmp, "wide.json")
	cfg := strings.Replace(presets.UNet["tiny"], `"in_channels":2,"out_channels":2`, `"in_channels":3,"out_channels":3`, 1)
	if err := os.WriteFile(wide, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	args = nil
	for i := 0; i < len(common); i++ {
		if common[i] == "--preset" {
			i++ // --config instead
			continue
		}
		args = append(args, common[i])
	}
	args = append(args, "--guide-for", full, "--out", filepath.Join(tmp, "wide"), "--config", wide)
	if code, _, stderr := ldm(t, args...); code != 1 || !strings.Contains(stderr, "guide_unet in/out channels 3/3 differ from the unet's 2/2") {
		t.Errorf("a guide of other channels: exit %d, %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(tmp, "wide.guide.checkpoints")); err == nil {
		t.Error("a guide that cannot guide the pipeline was trained")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--vae", vaeOut}, "--vae cannot be set with --guide-for"},
		{[]string{"--prediction-type", "epsilon", "--sampler", "ddim"}, "--prediction-type, --sampler cannot be set with --guide-for"},
		{[]string{"--autoguidance", "-1"}, "--autoguidance must be 0 or more"},
	} {
		args := append(append(common, "--guide-for", full, "--out", filepath.Join(tmp, "bad")), tc.args...)
		if code, _, stderr := ldm(t, args...); code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, %q; want 2 mentioning %q", tc.args, code, stderr, tc.want)
		}
	}
}

func TestTrainRefusesBadFlags(t *testing.T) {
	tmp := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"train"}, 2, "what to train"},
		{[]string{"train", "gan"}, 2, `unknown model to train "gan"`},
		{[]string{"train", "vae", "--steps", "3"}, 2, "--out is required"},
		{[]string{"train", "vae", "--out", tmp, "--preset", "huge"}, 2, `unknown --preset "huge"`},
		{[]string{"train", "vae", "--out", tmp, "--batch-size", "0"}, 2, "--batch-size"},
		{[]string{"train", "vae", "--out", tmp, "--steps", "10", "100", "--lr", "1"}, 2, `unexpected argument "100"`},
		{[]string{"train", "unet", "--out", tmp, "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"train", "classifier", "--out", tmp, "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"train", "vae", "--out", tmp, "--data", filepath.Join(tmp, "nothing")}, 1, "neither mnist"},
		{[]string{"train", "unet", "--out", tmp, "--vae", filepath.Join(tmp, "novae")}, 1, "novae"},
		{[]string{"train", "vae", "--out", tmp, "--lr", "-1", "--data", "mnist-test", "--steps", "1"}, 1, "learning_rate"},
	} {
		code, _, stderr := ldm(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("ldm %s: exit %d, %q; want %d mentioning %q", strings.Join(tc.args, " "), code, stderr, tc.code, tc.want)
		}
	}
}

func samePixels(t *testing.T, a, b string) bool {
	t.Helper()
	return bytes.Equal(pixels(t, a), pixels(t, b))
}
