package pipeline

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ldm-go/ldm/internal/atomicfile"
	"github.com/ldm-go/ldm/internal/jsonconf"
)

// Save writes the pipeline in diffusers' folder layout: model_index.json,
// unet/, vae/ or vqvae/, scheduler/scheduler_config.json, and guide_unet/
// when the pipeline has a guide. The folder is
// written under a temporary name and renamed into place (replacing an
// earlier pipeline folder, or an empty one, there), so an interrupted save never leaves a mix of old
// and new files.
//
// diffusers has no pipeline class for a UNet2DModel with an AutoencoderKL,
// so such a folder names the generic "DiffusionPipeline" (as the golden
// cases do); a VQ pipeline is an LDMPipeline, a pixel one a DDPMPipeline.
func (p *Pipeline) Save(dir string) error {
	return atomicfile.WriteDir(dir, IndexFile, p.saveInto)
}

func (p *Pipeline) saveInto(dir string) error {
	index := map[string]any{
		"_diffusers_version": jsonconf.DiffusersVersion,
		"unet":               []string{"diffusers", "UNet2DModel"},
		"scheduler":          []string{"diffusers", p.Scheduler.ClassName},
	}
	switch {
	case p.VAE != nil:
		index["_class_name"] = "DiffusionPipeline"
		index["vae"] = []string{"diffusers", "AutoencoderKL"}
	case p.VQ != nil:
		index["_class_name"] = "LDMPipeline"
		index["vqvae"] = []string{"diffusers", "VQModel"}
	default:
		index["_class_name"] = "DDPMPipeline"
	}
	if p.GuideUNet != nil {
		index[GuideComponent] = []string{"diffusers", "UNet2DModel"}
		index[AutoGuidanceKey] = p.AutoGuidance
		if err := p.GuideUNet.Save(filepath.Join(dir, GuideComponent)); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "scheduler"), 0o755); err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	if err := p.UNet.Save(filepath.Join(dir, "unet")); err != nil {
		return err
	}
	switch {
	case p.VAE != nil:
		if err := p.VAE.Save(filepath.Join(dir, "vae")); err != nil {
			return err
		}
	case p.VQ != nil:
		if err := p.VQ.Save(filepath.Join(dir, "vqvae")); err != nil {
			return err
		}
	}
	if err := p.Scheduler.Save(filepath.Join(dir, "scheduler", SchedulerConfigFile)); err != nil {
		return err
	}
	b, err := json.MarshalIndent(index, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, IndexFile), append(b, '\n'))
}
