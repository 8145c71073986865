package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/ldm-go/ldm/scheduler"
	"github.com/ldm-go/ldm/unet"
	"github.com/ldm-go/ldm/vae"
)

// IndexFile names the file that lists a pipeline's components.
const IndexFile = "model_index.json"

// GuideComponent names the optional component, and subfolder, of a weaker
// UNet that autoguides unconditional sampling; AutoGuidanceKey is the
// model_index.json key of its default weight. diffusers ignores keys that
// begin with an underscore, and loads guide_unet/ as any UNet2DModel.
const (
	GuideComponent  = "guide_unet"
	AutoGuidanceKey = "_autoguidance_scale"
)

// SchedulerConfigFile is the scheduler's config file name.
const SchedulerConfigFile = "scheduler_config.json"

// Pipeline is a loaded diffusion pipeline: a denoising UNet, a scheduler
// configuration, and for latent diffusion the autoencoder whose latent space
// the UNet works in (a KL VAE or a VQ model). Without an autoencoder the
// UNet works on pixels, as DDPMPipeline and DDIMPipeline do.
//
// A Pipeline is safe for concurrent use: generation never changes it.
type Pipeline struct {
	// Name identifies the model in image metadata (its folder, or "default").
	Name string
	// ClassName is model_index.json's _class_name ("" for the flat layout).
	ClassName string
	UNet      *unet.Model
	VAE       *vae.AutoencoderKL // nil unless the pipeline has a KL VAE
	VQ        *vae.VQModel       // nil unless the pipeline has a VQ model
	// Scheduler is the saved scheduler configuration: the default sampler
	// and the training noise schedule that other samplers inherit.
	Scheduler *scheduler.Config
	// GuideUNet, if set, is a weaker model of the same latents that
	// guides unconditional sampling (autoguidance, see Conditioning), with
	// weight AutoGuidance by default.
	GuideUNet    *unet.Model
	AutoGuidance float64
}

// component is one entry of model_index.json: [library, class].
type component struct {
	library, class string
}

func (c *component) UnmarshalJSON(b []byte) error {
	var pair []*string
	if err := json.Unmarshal(b, &pair); err != nil || len(pair) != 2 {
		return fmt.Errorf("want [library, class], found %s", b)
	}
	if pair[0] != nil {
		c.library = *pair[0]
	}
	if pair[1] != nil {
		c.class = *pair[1]
	}
	return nil
}

// Load reads a pipeline folder: either diffusers' layout (model_index.json
// naming unet, vae or vqvae, and scheduler, each in its own subfolder) or
// the flat layout of pixel-space checkpoints (config.json and weights at the
// root, with an optional scheduler_config.json beside them).
func Load(dir string) (*Pipeline, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("pipeline: %s is not a folder", dir)
	}
	p, err := LoadFS(os.DirFS(dir), ".", dir)
	if err != nil {
		return nil, err
	}
	p.Name = filepath.Base(filepath.Clean(dir))
	return p, nil
}

