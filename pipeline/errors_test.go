package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"math"
	"strings"
	"testing"
	"testing/fstest"

	"gorgonia.org/tensor"

	"github.com/ldm-go/ldm/internal/imageio"
	"github.com/ldm-go/ldm/internal/safetensors"
	"github.com/ldm-go/ldm/scheduler"
	"github.com/ldm-go/ldm/unet"
	"github.com/ldm-go/ldm/vae"
)

// withSampleSize is p with its UNet's sample_size changed (the weights are
// shared): a pipeline that would make huge images, to test the memory
// limits without allocating a big model.
func withSampleSize(p *Pipeline, side int) *Pipeline {
	q := *p
	u := *p.UNet
	c := *u.Config
	c.SampleSize = unet.SampleSize{H: side, W: side}
	u.Config = &c
	q.UNet = &u
	return &q
}

// TestLibraryErrorsAreClear is the library side of the bad-input table:
// every call returns an error naming the problem, never panics, and
// refuses absurd sizes before allocating.
func TestLibraryErrorsAreClear(t *testing.T) {
	p := jobPipeline(t)
	big := withSampleSize(p, 1024) // 2048x2048 images
	ctx := context.Background()
	good := testImages(p, 1, 1)
	rgb := tensor.New(tensor.WithShape(1, 3, 16, 16), tensor.Of(tensor.Float32))
	small := tensor.New(tensor.WithShape(1, 1, 8, 8), tensor.Of(tensor.Float32))
	mask8 := tensor.New(tensor.WithShape(1, 1, 8, 8), tensor.Of(tensor.Float32))
	dir := tensor.New(tensor.WithShape(1, 4, 8, 8), tensor.Of(tensor.Float32))
	var png bytes.Buffer
	ihdr := "IHDR\x00\x01\x86\xa0\x00\x01\x86\xa0\x08\x00\x00\x00\x00" // 100000 x 100000, 8-bit grey
	png.WriteString("\x89PNG\r\n\x1a\n\x00\x00\x00\x0d" + ihdr)
	binary.Write(&png, binary.BigEndian, crc32.ChecksumIEEE([]byte(ihdr)))
	png.WriteString("\x00\x00\x00\x00IEND\xaeB`\x82")
	tests := []struct {
		name string
		err  func() error
		want string
	}{
		{"zero images is the default, negative refused", func() error { _, err := p.Generate(ctx, Options{N: -1}); return err }, "number of images -1 outside"},
		{"negative steps", func() error { _, err := p.Generate(ctx, Options{Steps: -1}); return err }, "steps -1 outside"},
		{"too many steps", func() error { _, err := p.Generate(ctx, Options{Steps: MaxSteps + 1}); return err }, "steps 10001 outside"},
		{"negative guidance", func() error { _, err := p.Generate(ctx, Options{GuidanceScale: -1}); return err }, "guidance scale -1 must be 0 or more"},
		{"NaN guidance", func() error { _, err := p.Generate(ctx, Options{GuidanceScale: math.NaN()}); return err }, "guidance scale NaN"},
		{"eta above 1", func() error { _, err := p.Generate(ctx, Options{Eta: 1.5}); return err }, "eta 1.5 outside [0, 1]"},
		{"unknown sampler", func() error { _, err := p.Generate(ctx, Options{Scheduler: "warp"}); return err }, `"warp"`},
		{"millions of images at once", func() error { _, err := p.Generate(ctx, Options{N: 5_000_000}); return err }, "outside [1, 1048576]"},
		{"huge batch", func() error { _, err := p.Generate(ctx, Options{N: 4, BatchSize: 100_000}); return err }, "batch size 100000 outside"},
		{"results beyond memory", func() error { _, err := big.Generate(ctx, Options{N: 100, BatchSize: 1}); return err }, "MaxResultValues"},
		{"batch beyond memory", func() error {
			return big.GenerateBatches(ctx, Options{N: 64, BatchSize: 64}, func(int, *tensor.Dense, *tensor.Dense) error { return nil })
		}, "MaxBatchValues"},
		{"strength above 1", func() error {
			_, err := p.DenoiseImages(ctx, good, DenoiseOptions{Strength: 1.5})
			return err
		}, "strength 1.5 outside [0, 1]"},
		{"strength below 0", func() error {
			_, err := p.DenoiseImages(ctx, good, DenoiseOptions{Strength: -0.1})
			return err
		}, "strength -0.1 outside [0, 1]"},
		{"wrong channel count", func() error {
			_, err := p.DenoiseImages(ctx, rgb, DenoiseOptions{Strength: 0.5})
			return err
		}, "images have shape [1, 3, 16, 16]; the model takes [N, 1, 16, 16]"},
		{"wrong image size", func() error {
			_, err := p.AnomalyScores(ctx, small, AnomalyOptions{})
			return err
		}, "images have shape [1, 1, 8, 8]"},
		{"mask of the wrong size", func() error {
			_, err := p.Inpaint(ctx, good, InpaintOptions{Mask: mask8})
			return err
		}, "mask"},
		{"no mask", func() error { _, err := p.Inpaint(ctx, good, InpaintOptions{}); return err }, "mask"},
		{"edit alpha not finite", func() error {
			_, err := p.Edit(ctx, good, EditOptions{Direction: dir, Alpha: math.Inf(1)})
			return err
		}, "edit alpha +Inf is not a finite number"},
		{"edit strength above 1", func() error {
			_, err := p.Edit(ctx, good, EditOptions{Direction: dir, Alpha: 1, Strength: 2})
			return err
		}, "strength 2 outside [0, 1]"},
		{"100k x 100k image", func() error {
			_, err := imageio.Decode(bytes.NewReader(png.Bytes()), "huge.png", imageio.LoadOptions{})
			return err
		}, "10000000000 pixels, over the limit"},
		{"weights claiming 100 GB", func() error {
			var b bytes.Buffer
			h := `{"a":{"dtype":"F32","shape":[25000000000],"data_offsets":[0,100000000000]}}`
			b.Write([]byte{byte(len(h)), 0, 0, 0, 0, 0, 0, 0})
			b.WriteString(h)
			_, err := safetensors.Parse(b.Bytes())
			return err
		}, "outside the 0 data bytes"},
		{"scheduler with zero timesteps", func() error {
			_, err := scheduler.ParseConfig([]byte(`{"_class_name":"DDIMScheduler","num_train_timesteps":0}`))
			return err
		}, "num_train_timesteps: expected at least 2, found 0"},
		{"scheduler with more steps than timesteps", func() error {
			c, _ := scheduler.ParseConfig([]byte(`{"_class_name":"DDIMScheduler","num_train_timesteps":10}`))
			s, err := scheduler.New(c)
			if err != nil {
				return err
			}
			return s.SetTimesteps(11)
		}, "11 is more than num_train_timesteps = 10"},
		{"vae with zero latent channels", func() error {
			_, err := vae.ParseConfig([]byte(`{"latent_channels":0}`), vae.ClassKL)
			return err
		}, "latent_channels = 0"},
		{"unet with groups not dividing channels", func() error {
			_, err := unet.ParseConfig([]byte(`{"block_out_channels":[30],"down_block_types":["DownBlock2D"],"up_block_types":["UpBlock2D"],"norm_num_groups":4}`))
			return err
		}, "norm_num_groups = 4 does not divide block_out_channels[0] = 30"},
		{"model_index naming no unet", func() error {
			_, err := LoadFS(fstest.MapFS{IndexFile: {Data: []byte(`{"scheduler":["diffusers","DDIMScheduler"]}`)}}, ".", "m")
			return err
		}, "names no unet component"},
		{"model_index component not a pair", func() error {
			_, err := LoadFS(fstest.MapFS{IndexFile: {Data: []byte(`{"unet":"UNet2DModel"}`)}}, ".", "m")
			return err
		}, `component "unet": want [library, class]`},
	}
	for _, tc := range tests {
		err := func() (err error) {
			defer func() {
				if v := recover(); v != nil {
					t.Errorf("%s: panicked: %v", tc.name, v)
				}
			}()
			return tc.err()
		}()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}
