package main

import (
	"bytes"
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ldm-go/ldm/internal/imageio"
	"github.com/ldm-go/ldm/internal/mnist"
)

// writeInputs makes a folder of grey PNGs for the tiny model (16x16), one
// smaller (padded), one larger (resized), one in a subfolder, and returns it.
func writeInputs(t *testing.T, bad bool) string {
	t.Helper()
	dir := t.TempDir()
	sizes := map[string]int{"a.png": 16, "b.png": 16, "c.png": 16, "d.png": 16, "small.png": 12, "big.png": 20, "sub/e.png": 16}
	k := 0
	for name, n := range sizes {
		k++
		img := image.NewGray(image.Rect(0, 0, n, n))
		for y := 0; y < n; y++ {
			for x := 0; x < n; x++ {
				img.SetGray(x, y, color.Gray{uint8(128 + 120*math.Sin(0.3*float64(x*k)+0.2*float64(y)))})
			}
		}
		os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755)
		if err := imageio.SavePNG(filepath.Join(dir, name), img, nil); err != nil {
			t.Fatal(err)
		}
	}
	if bad {
		os.WriteFile(filepath.Join(dir, "broken.png"), []byte("not a png"), 0o644)
	}
	return dir
}

// tree maps each file under dir (relative, slash-separated) to its bytes.
func tree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			m[filepath.ToSlash(rel)], _ = os.ReadFile(p)
		}
		return nil
	})
	return m
}

func keys(m map[string][]byte) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}

func sameTrees(t *testing.T, what string, a, b map[string][]byte) {
	t.Helper()
	if strings.Join(keys(a), " ") != strings.Join(keys(b), " ") {
		t.Fatalf("%s: files %v vs %v", what, keys(a), keys(b))
	}
	for n := range a {
		if !bytes.Equal(a[n], b[n]) {
			t.Errorf("%s: %s differs", what, n)
		}
	}
}

// Sharded runs with other worker counts give exactly the unsharded run's
// files, byte for byte; a bad file is reported and the rest processed.
func TestDenoiseFolderShardsWorkersAndFailures(t *testing.T) {
	in := writeInputs(t, true)
	base := []string{"denoise", "--model", tinyModel, "--steps", "4", "--strength", "0.6", "--seed", "3", "-q"}
	one := t.TempDir()
	code, _, stderr := ldm(t, append(base, "--workers", "1", "-o", one, in)...)
	if code != 1 || !strings.Contains(stderr, "broken.png") || !strings.Contains(stderr, "1 of 8 files failed") {
		t.Fatalf("exit %d, stderr %q: want exit 1 reporting broken.png", code, stderr)
	}
	ref := tree(t, one)
	if len(ref) != 7 {
		t.Fatalf("%d outputs, want 7: %v", len(ref), keys(ref))
	}
	sharded := t.TempDir()
	for i := 0; i < 3; i++ {
		ldm(t, append(base, "--workers", "3", "--shard", []string{"0/3", "1/3", "2/3"}[i], "-o", sharded, in)...)
	}
	sameTrees(t, "3 shards with 3 workers", ref, tree(t, sharded))
	// Outputs keep the input's size.
	for name, size := range map[string]int{"small.png": 12, "big.png": 20, "a.png": 16} {
		img, err := imageio.LoadImage(filepath.Join(one, name), 0)
		if err != nil {
			t.Fatal(err)
		}
		if b := img.Bounds(); b.Dx() != size || b.Dy() != size {
			t.Errorf("%s: output is %v, want %dx%d", name, b, size, size)
		}
	}
	// --skip-existing completes an interrupted run with the same bytes and
	// leaves existing files alone.
	os.Remove(filepath.Join(one, "b.png"))
	os.Remove(filepath.Join(one, "sub", "e.png"))
	os.WriteFile(filepath.Join(one, "c.png"), []byte("keep me"), 0o644)
	os.Remove(filepath.Join(in, "broken.png"))
	if code, _, stderr := ldm(t, append(base, "--skip-existing", "-o", one, in)...); code != 0 {
		t.Fatalf("--skip-existing: exit %d: %s", code, stderr)
	}
	got := tree(t, one)
	if string(got["c.png"]) != "keep me" {
		t.Error("--skip-existing overwrote an existing output")
	}
	got["c.png"] = ref["c.png"]
	sameTrees(t, "resumed run", ref, got)
}