// LoadFS reads a pipeline folder from a file system (such as the embedded
// default model). label names the folder in error messages.
func LoadFS(fsys fs.FS, dir, label string) (*Pipeline, error) {
	p := &Pipeline{Name: label}
	b, err := fs.ReadFile(fsys, path.Join(dir, IndexFile))
	if errors.Is(err, fs.ErrNotExist) {
		return loadFlat(fsys, dir, label, p)
	}
	if err != nil {
		return nil, fmt.Errorf("pipeline: %s: %w", filepath.Join(label, IndexFile), err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("pipeline: %s: %v", filepath.Join(label, IndexFile), err)
	}
	comps := map[string]component{}
	for k, v := range raw {
		if k == "_class_name" {
			json.Unmarshal(v, &p.ClassName)
			continue
		}
		if k == AutoGuidanceKey {
			if err := json.Unmarshal(v, &p.AutoGuidance); err != nil || !ValidWeight(p.AutoGuidance) {
				return nil, fmt.Errorf("pipeline: %s: %s: want a number, 0 or more, found %s", filepath.Join(label, IndexFile), k, v)
			}
			continue
		}
		if len(k) > 0 && k[0] == '_' {
			continue
		}
		var c component
		if err := json.Unmarshal(v, &c); err != nil {
			return nil, fmt.Errorf("pipeline: %s: component %q: %v", filepath.Join(label, IndexFile), k, err)
		}
		comps[k] = c
	}
	sub := func(name string) (string, string) { return path.Join(dir, name), filepath.Join(label, name) }

	uc, ok := comps["unet"]
	if !ok || uc.class == "" {
		return nil, fmt.Errorf("pipeline: %s names no unet component", filepath.Join(label, IndexFile))
	}
	if uc.class != "UNet2DModel" {
		return nil, fmt.Errorf("pipeline: %s: unet class %q is not supported (supported: UNet2DModel)", filepath.Join(label, IndexFile), uc.class)
	}
	d, l := sub("unet")
	if p.UNet, err = unet.LoadFS(fsys, d, l); err != nil {
		return nil, err
	}
	if gc, ok := comps[GuideComponent]; ok && gc.class != "" {
		if gc.class != "UNet2DModel" {
			return nil, fmt.Errorf("pipeline: %s: %s class %q is not supported (supported: UNet2DModel)", filepath.Join(label, IndexFile), GuideComponent, gc.class)
		}
		d, l := sub(GuideComponent)
		if p.GuideUNet, err = unet.LoadFS(fsys, d, l); err != nil {
			return nil, err
		}
		if p.AutoGuidance == 0 {
			p.AutoGuidance = 1
		}
	}
	for _, key := range []string{"vae", "vqvae"} {
		c, ok := comps[key]
		if !ok || c.class == "" {
			continue
		}
		if p.VAE != nil || p.VQ != nil {
			return nil, fmt.Errorf("pipeline: %s names both vae and vqvae", filepath.Join(label, IndexFile))
		}
		d, l := sub(key)
		switch c.class {
		case vae.ClassKL:
			p.VAE, err = vae.LoadAutoencoderKLFS(fsys, d, l)
		case vae.ClassVQ:
			p.VQ, err = vae.LoadVQModelFS(fsys, d, l)
		default:
			return nil, fmt.Errorf("pipeline: %s: %s class %q is not supported (supported: AutoencoderKL, VQModel)", filepath.Join(label, IndexFile), key, c.class)
		}
		if err != nil {
			return nil, err
		}
	}
	sc, ok := comps["scheduler"]
	if !ok || sc.class == "" {
		return nil, fmt.Errorf("pipeline: %s names no scheduler component", filepath.Join(label, IndexFile))
	}
	d, l = sub("scheduler")
	if p.Scheduler, err = readSchedulerConfig(fsys, path.Join(d, SchedulerConfigFile), filepath.Join(l, SchedulerConfigFile)); err != nil {
		return nil, err
	}
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("pipeline: %s: %w", label, err)
	}
	p.Freeze()
	return p, nil
}

// Freeze marks the pipeline's weights as fixed for good, as Load does, so
// that the layers prepare them once (GEMM packing, Winograd transforms)
// instead of at every call. A pipeline assembled by hand calls it once its
// weights are set; its weights must not change afterwards.
func (p *Pipeline) Freeze() {
	p.UNet.Params.Freeze()
	if p.GuideUNet != nil {
		p.GuideUNet.Params.Freeze()
	}
	if p.VAE != nil {
		p.VAE.Params.Freeze()
	}
	if p.VQ != nil {
		p.VQ.Params.Freeze()
	}
}

func readSchedulerConfig(fsys fs.FS, name, label string) (*scheduler.Config, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("pipeline: %s: %w", label, err)
	}
	c, err := scheduler.ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %s: %w", label, err)
	}
	if !scheduler.Registered(c.ClassName) {
		return nil, fmt.Errorf("pipeline: %s: scheduler class %q is not supported", label, c.ClassName)
	}
	return c, nil
}

