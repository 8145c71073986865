// Package scheduler implements the noise schedulers of diffusers: forward
// diffusion (AddNoise) and the reverse samplers (DDPM, DDIM, PNDM,
// DPM-Solver++, Euler, Euler ancestral, Heun, LMS, UniPC), each built from a
// diffusers scheduler_config.json and matching diffusers step for step.
//
// Schedulers know nothing of models: Step takes the model's output as a
// tensor. Randomness comes only from the Noise the caller passes; *nn.RNG
// is the project's generator (its algorithm is documented there), so a
// seed gives the same bits on every platform and thread count.
//
// Typical use:
//
//	cfg, err := scheduler.LoadConfig("scheduler/scheduler_config.json")
//	s, err := scheduler.New(cfg)               // or scheduler.FromName("euler_a", cfg)
//	err = s.SetTimesteps(50)
//	// sample = noise * s.InitNoiseSigma()
//	for _, t := range s.Timesteps() {
//		err = s.ScaleModelInput(in, sample, t)
//		// out = model(in, t)
//		o, err := s.Step(out, t, sample, rng)
//		// copy o.PrevSample into sample (o's tensors belong to s)
//	}
//
// Numerics: the training tables (betas, alphas_cumprod) are float32 and
// reproduce torch's rounding bit for bit; per-step scalars are float32
// where diffusers computes them as torch tensors and float64 where it uses
// numpy or Python floats; element-wise products are rounded explicitly so
// no platform fuses them.
//
// # Randomness
//
// Stochastic steps (DDPM, DDIM with eta > 0, Euler ancestral, SDE
// DPM-Solver++) draw standard normal values only from the Noise passed to
// Step, in the order of the sample's elements. The project's generator is
// nn.RNG: xoshiro256** seeded by SplitMix64 from (seed, stream), uniform
// doubles from the top 53 bits, normals by the Marsaglia polar method with
// explicitly rounded products (its documentation gives every detail). It
// uses no floating-point operation whose result differs between platforms,
// so a seed gives the same noise everywhere and for any thread count. The
// pipeline gives image i of a request the stream (seed, i); the golden tests
// pass a Noise that replays the values diffusers drew.
package scheduler
