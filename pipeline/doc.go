// Package pipeline puts the parts of latent diffusion together: it loads a
// diffusers pipeline folder (model_index.json with unet/, vae/ or vqvae/
// and scheduler/, or a flat UNet-only folder), and runs the jobs people use
// it for, starting with sample generation.
//
// Generation is reproducible image by image: image i of a request draws
// every random number from its own stream (seed, i), so the batch size and
// the thread count never change an image, and any image can be regenerated
// alone from its seed and index.
//
// Class-conditional models use classifier-free guidance with a null class,
// the last row of the class embedding (num_class_embeds = classes + 1), which
// the trainer's label dropout teaches.
//
// A pipeline may also hold a guide (guide_unet/): a smaller, less-trained
// UNet of the same latents, which steers samples without classifier-free
// guidance away from the errors the two models share (autoguidance). It
// is not part of diffusers' pipelines; diffusers loads the folder's other
// components as before, and guide_unet/ as any UNet2DModel.
package pipeline
