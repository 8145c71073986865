// Package diffusion trains the denoiser: the objective of diffusion models
// (noise the clean latents to a random timestep with the scheduler's
// forward process, predict the noise, v or the clean sample, and take the
// mean squared error, optionally weighted by min-SNR-gamma) and the trainer
// around it, with latents cached from a frozen VAE, label dropout for
// classifier-free guidance, EMA weights and resumable checkpoints.
package diffusion
