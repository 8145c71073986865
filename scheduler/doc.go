// Package scheduler implements the noise schedulers of diffusers: forward
// diffusion (AddNoise) and the reverse samplers (DDPM, DDIM, PNDM,
// DPM-Solver++, Euler, Euler ancestral, Heun, LMS, UniPC), each built from a
// diffusers scheduler_config.json and matching diffusers step for step.
//
// Schedulers know nothing of models: Step takes the model's output as a
// tensor. Randomness comes only from the Noise the caller passes.
package scheduler
