package pipeline

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/ldm-go/ldm/internal/safetensors"
	"github.com/ldm-go/ldm/nn"
	"github.com/ldm-go/ldm/unet"
	"github.com/ldm-go/ldm/vae"
)

// fuzzWeights is the size under which the fuzz target gives a parsed config
// zero weights of the right shapes, so that loading goes past the weights
// and the target can sample from the result.
const fuzzWeights = 20_000

// zeroWeights encodes zero weights for ps (nil when there are too many).
func zeroWeights(ps *nn.Params) []byte {
	if ps.Count() > fuzzWeights {
		return nil
	}
	var buf bytes.Buffer
	if err := safetensors.Encode(&buf, ps.Tensors(), nil); err != nil {
		return nil
	}
	return buf.Bytes()
}

// fuzzFS lays out a pipeline folder from the four files; a config that
// parses and is small gets matching weights, one that does not gets the
// golden weights (which its loader must then refuse cleanly).
func fuzzFS(index, unetConfig, vaeConfig, schedConfig []byte, fallback map[string][]byte) fstest.MapFS {
	fsys := fstest.MapFS{}
	put := func(name string, b []byte) { fsys[name] = &fstest.MapFile{Data: b} }
	if len(index) > 0 {
		put(IndexFile, index)
		put("scheduler/"+SchedulerConfigFile, schedConfig)
	} else {
		put(SchedulerConfigFile, schedConfig)
	}
	unetDir := "unet/"
	if len(index) == 0 {
		unetDir = ""
	}
	put(unetDir+unet.ConfigFile, unetConfig)
	w := fallback["unet"]
	if c, err := unet.ParseConfig(unetConfig); err == nil && c.NumParams() <= fuzzWeights {
		if m, err := unet.New(c); err == nil {
			w = zeroWeights(m.Params)
		}
	}
	put(unetDir+unet.WeightsFile, w)
	for _, sub := range []string{"vae/", "vqvae/"} {
		put(sub+"config.json", vaeConfig)
		w := fallback["vae"]
		if c, err := vae.ParseConfig(vaeConfig, vae.ClassKL); err == nil && c.NumParams() <= fuzzWeights {
			var ps *nn.Params
			if c.ClassName == vae.ClassKL {
				if m, err := vae.NewAutoencoderKL(c); err == nil {
					ps = m.Params
				}
			} else if m, err := vae.NewVQModel(c); err == nil {
				ps = m.Params
			}
			if ps != nil {
				w = zeroWeights(ps)
			}
		}
		put(sub+"diffusion_pytorch_model.safetensors", w)
	}
	return fsys
}

// FuzzLoadFS feeds arbitrary model_index.json, unet and vae config.json and
// scheduler_config.json files to the pipeline loader (from an in-memory file
// system, in the diffusers layout, or the flat one when the index is
// empty). Loading must give an error naming the folder or a pipeline whose
// sizes are positive; a small loaded pipeline must then sample one image
// with one step, or refuse with an error, without panicking. The seed corpus
// is testdata/fuzz/FuzzLoadFS.
func FuzzLoadFS(f *testing.F) {
	read := func(name string) []byte {
		b, err := os.ReadFile(goldenPipeline + "/" + name)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	fallback := map[string][]byte{"unet": read("unet/" + unet.WeightsFile), "vae": read("vae/diffusion_pytorch_model.safetensors")}
	f.Add(read(IndexFile), read("unet/config.json"), read("vae/config.json"), read("scheduler/"+SchedulerConfigFile))
	f.Fuzz(func(t *testing.T, index, unetConfig, vaeConfig, schedConfig []byte) {
		p, err := LoadFS(fuzzFS(index, unetConfig, vaeConfig, schedConfig, fallback), ".", "fuzzmodel")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzzmodel") && !strings.Contains(err.Error(), "config") {
				t.Fatalf("error names neither the folder nor the config: %v", err)
			}
			return
		}
		h, w := p.LatentSize()
		ih, iw := p.ImageSize()
		if h <= 0 || w <= 0 || ih <= 0 || iw <= 0 || p.ImageChannels() <= 0 {
			t.Fatalf("loaded a pipeline with latent %dx%d, images %dx%dx%d", h, w, p.ImageChannels(), ih, iw)
		}
		if p.UNet.NumParams() > fuzzWeights || h*w > 256 || ih*iw > 4096 {
			return
		}
		res, err := p.Generate(context.Background(), Options{N: 1, Steps: 1, Seed: 1})
		if err != nil {
			return
		}
		if s := res.Images.Shape(); s[0] != 1 || s[1] != p.ImageChannels() || s[2] != ih || s[3] != iw {
			t.Fatalf("images have shape %v, want [1 %d %d %d]", s, p.ImageChannels(), ih, iw)
		}
	})
}
