// Package vae implements the autoencoders of latent diffusion, as diffusers
// defines them: AutoencoderKL (an encoder to a diagonal Gaussian posterior
// over latents, and a decoder) and VQModel (an encoder, nearest-codebook
// quantisation, and a decoder). Both are built from a diffusers config.json
// and load diffusion_pytorch_model.safetensors by diffusers' names.
package vae
