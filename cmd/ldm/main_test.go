package main

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-go/ldm/internal/imageio"
)

const tinyModel = "../../testdata/golden/ldm_ddim_e2e"

// ldm runs one command line in-process and returns its exit code and output.
func ldm(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), &env{stdout: &out, stderr: &errb}, args)
	return code, out.String(), errb.String()
}

func TestSampleGridWithMetadata(t *testing.T) {
	out := filepath.Join(t.TempDir(), "grid.png")
	code, _, stderr := ldm(t, "sample", "--model", tinyModel, "-n", "4", "--seed", "42", "--steps", "3", "--scheduler", "dpm++2m", "-o", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	// 2x2 grid of 16x16 images with 2-pixel padding.
	if b := img.Bounds(); b.Dx() < 32 || b.Dy() < 32 {
		t.Errorf("grid is %v", b)
	}
	meta, err := imageio.ReadMetadata(out)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{metaSeed: "42", metaScheduler: "dpm++2m", metaSteps: "3", metaCount: "4", metaIndex: "0", metaModel: tinyModel}
	for k, v := range want {
		if meta[k] != v {
			t.Errorf("metadata %s = %q, want %q", k, meta[k], v)
		}
	}
}

func pixels(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bb, a := img.At(x, y).RGBA()
			buf.Write([]byte{byte(r >> 8), byte(g >> 8), byte(bb >> 8), byte(a >> 8)})
		}
	}
	return buf.Bytes()
}

func TestSampleOutDirFromAndSkipExisting(t *testing.T) {
	dir := t.TempDir()
	args := []string{"sample", "--model", tinyModel, "-n", "5", "--seed", "7", "--steps", "3", "--scheduler", "euler_a", "--batch-size", "2", "--out-dir", dir, "-q"}
	if code, _, stderr := ldm(t, args...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.png"))
	if len(files) != 5 {
		t.Fatalf("%d files, want 5", len(files))
	}
	// Any image regenerates from its own metadata, bit for bit.
	again := filepath.Join(t.TempDir(), "again.png")
	if code, _, stderr := ldm(t, "sample", "--from", imageFile(dir, 3), "-o", again, "-q"); code != 0 {
		t.Fatalf("--from: exit %d: %s", code, stderr)
	}
	if !bytes.Equal(pixels(t, imageFile(dir, 3)), pixels(t, again)) {
		t.Error("--from did not reproduce image 3")
	}
	// --skip-existing makes only the missing images, identical to before.
	before := pixels(t, imageFile(dir, 1))
	os.Remove(imageFile(dir, 1))
	os.WriteFile(imageFile(dir, 4), []byte("keep me"), 0o644)
	code, _, stderr := ldm(t, append(args, "--skip-existing")...)
	if code != 0 {
		t.Fatalf("--skip-existing: exit %d: %s", code, stderr)
	}
	if !bytes.Equal(before, pixels(t, imageFile(dir, 1))) {
		t.Error("regenerated image 1 differs")
	}
	if b, _ := os.ReadFile(imageFile(dir, 4)); string(b) != "keep me" {
		t.Error("--skip-existing overwrote an existing file")
	}
}

func TestBadCommandLines(t *testing.T) {
	tmp := t.TempDir()
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"sample", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"sample", "--model", tinyModel, "--steps", "0"}, 2, "--steps must be at least 1"},
		{[]string{"sample", "--model", tinyModel, "-n", "0"}, 2, "-n must be at least 1"},
		{[]string{"sample", "--model", tinyModel, "--guidance", "-1"}, 2, "--guidance must be 0 or more"},
		{[]string{"sample", "--model", tinyModel, "--eta", "2"}, 2, "--eta must be in [0, 1]"},
		{[]string{"sample", "--model", tinyModel, "--scheduler", "nope", "-q"}, 1, `unknown sampler "nope"`},
		{[]string{"sample", "--model", tinyModel, "--class", "3", "-q"}, 1, "not class-conditional"},
		{[]string{"sample", "--model", filepath.Join(tmp, "missing"), "-q"}, 1, "missing"},
		{[]string{"sample", "--model", tinyModel, "-q", "-o", filepath.Join(tmp, "no", "dir", "x.png")}, 1, "no such file"},
		{[]string{"sample", "--from", filepath.Join(tmp, "none.png")}, 1, "none.png"},
		{[]string{"sample", "--skip-existing", "--model", tinyModel}, 2, "--skip-existing needs --out-dir"},
		{[]string{"info", "a", "b"}, 2, "at most one model folder"},
	}
	for _, tc := range tests {
		code, _, stderr := ldm(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("ldm %s: exit %d, stderr %q; want exit %d mentioning %q", strings.Join(tc.args, " "), code, stderr, tc.code, tc.want)
		}
		if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
			t.Errorf("ldm %s: panicked:\n%s", strings.Join(tc.args, " "), stderr)
		}
	}
}

func TestInfo(t *testing.T) {
	code, out, stderr := ldm(t, "info", tinyModel)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"UNet2DModel, 703,076 parameters", "AutoencoderKL, 167,381 parameters", "latent     4 x 8 x 8", "DDIMScheduler"} {
		if !strings.Contains(out, want) {
			t.Errorf("info output lacks %q:\n%s", want, out)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"sample", "-h"}, {"help", "info"}} {
		code, _, stderr := ldm(t, args...)
		if code != 0 || !strings.Contains(stderr, "Usage:") {
			t.Errorf("ldm %v: exit %d, stderr %q", args, code, stderr)
		}
	}
}

// With no --model, sample uses the embedded default pipeline.
func TestSampleDefaultModel(t *testing.T) {
	out := filepath.Join(t.TempDir(), "samples.png")
	code, _, stderr := ldm(t, "sample", "-n", "4", "--seed", "1", "--steps", "4", "-o", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if meta, err := imageio.ReadMetadata(out); err != nil || meta[metaModel] != "default" {
		t.Errorf("metadata %v, %v", meta, err)
	}
	if !strings.Contains(stderr, "wrote "+out) {
		t.Errorf("stderr does not say where the grid went: %q", stderr)
	}
}

// The metadata names the method that ran: the default model samples with
// sde-dpm++2m and autoguidance 1.5, and its jobs on images run the same
// solver without the noise, dpm++2m.
func TestMetadataNamesTheMethod(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := ldm(t, "sample", "-n", "1", "--steps", "2", "--seed", "1", "--out-dir", dir, "-q"); code != 0 {
		t.Fatalf("sample: exit %d: %s", code, stderr)
	}
	img := filepath.Join(dir, "sample-000000.png")
	outDir := filepath.Join(dir, "denoised")
	if code, _, stderr := ldm(t, "denoise", "--steps", "2", "--strength", "0.3", "--seed", "1", "-o", outDir, "-q", img); code != 0 {
		t.Fatalf("denoise: exit %d: %s", code, stderr)
	}
	out := filepath.Join(outDir, "sample-000000.png")
	for path, want := range map[string]map[string]string{
		img: {metaScheduler: "sde-dpm++2m", metaAuto: "1.5"},
		out: {metaScheduler: "dpm++2m"},
	} {
		meta, err := imageio.ReadMetadata(path)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range want {
			if meta[k] != v {
				t.Errorf("%s: metadata %s = %q, want %q", filepath.Base(path), k, meta[k], v)
			}
		}
	}
}
