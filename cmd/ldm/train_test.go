package main

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