func TestInpaintCommandKeepsKnownPixels(t *testing.T) {
	in := writeInputs(t, false)
	os.RemoveAll(filepath.Join(in, "big.png"))
	os.RemoveAll(filepath.Join(in, "small.png"))
	mask := image.NewGray(image.Rect(0, 0, 16, 16))
	for y := 4; y < 12; y++ {
		for x := 5; x < 11; x++ {
			mask.SetGray(x, y, color.Gray{255})
		}
	}
	mp := filepath.Join(t.TempDir(), "mask.png")
	imageio.SavePNG(mp, mask, nil)
	out := t.TempDir()
	code, _, stderr := ldm(t, "inpaint", "--model", tinyModel, "--steps", "4", "--jump", "2", "--resample", "1", "--feather", "1",
		"--candidates", "2", "--mask", mp, "-o", out, "-q", in)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, name := range []string{"a.png", "sub/e.png"} {
		src, dst := pixels(t, filepath.Join(in, name)), pixels(t, filepath.Join(out, name))
		changed := false
		for i := 0; i < len(src); i += 4 {
			x, y := (i/4)%16, (i/4)/16
			inside := mask.GrayAt(x, y).Y == 255
			if !inside && !bytes.Equal(src[i:i+4], dst[i:i+4]) {
				t.Fatalf("%s: pixel (%d, %d) outside the mask changed", name, x, y)
			}
			changed = changed || (inside && src[i] != dst[i])
		}
		if !changed {
			t.Errorf("%s: nothing inside the mask changed", name)
		}
	}
	// A mask of another size is refused, file by file.
	small := image.NewGray(image.Rect(0, 0, 8, 8))
	imageio.SavePNG(mp, small, nil)
	code, _, stderr = ldm(t, "inpaint", "--model", tinyModel, "--steps", "2", "--mask", mp, "-o", t.TempDir(), "-q", in)
	if code != 1 || !strings.Contains(stderr, "the mask is 8x8 but the image is 16x16") {
		t.Errorf("wrong-size mask: exit %d, stderr %q", code, stderr)
	}
}

func TestInterpolateCommand(t *testing.T) {
	in := writeInputs(t, false)
	dir := t.TempDir()
	strip, gif := filepath.Join(dir, "strip.png"), filepath.Join(dir, "anim.gif")
	for _, mode := range []string{"linear", "slerp"} {
		code, _, stderr := ldm(t, "interpolate", "--model", tinyModel, "--frames", "5", "--mode", mode, "--steps", "3",
			"-o", strip, "--gif", gif, "-q", filepath.Join(in, "a.png"), filepath.Join(in, "b.png"))
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", mode, code, stderr)
		}
		img, err := imageio.LoadImage(strip, 0)
		if err != nil {
			t.Fatal(err)
		}
		if b := img.Bounds(); b.Dx() != 5*16 || b.Dy() != 16 {
			t.Errorf("%s: strip is %v, want 80x16", mode, b)
		}
		if b, _ := os.ReadFile(gif); !bytes.HasPrefix(b, []byte("GIF89a")) {
			t.Errorf("%s: no GIF written", mode)
		}
	}
}

