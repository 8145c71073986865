// Package presets names the architectures `ldm train` offers, as
// diffusers config.json bodies, so that the command, the benchmarks and the
// model card speak of the same models.
package presets

// VAE lists the autoencoder presets.
var VAE = map[string]string{
	// A KL VAE from 1x32x32 to a 4x8x8 latent, for MNIST: 16 channels at
	// full resolution keep a training step cheap on two cores.
	"mnist-kl-4x8x8": `{"_class_name":"AutoencoderKL","in_channels":1,"out_channels":1,"latent_channels":4,
		"block_out_channels":[16,32,64],"layers_per_block":1,"norm_num_groups":8,"sample_size":32,
		"down_block_types":["DownEncoderBlock2D","DownEncoderBlock2D","DownEncoderBlock2D"],
		"up_block_types":["UpDecoderBlock2D","UpDecoderBlock2D","UpDecoderBlock2D"],"mid_block_add_attention":true}`,
	// A small RGB VAE from 3x64x64 to 4x16x16.
	"rgb-kl-4x16x16": `{"_class_name":"AutoencoderKL","in_channels":3,"out_channels":3,"latent_channels":4,
		"block_out_channels":[32,64,128],"layers_per_block":1,"norm_num_groups":32,"sample_size":64,
		"down_block_types":["DownEncoderBlock2D","DownEncoderBlock2D","DownEncoderBlock2D"],
		"up_block_types":["UpDecoderBlock2D","UpDecoderBlock2D","UpDecoderBlock2D"]}`,
	// For tests: 1x8x8 to 2x4x4.
	"tiny": `{"_class_name":"AutoencoderKL","in_channels":1,"out_channels":1,"latent_channels":2,"block_out_channels":[8,8],
		"down_block_types":["DownEncoderBlock2D","DownEncoderBlock2D"],"up_block_types":["UpDecoderBlock2D","UpDecoderBlock2D"],
		"norm_num_groups":4,"sample_size":8}`,
}

// UNet lists the denoiser presets.
var UNet = map[string]string{
	// A class-conditional latent UNet for 4x8x8 MNIST latents: ten digits
	// plus the null class for classifier-free guidance.
	"mnist-latent": `{"_class_name":"UNet2DModel","in_channels":4,"out_channels":4,"sample_size":8,
		"block_out_channels":[64,128,128],"layers_per_block":1,"norm_num_groups":32,"attention_head_dim":32,
		"down_block_types":["DownBlock2D","AttnDownBlock2D","AttnDownBlock2D"],
		"up_block_types":["AttnUpBlock2D","AttnUpBlock2D","UpBlock2D"],"num_class_embeds":11}`,
	// The guide for autoguidance of mnist-latent: the same layout at half
	// the width, a quarter of the parameters.
	"mnist-latent-guide": `{"_class_name":"UNet2DModel","in_channels":4,"out_channels":4,"sample_size":8,
		"block_out_channels":[32,64,64],"layers_per_block":1,"norm_num_groups":16,"attention_head_dim":32,
		"down_block_types":["DownBlock2D","AttnDownBlock2D","AttnDownBlock2D"],
		"up_block_types":["AttnUpBlock2D","AttnUpBlock2D","UpBlock2D"],"num_class_embeds":11}`,
	// google/ddpm-cifar10-32's architecture (pixel space, 3x32x32).
	"ddpm-cifar10-32": `{"_class_name":"UNet2DModel","in_channels":3,"out_channels":3,"sample_size":32,
		"block_out_channels":[128,256,256,256],"layers_per_block":2,"norm_num_groups":32,"attention_head_dim":null,
		"down_block_types":["DownBlock2D","AttnDownBlock2D","DownBlock2D","DownBlock2D"],
		"up_block_types":["UpBlock2D","UpBlock2D","AttnUpBlock2D","UpBlock2D"],"resnet_time_scale_shift":"default",
		"flip_sin_to_cos":false,"freq_shift":1,"downsample_padding":0}`,
	// For tests: class-conditional on 2x4x4 latents (num_class_embeds is set from the data).
	"tiny": `{"_class_name":"UNet2DModel","in_channels":2,"out_channels":2,"sample_size":4,"block_out_channels":[8,8],
		"down_block_types":["DownBlock2D","AttnDownBlock2D"],"up_block_types":["AttnUpBlock2D","UpBlock2D"],
		"layers_per_block":1,"norm_num_groups":4,"attention_head_dim":4,"num_class_embeds":11}`,
}
