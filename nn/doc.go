// Package nn holds the neural-network building blocks the models are made
// of: parameters bound by their diffusers names, layers (Conv2d, GroupNorm,
// Linear, attention, ResnetBlock2D, timestep embeddings), the random
// generator and, for training, gradients and optimisers.
//
// Layers are plain structs whose fields carry diffusers' names. They work on
// contiguous NCHW float32 slices with explicit shapes; *tensor.Dense appears
// only at the models' public boundaries.
package nn
