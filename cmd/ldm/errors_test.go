package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-go/ldm/internal/safetensors"
)

// brokenModel copies the tiny golden pipeline to a fresh folder and applies
// breakIt to it; it returns the folder.
func brokenModel(t *testing.T, breakIt func(dir string)) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "model")
	filepath.Walk(tinyModel, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(tinyModel, path)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		b, _ := os.ReadFile(path)
		return os.WriteFile(filepath.Join(dir, rel), b, 0o644)
	})
	breakIt(dir)
	return dir
}

const unetWeights = "unet/diffusion_pytorch_model.safetensors"

// editWeights rewrites the model's UNet weights through edit.
func editWeights(t *testing.T, dir string, edit func(ts map[string]*safetensors.Tensor) []*safetensors.Tensor) {
	t.Helper()
	f, err := safetensors.ReadFile(filepath.Join(dir, unetWeights))
	if err != nil {
		t.Fatal(err)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, unetWeights), edit(f.Tensors), nil); err != nil {
		t.Fatal(err)
	}
}

func all(ts map[string]*safetensors.Tensor) []*safetensors.Tensor {
	var out []*safetensors.Tensor
	for _, x := range ts {
		out = append(out, x)
	}
	return out
}

// rawWeights writes a safetensors file from a literal header and body.
func rawWeights(t *testing.T, path, header string, body []byte) {
	t.Helper()
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint64(len(header)))
	b.WriteString(header)
	b.Write(body)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// editJSON rewrites one key of a JSON file in the model.
func editJSON(t *testing.T, path, key string, value any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m[key] = value
	b, _ = json.Marshal(m)
	os.WriteFile(path, b, 0o644)
}

