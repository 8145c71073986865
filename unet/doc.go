// Package unet implements diffusers' UNet2DModel: the denoiser that
// predicts the noise (or v, or the clean sample) of a noisy latent at a
// timestep, optionally conditioned on a class label. It is built from a
// diffusers config.json and loads diffusion_pytorch_model.safetensors by
// diffusers' parameter names.
package unet