// loadFlat reads a UNet-only folder: config.json and the weights at the
// root, and scheduler_config.json beside them or a default DDPMScheduler.
func loadFlat(fsys fs.FS, dir, label string, p *Pipeline) (*Pipeline, error) {
	if _, err := fs.Stat(fsys, path.Join(dir, unet.ConfigFile)); err != nil {
		return nil, fmt.Errorf("pipeline: %s has neither %s nor %s", label, IndexFile, unet.ConfigFile)
	}
	var err error
	if p.UNet, err = unet.LoadFS(fsys, dir, label); err != nil {
		return nil, err
	}
	sp := path.Join(dir, SchedulerConfigFile)
	if _, err := fs.Stat(fsys, sp); err == nil {
		p.Scheduler, err = readSchedulerConfig(fsys, sp, filepath.Join(label, SchedulerConfigFile))
		if err != nil {
			return nil, err
		}
	} else if p.Scheduler, err = scheduler.DefaultConfig("DDPMScheduler"); err != nil {
		return nil, err
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	p.Freeze()
	return p, nil
}

// check verifies that the components fit together.
func (p *Pipeline) check() error {
	u := p.UNet.Config
	switch {
	case p.VAE != nil:
		if u.InChannels != p.VAE.Config.LatentChannels {
			return fmt.Errorf("unet in_channels = %d but the vae has latent_channels = %d", u.InChannels, p.VAE.Config.LatentChannels)
		}
	case p.VQ != nil:
		if u.InChannels != p.VQ.Config.EmbedDim() {
			return fmt.Errorf("unet in_channels = %d but the vqvae has vq_embed_dim = %d", u.InChannels, p.VQ.Config.EmbedDim())
		}
	}
	if u.OutChannels != u.InChannels && u.OutChannels != 2*u.InChannels {
		return fmt.Errorf("unet out_channels = %d does not fit in_channels = %d", u.OutChannels, u.InChannels)
	}
	if p.GuideUNet != nil {
		if err := checkGuide(u, p.GuideUNet.Config); err != nil {
			return err
		}
	}
	h, w := p.LatentSize()
	if h <= 0 || w <= 0 {
		return fmt.Errorf("cannot tell the sample size: set sample_size in the unet (or vae) config")
	}
	return nil
}

// SetGuide makes u the pipeline's guide for autoguidance, with default
// weight w (1: off), after checking that it predicts the same thing as
// the pipeline's UNet. u's weights must not change afterwards.
func (p *Pipeline) SetGuide(u *unet.Model, w float64) error {
	if !ValidWeight(w) {
		return fmt.Errorf("pipeline: autoguidance weight %v must be 0 or more", w)
	}
	if err := p.CheckGuide(u.Config); err != nil {
		return err
	}
	u.Params.Freeze()
	p.GuideUNet, p.AutoGuidance = u, w
	return nil
}

// CheckGuide reports whether a UNet with config c could guide the
// pipeline's UNet (see SetGuide).
func (p *Pipeline) CheckGuide(c *unet.Config) error {
	if err := checkGuide(p.UNet.Config, c); err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	return nil
}

// checkGuide verifies that a guide UNet predicts the same thing, of the
// same shape, for the same labels as the UNet it guides.
func checkGuide(u, g *unet.Config) error {
	switch {
	case g.InChannels != u.InChannels || g.OutChannels != u.OutChannels:
		return fmt.Errorf("%s in/out channels %d/%d differ from the unet's %d/%d", GuideComponent, g.InChannels, g.OutChannels, u.InChannels, u.OutChannels)
	case g.SampleSize != u.SampleSize:
		return fmt.Errorf("%s sample_size %v differs from the unet's %v", GuideComponent, g.SampleSize, u.SampleSize)
	case g.ClassConditional() != u.ClassConditional() || (u.NumClassEmbeds != nil && g.NumClassEmbeds != nil && *g.NumClassEmbeds != *u.NumClassEmbeds):
		return fmt.Errorf("%s is not conditioned on the same classes as the unet", GuideComponent)
	}
	return nil
}

// LatentSize is the height and width of the UNet's input: the UNet's
// sample_size, or the autoencoder's divided by its downsampling factor.
func (p *Pipeline) LatentSize() (int, int) {
	s := p.UNet.Config.SampleSize
	if s.H > 0 {
		return s.H, s.W
	}
	if c := p.autoencoderConfig(); c != nil && c.SampleSize > 0 {
		f := c.DownsampleFactor()
		return c.SampleSize / f, c.SampleSize / f
	}
	return 0, 0
}

// ImageSize is the height and width of the generated images.
func (p *Pipeline) ImageSize() (int, int) {
	h, w := p.LatentSize()
	if c := p.autoencoderConfig(); c != nil {
		f := c.DownsampleFactor()
		return h * f, w * f
	}
	return h, w
}

// ImageChannels is the number of channels of the generated images.
func (p *Pipeline) ImageChannels() int {
	if c := p.autoencoderConfig(); c != nil {
		return c.OutChannels
	}
	return p.UNet.Config.InChannels
}

func (p *Pipeline) autoencoderConfig() *vae.Config {
	switch {
	case p.VAE != nil:
		return p.VAE.Config
	case p.VQ != nil:
		return p.VQ.Config
	}
	return nil
}

// ScalingFactor is the autoencoder's scaling_factor (1 in pixel space).
func (p *Pipeline) ScalingFactor() float64 {
	if c := p.autoencoderConfig(); c != nil {
		return c.ScalingFactor
	}
	return 1
}

// ShiftFactor is the autoencoder's shift_factor (0 when null or in pixel space).
func (p *Pipeline) ShiftFactor() float64 {
	if c := p.autoencoderConfig(); c != nil {
		return c.Shift()
	}
	return 0
}
