package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/ldm-go/ldm/pipeline"
	"github.com/ldm-go/ldm/unet"
	"github.com/ldm-go/ldm/vae"
)

func init() {
	register(&command{name: "info", summary: "describe a pipeline: components, configs, parameters, shapes", run: runInfo})
}

func runInfo(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "info", "info [--model DIR | DIR]")
	model := fs.String("model", "", "diffusers pipeline folder (default: the embedded default model)")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 1:
		return usagef("want at most one model folder, got %d arguments", fs.NArg())
	case fs.NArg() == 1 && *model != "":
		return usagef("give the model as an argument or with --model, not both")
	case fs.NArg() == 1:
		*model = fs.Arg(0)
	}
	p, err := loadModel(*model)
	if err != nil {
		return err
	}
	printInfo(e.stdout, modelName(*model), p)
	return nil
}

func join(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}

func printInfo(w io.Writer, name string, p *pipeline.Pipeline) {
	kind := "pixel-space diffusion (no autoencoder)"
	switch {
	case p.VAE != nil:
		kind = "latent diffusion with a KL autoencoder"
	case p.VQ != nil:
		kind = "latent diffusion with a VQ autoencoder"
	}
	fmt.Fprintf(w, "model      %s\n", name)
	if p.ClassName != "" {
		fmt.Fprintf(w, "pipeline   %s: %s\n", p.ClassName, kind)
	} else {
		fmt.Fprintf(w, "pipeline   flat UNet folder: %s\n", kind)
	}
	h, wd := p.ImageSize()
	lh, lw := p.LatentSize()
	fmt.Fprintf(w, "image      %d x %d x %d (channels x height x width)\n", p.ImageChannels(), h, wd)
	fmt.Fprintf(w, "latent     %d x %d x %d\n", p.UNet.Config.InChannels, lh, lw)
	printUNet(w, "unet", p.UNet)
	if g := p.GuideUNet; g != nil {
		printUNet(w, pipeline.GuideComponent, g)
		fmt.Fprintf(w, "           guides samples without classifier-free guidance; autoguidance weight %g by default\n", p.AutoGuidance)
	}
	if p.VAE != nil {
		printVAE(w, "vae", p.VAE.Config, p.VAE.NumParams())
	}
	if p.VQ != nil {
		printVAE(w, "vqvae", p.VQ.Config, p.VQ.NumParams())
	}
	s := p.Scheduler
	fmt.Fprintf(w, "scheduler  %s (default sampler)\n", s.ClassName)
	fmt.Fprintf(w, "           %d training timesteps, beta_schedule %s [%g, %g], prediction_type %s, timestep_spacing %s\n",
		s.NumTrainTimesteps, s.BetaSchedule, s.BetaStart, s.BetaEnd, s.PredictionType, s.TimestepSpacing)
}

func printUNet(w io.Writer, name string, m *unet.Model) {
	c := m.Config
	fmt.Fprintf(w, "%-10s UNet2DModel, %s parameters\n", name, commas(m.NumParams()))
	fmt.Fprintf(w, "           block_out_channels [%s], layers_per_block %d, norm_num_groups %d\n", join(c.BlockOutChannels), c.LayersPerBlock, *c.NormNumGroups)
	fmt.Fprintf(w, "           down %s\n           up   %s\n", strings.Join(c.DownBlockTypes, ", "), strings.Join(c.UpBlockTypes, ", "))
	head := "one head per block"
	if c.AttentionHeadDim != nil {
		head = fmt.Sprintf("attention_head_dim %d", *c.AttentionHeadDim)
	}
	fmt.Fprintf(w, "           %s, time embedding %s, resnet_time_scale_shift %s\n", head, c.TimeEmbeddingType, c.ResnetTimeScaleShift)
	if c.NumClassEmbeds != nil {
		fmt.Fprintf(w, "           class-conditional: num_class_embeds %d (labels 0..%d, null class %d for guidance)\n", *c.NumClassEmbeds, *c.NumClassEmbeds-2, *c.NumClassEmbeds-1)
	}
}

func printVAE(w io.Writer, name string, c *vae.Config, params int) {
	fmt.Fprintf(w, "%-10s %s, %s parameters\n", name, c.ClassName, commas(params))
	fmt.Fprintf(w, "           block_out_channels [%s], layers_per_block %d, latent_channels %d, scaling_factor %g", join(c.BlockOutChannels), c.LayersPerBlock, c.LatentChannels, c.ScalingFactor)
	if c.ShiftFactor != nil {
		fmt.Fprintf(w, ", shift_factor %g", *c.ShiftFactor)
	}
	if c.ClassName == vae.ClassVQ {
		fmt.Fprintf(w, ", codebook %d x %d", c.NumVQEmbeddings, c.EmbedDim())
	}
	fmt.Fprintln(w)
}

func commas(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