func TestDirectionEditAnomalyAUC(t *testing.T) {
	a, b := writeInputs(t, false), writeInputs(t, false)
	os.Remove(filepath.Join(b, "a.png"))
	dir := filepath.Join(t.TempDir(), "d.safetensors")
	if code, _, stderr := ldm(t, "direction", "--model", tinyModel, "--from", a, "--to", b, "-o", dir, "-q"); code != 0 {
		t.Fatalf("direction: exit %d: %s", code, stderr)
	}
	out := t.TempDir()
	if code, _, stderr := ldm(t, "edit", "--model", tinyModel, "--direction", dir, "--alpha", "0.5", "--strength", "0.3", "--steps", "4", "-o", out, "-q", a); code != 0 {
		t.Fatalf("edit: exit %d: %s", code, stderr)
	}
	if n := len(tree(t, out)); n != 7 {
		t.Errorf("edit wrote %d files, want 7", n)
	}
	// The SDEdit pass samples with the model's sampler, which the images
	// record; a move alone (--strength 0) samples nothing.
	moved := t.TempDir()
	if code, _, stderr := ldm(t, "edit", "--model", tinyModel, "--direction", dir, "--alpha", "0.5", "--strength", "0", "-o", moved, "-q", a); code != 0 {
		t.Fatalf("edit --strength 0: exit %d: %s", code, stderr)
	}
	for path, want := range map[string]string{filepath.Join(out, "a.png"): "ddim", filepath.Join(moved, "a.png"): ""} {
		meta, err := imageio.ReadMetadata(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := meta[metaScheduler]; got != want {
			t.Errorf("%s: metadata %s = %q, want %q", path, metaScheduler, got, want)
		}
	}
	csvA, csvB := filepath.Join(out, "a.csv"), filepath.Join(out, "b.csv")
	for _, c := range [][2]string{{a, csvA}, {b, csvB}} {
		if code, _, stderr := ldm(t, "anomaly", "--model", tinyModel, "--timesteps", "100,500", "-o", c[1], "-q", c[0]); code != 0 {
			t.Fatalf("anomaly: exit %d: %s", code, stderr)
		}
	}
	csv, _ := os.ReadFile(csvA)
	lines := strings.Split(strings.TrimSpace(string(csv)), "\n")
	if len(lines) != 8 || lines[0] != "file,recon_mse,neg_elbo,noise_error" || !strings.HasPrefix(lines[1], "a.png,") {
		t.Errorf("anomaly CSV:\n%s", csv)
	}
	code, stdout, stderr := ldm(t, "auc", "--inliers", csvA, "--outliers", csvA)
	if code != 0 || !strings.Contains(stdout, "recon_mse,0.5,7,7") {
		t.Errorf("auc of a set against itself: exit %d, %q %q", code, stdout, stderr)
	}
	// Directions between two MNIST digits, when the data is at hand.
	if _, err := mnist.Dir(); err != nil {
		t.Skipf("MNIST not available: %v", err)
	}
	if code, _, stderr := ldm(t, "direction", "--model", tinyModel, "--digits", "1,7", "--count", "8", "-o", dir, "-q"); code != 0 {
		t.Fatalf("direction --digits: exit %d: %s", code, stderr)
	}
}

// --class-min adds the best-fitting class's noise error, here with the
// embedded class-conditional default model.
func TestAnomalyClassMin(t *testing.T) {
	in := writeInputs(t, false)
	out := filepath.Join(t.TempDir(), "s.csv")
	if code, _, stderr := ldm(t, "anomaly", "--class-min", "--timesteps", "300", "-o", out, "-q", in); code != 0 {
		t.Fatalf("anomaly --class-min: exit %d: %s", code, stderr)
	}
	header, cols, err := readScores(out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(header, ",") != "recon_mse,neg_elbo,noise_error,class_noise_error" {
		t.Fatalf("header %v", header)
	}
	for i, v := range cols[3] {
		if !(v > 0) || math.IsInf(v, 0) {
			t.Errorf("row %d: class noise error %v", i+2, v)
		}
	}
}

func TestJobCommandLineErrors(t *testing.T) {
	in := writeInputs(t, false)
	out := t.TempDir()
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"denoise", "--model", tinyModel, "--strength", "2", "-o", out, in}, 2, "--strength must be in [0, 1]"},
		{[]string{"denoise", "--model", tinyModel, "--guidance", "-1", "-o", out, in}, 2, "--guidance must be 0 or more"},
		{[]string{"denoise", "--model", tinyModel, "--shard", "3/3", "-o", out, in}, 2, "--shard"},
		{[]string{"denoise", "--model", tinyModel, "--fit", "stretch", "-o", out, in}, 2, "--fit must be auto, pad or resize"},
		{[]string{"denoise", "--model", tinyModel, in}, 2, "-o OUTPUT_FOLDER is required"},
		{[]string{"denoise", "--model", tinyModel, "-o", out}, 2, "want one input"},
		{[]string{"denoise", "--model", tinyModel, "-o", out, filepath.Join(in, "none")}, 1, "none"},
		{[]string{"inpaint", "--model", tinyModel, "-o", out, in}, 2, "exactly one of --mask and --mask-dir"},
		{[]string{"inpaint", "--model", tinyModel, "--mask", "m.png", "--jump", "2", "-o", out, in}, 2, "--jump and --resample"},
		{[]string{"inpaint", "--model", tinyModel, "--mask", "m.png", "--candidates", "0", "-o", out, in}, 2, "--candidates must be at least 1, got 0"},
		{[]string{"inpaint", "--mask", "m.png", "--every-class", "--class", "3", "-o", out, in}, 2, "--every-class picks the class itself"},
		{[]string{"interpolate", "--model", tinyModel, "--frames", "1", "a", "b"}, 2, "--frames must be in [2,"},
		{[]string{"interpolate", "--model", tinyModel, "--mode", "cubic", "a", "b"}, 2, "--mode must be linear or slerp"},
		{[]string{"direction", "--model", tinyModel, "--from", in, "-o", "x"}, 2, "either --from and --to, or --digits"},
		{[]string{"direction", "--model", tinyModel, "--digits", "1,12", "-o", "x"}, 2, "--digits must be two digits"},
		{[]string{"edit", "--model", tinyModel, "-o", out, in}, 2, "--direction is required"},
		{[]string{"edit", "--model", tinyModel, "--direction", "d.safetensors", "--class", "8", "-o", out, in}, 2, "--class 8 guides the SDEdit pass"},
		{[]string{"anomaly", "--model", tinyModel, "--timesteps", "5000", "-o", filepath.Join(out, "s.csv"), in}, 1, "timestep 5000"},
		{[]string{"anomaly", "--model", tinyModel, "--class-min", "-o", filepath.Join(out, "s.csv"), in}, 1, "--class-min needs a class-conditional model"},
		{[]string{"auc", "--inliers", "a.csv"}, 2, "give --inliers and --outliers"},
	}
	for _, tc := range tests {
		code, _, stderr := ldm(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("ldm %s: exit %d, stderr %q; want exit %d mentioning %q", strings.Join(tc.args, " "), code, stderr, tc.code, tc.want)
		}
		if strings.Contains(stderr, "panic") {
			t.Errorf("ldm %s panicked: %s", strings.Join(tc.args, " "), stderr)
		}
	}
}