func writePNG(t *testing.T, path string, img image.Image) string {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// hugePNG is a valid PNG signature and header claiming w x h pixels, with
// no pixel data: the loader must refuse it from the header alone.
func hugePNG(t *testing.T, path string, w, h uint32) string {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr, w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 0
	chunk := func(typ string, data []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		b.WriteString(typ)
		b.Write(data)
		crc := crc32png(append([]byte(typ), data...))
		binary.Write(&b, binary.BigEndian, crc)
	}
	chunk("IHDR", ihdr)
	chunk("IEND", nil)
	os.WriteFile(path, b.Bytes(), 0o644)
	return path
}

// TestUserErrorsAreClear runs the real binary on bad inputs: each must exit
// non-zero with a message naming the problem, and never show a Go panic.
// docs/errors.md lists these errors.
func TestUserErrorsAreClear(t *testing.T) {
	tmp := t.TempDir()
	in := writeInputs(t, false)
	out := filepath.Join(tmp, "out")
	grey := writePNG(t, filepath.Join(tmp, "grey.png"), image.NewGray(image.Rect(0, 0, 16, 16)))
	mask8 := writePNG(t, filepath.Join(tmp, "mask8.png"), image.NewGray(image.Rect(0, 0, 8, 8)))
	huge := hugePNG(t, filepath.Join(tmp, "huge.png"), 100000, 100000)
	readOnly := filepath.Join(tmp, "ro")
	os.MkdirAll(readOnly, 0o555)
	notAFolder := filepath.Join(tmp, "file")
	os.WriteFile(notAFolder, []byte("x"), 0o644)
	data := filepath.Join(tmp, "data")
	writeTinyFolder(t, data, []string{"a", "b"}, 2)

	hugeVAE := filepath.Join(tmp, "huge-vae.json")
	b, _ := os.ReadFile(filepath.Join(tinyModel, "vae", "config.json"))
	os.WriteFile(hugeVAE, b, 0o644)
	editJSON(t, hugeVAE, "sample_size", 100000)

	weightsCase := func(edit func(dir string)) string { return brokenModel(t, edit) }
	info := func(model string) []string { return []string{"info", model} }

	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		// Weight files.
		{"truncated weights", info(weightsCase(func(d string) {
			p := filepath.Join(d, unetWeights)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
		})), 1, "outside the"},
		{"weights shorter than the header length", info(weightsCase(func(d string) {
			os.WriteFile(filepath.Join(d, unetWeights), []byte{1, 2, 3}, 0o644)
		})), 1, "shorter than the 8-byte header length"},
		{"header longer than the file", info(weightsCase(func(d string) {
			rawWeights(t, filepath.Join(d, unetWeights), `{}`, nil)
			b, _ := os.ReadFile(filepath.Join(d, unetWeights))
			binary.LittleEndian.PutUint64(b, 1<<20)
			os.WriteFile(filepath.Join(d, unetWeights), b, 0o644)
		})), 1, "truncated file?"},
		{"header over the size limit", info(weightsCase(func(d string) {
			b := make([]byte, 16)
			binary.LittleEndian.PutUint64(b, 1<<40)
			os.WriteFile(filepath.Join(d, unetWeights), b, 0o644)
		})), 1, "more than the limit"},
		{"oversized weights (trailing bytes)", info(weightsCase(func(d string) {
			p := filepath.Join(d, unetWeights)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, append(b, make([]byte, 64)...), 0o644)
		})), 1, "tensors cover"},
		{"offsets out of range", info(weightsCase(func(d string) {
			rawWeights(t, filepath.Join(d, unetWeights), `{"conv_in.bias":{"dtype":"F32","shape":[25000000000],"data_offsets":[0,100000000000]}}`, make([]byte, 8))
		})), 1, "outside the 8 data bytes"},
		{"overlapping offsets", info(weightsCase(func(d string) {
			rawWeights(t, filepath.Join(d, unetWeights), `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8))
		})), 1, "overlap"},
		{"header not JSON", info(weightsCase(func(d string) {
			rawWeights(t, filepath.Join(d, unetWeights), `{"a":`, nil)
		})), 1, "header is not a JSON object"},
		{"unknown dtype", info(weightsCase(func(d string) {
			rawWeights(t, filepath.Join(d, unetWeights), `{"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}`, make([]byte, 1))
		})), 1, `unknown dtype "F8_E4M3"`},
		{"integer dtype for a weight", info(weightsCase(func(d string) {
			editWeights(t, d, func(ts map[string]*safetensors.Tensor) []*safetensors.Tensor {
				b := ts["conv_in.bias"]
				ts["conv_in.bias"] = &safetensors.Tensor{Name: b.Name, DType: safetensors.I32, Shape: b.Shape, Data: b.Data}
				return all(ts)
			})
		})), 1, "not a floating-point type"},
		{"missing tensor", info(weightsCase(func(d string) {
			editWeights(t, d, func(ts map[string]*safetensors.Tensor) []*safetensors.Tensor {
				delete(ts, "conv_out.weight")
				return all(ts)
			})
		})), 1, `missing tensor "conv_out.weight"`},
		{"extra tensor", info(weightsCase(func(d string) {
			editWeights(t, d, func(ts map[string]*safetensors.Tensor) []*safetensors.Tensor {
				return append(all(ts), safetensors.F32Tensor("extra.weight", []int{2}, []float32{1, 2}))
			})
		})), 1, `unexpected tensor "extra.weight"`},
		{"wrong shape", info(weightsCase(func(d string) {
			editWeights(t, d, func(ts map[string]*safetensors.Tensor) []*safetensors.Tensor {
				ts["conv_in.bias"] = safetensors.F32Tensor("conv_in.bias", []int{3}, []float32{0, 0, 0})
				return all(ts)
			})
		})), 1, `tensor "conv_in.bias" has shape [3], expected [32]`},
		{"NaN weight", info(weightsCase(func(d string) {
			editWeights(t, d, func(ts map[string]*safetensors.Tensor) []*safetensors.Tensor {
				v, _ := ts["conv_in.bias"].Float32()
				v[5] = float32(math.NaN())
				ts["conv_in.bias"] = safetensors.F32Tensor("conv_in.bias", ts["conv_in.bias"].Shape, v)
				return all(ts)
			})
		})), 1, `tensor "conv_in.bias" holds NaN at element 5`},
		{"Inf weight", info(weightsCase(func(d string) {
			editWeights(t, d, func(ts map[string]*safetensors.Tensor) []*safetensors.Tensor {
				v, _ := ts["conv_out.bias"].Float32()
				v[0] = float32(math.Inf(-1))
				ts["conv_out.bias"] = safetensors.F32Tensor("conv_out.bias", ts["conv_out.bias"].Shape, v)
				return all(ts)
			})
		})), 1, `tensor "conv_out.bias" holds -Inf at element 0`},
		{"missing weights file", info(weightsCase(func(d string) { os.Remove(filepath.Join(d, unetWeights)) })), 1, "unet/diffusion_pytorch_model.safetensors: no such file or directory"},

		// Configs.
		{"config not JSON", info(weightsCase(func(d string) {
			os.WriteFile(filepath.Join(d, "unet", "config.json"), []byte(`{"in_channels": 4,`), 0o644)
		})), 1, "unet config"},
		{"model_index not JSON", info(weightsCase(func(d string) {
			os.WriteFile(filepath.Join(d, "model_index.json"), []byte(`[`), 0o644)
		})), 1, "model_index.json"},
		{"zero channels", info(weightsCase(func(d string) { editJSON(t, filepath.Join(d, "unet", "config.json"), "in_channels", 0) })), 1, "in_channels = 0"},
		{"zero block channels", info(weightsCase(func(d string) {
			editJSON(t, filepath.Join(d, "vae", "config.json"), "block_out_channels", []int{0})
			editJSON(t, filepath.Join(d, "vae", "config.json"), "down_block_types", []string{"DownEncoderBlock2D"})
			editJSON(t, filepath.Join(d, "vae", "config.json"), "up_block_types", []string{"UpDecoderBlock2D"})
		})), 1, "block_out_channels[0] = 0"},
		{"groups not dividing channels", info(weightsCase(func(d string) { editJSON(t, filepath.Join(d, "unet", "config.json"), "norm_num_groups", 7) })), 1, "norm_num_groups = 7 does not divide"},
		{"absurd channel count", info(weightsCase(func(d string) {
			editJSON(t, filepath.Join(d, "unet", "config.json"), "block_out_channels", []int{100000000, 64})
		})), 1, "block_out_channels[0] = 100000000 is over the limit of 65536"},
		{"absurd parameter count", info(weightsCase(func(d string) {
			editJSON(t, filepath.Join(d, "unet", "config.json"), "block_out_channels", []int{32768, 65536})
			editJSON(t, filepath.Join(d, "unet", "config.json"), "norm_num_groups", 32)
		})), 1, "over the limit of 2000000000 (MaxParams)"},
		{"absurd sample size", info(weightsCase(func(d string) { editJSON(t, filepath.Join(d, "unet", "config.json"), "sample_size", 1e9) })), 1, "sample_size: expected an integer in [0, 16384]"},
		{"unknown block type", info(weightsCase(func(d string) {
			editJSON(t, filepath.Join(d, "unet", "config.json"), "down_block_types", []string{"DownBlock2D", "CrossAttnDownBlock2D"})
		})), 1, "down_block_types[1] = CrossAttnDownBlock2D is not supported"},
		{"unknown scheduler class", info(weightsCase(func(d string) {
			editJSON(t, filepath.Join(d, "scheduler", "scheduler_config.json"), "_class_name", "FancyScheduler")
		})), 1, `"FancyScheduler" is not a supported scheduler class`},
		{"negative steps_offset", info(weightsCase(func(d string) {
			editJSON(t, filepath.Join(d, "scheduler", "scheduler_config.json"), "steps_offset", -1)
		})), 1, "steps_offset"},
		{"absurd num_train_timesteps", info(weightsCase(func(d string) {
			editJSON(t, filepath.Join(d, "scheduler", "scheduler_config.json"), "num_train_timesteps", 1e9)
		})), 1, "num_train_timesteps: 1000000000 is over the limit"},
		{"beta outside [0, 1]", info(weightsCase(func(d string) {
			editJSON(t, filepath.Join(d, "scheduler", "scheduler_config.json"), "beta_end", 2)
		})), 1, "beta_start, beta_end: expected values in [0, 1]"},
		{"mismatched latent channels", info(weightsCase(func(d string) { editJSON(t, filepath.Join(d, "vae", "config.json"), "latent_channels", 2) })), 1, "expected [32 2 3 3]"},
		{"model folder is a file", info(notAFolder), 1, "is not a folder"},

		// Arguments.
		{"unknown sampler", []string{"sample", "--model", tinyModel, "--scheduler", "warp", "-q", "-o", filepath.Join(tmp, "s.png")}, 1, `unknown sampler "warp"`},
		{"zero steps", []string{"sample", "--model", tinyModel, "--steps", "0"}, 2, "--steps must be at least 1"},
		{"negative steps", []string{"denoise", "--model", tinyModel, "--steps", "-3", "-o", out, in}, 2, "--steps"},
		{"negative guidance", []string{"sample", "--model", tinyModel, "--guidance", "-0.5"}, 2, "--guidance must be 0 or more"},
		{"strength above 1", []string{"denoise", "--model", tinyModel, "--strength", "1.5", "-o", out, in}, 2, "--strength must be in [0, 1]"},
		{"strength below 0", []string{"denoise", "--model", tinyModel, "--strength", "-0.1", "-o", out, in}, 2, "--strength must be in [0, 1]"},
		{"edit strength above 1", []string{"edit", "--model", tinyModel, "--direction", "d.safetensors", "--strength", "2", "-o", out, in}, 2, "--strength"},
		{"eta above 1", []string{"sample", "--model", tinyModel, "--eta", "1.5"}, 2, "--eta must be in [0, 1]"},
		{"millions of images in one grid", []string{"sample", "--model", tinyModel, "-n", "5000000", "-q", "-o", filepath.Join(tmp, "g.png")}, 1, "outside [1, 1048576]"},
		{"negative batch", []string{"sample", "--model", tinyModel, "--batch-size", "-1"}, 2, "--batch-size must be 0 (the model's default) or more, got -1"},
		{"huge batch", []string{"sample", "--model", tinyModel, "-n", "3000", "--batch-size", "3000", "-q", "-o", filepath.Join(tmp, "g.png")}, 1, "batch size 3000 outside [1, 1024]"},
		{"huge eval", []string{"eval", "--model", tinyModel, "-n", "1000000000", "-q"}, 2, "-n must be at most 262144"},
		{"huge training batch", []string{"train", "vae", "--data", data, "--size", "8", "--preset", "tiny", "--steps", "1", "--batch-size", "10000000", "-q", "--out", filepath.Join(tmp, "t")}, 1, "batch size 10000000 outside [1, 4096]"},
		{"huge training images", []string{"train", "vae", "--data", data, "--config", hugeVAE, "--steps", "1", "-q", "--out", filepath.Join(tmp, "t")}, 1, "sample_size = 100000 is not supported (want 0 to 65536"},
		{"100k x 100k image", []string{"denoise", "--model", tinyModel, "-q", "-o", out, huge}, 1, "over the limit of"},
		{"not an image", []string{"denoise", "--model", tinyModel, "-q", "-o", out, notAFolder}, 1, "file"},
		{"mask of the wrong size", []string{"inpaint", "--model", tinyModel, "--mask", mask8, "-q", "-o", out, grey}, 1, "mask"},
		{"missing mask", []string{"inpaint", "--model", tinyModel, "--mask", filepath.Join(tmp, "nomask.png"), "-q", "-o", out, grey}, 1, "nomask.png"},
		{"unwritable output", []string{"sample", "--model", tinyModel, "-n", "1", "--steps", "1", "-q", "-o", filepath.Join(readOnly, "x.png")}, 1, "permission denied"},
		{"output folder is a file", []string{"sample", "--model", tinyModel, "-n", "1", "--steps", "1", "-q", "--out-dir", notAFolder}, 1, "not a directory"},
		{"output in a missing folder", []string{"sample", "--model", tinyModel, "-n", "1", "--steps", "1", "-q", "-o", filepath.Join(tmp, "no", "x.png")}, 1, "no such file or directory"},
		{"class for an unconditional model", []string{"sample", "--model", tinyModel, "--class", "2", "-q"}, 1, "not class-conditional"},
		{"unknown command", []string{"paint"}, 2, `unknown command "paint"`},
	}
	if os.Geteuid() == 0 {
		// root writes anywhere: the read-only folder proves nothing.
		for i := range tests {
			if tests[i].name == "unwritable output" {
				tests = append(tests[:i], tests[i+1:]...)
				break
			}
		}
	}
	if len(tests) < 40 {
		t.Fatalf("only %d cases", len(tests))
	}
	for _, tc := range tests {
		code, _, stderr := ldmExec(t, tc.args...)
		if code == 0 || code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: ldm %s: exit %d, stderr %q; want exit %d mentioning %q", tc.name, strings.Join(tc.args, " "), code, stderr, tc.code, tc.want)
		}
		if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "internal error") {
			t.Errorf("%s: ldm %s panicked:\n%s", tc.name, strings.Join(tc.args, " "), stderr)
		}
	}
}

func crc32png(b []byte) uint32 { return crc32.ChecksumIEEE(b) }

// The last resort: a panic on a command's goroutine (a bug, never user
// input) ends the command with a one-line internal error and exit code 1,
// not a Go trace.
func TestPanicBecomesInternalError(t *testing.T) {
	register(&command{name: "test-panic", run: func(context.Context, *env, []string) error { panic("boom") }})
	defer delete(commands, "test-panic")
	code, _, stderr := ldm(t, "test-panic")
	if code != 1 || !strings.Contains(stderr, "internal error") || !strings.Contains(stderr, "boom") || strings.Contains(stderr, "goroutine") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}
