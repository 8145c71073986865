// Package imageio moves images between files and the float32 tensors the
// models work on, following diffusers' conventions so that an image written
// here and one written by diffusers from the same tensor are byte-identical
// in their pixels.
//
// Tensors are NCHW (or CHW for a single image) with 1 (grayscale) or 3 (RGB)
// channels and values in [-1, 1]. A pixel p in 0..255 becomes
// 2*(p/255) - 1, computed in float32 as diffusers' VaeImageProcessor does;
// a value x becomes the pixel round(clamp(x/2+0.5, 0, 1)*255), rounding
// halves to even as numpy does.
//
// Loading accepts PNG and JPEG only and reads the header before decoding, so
// that an image whose dimensions exceed a pixel limit is refused before its
// pixels are allocated. RGB is reduced to grayscale with Pillow's fixed-point
// ITU-R 601 luma (the "L" conversion), and alpha is dropped without
// compositing, as Pillow's convert does. Two known departures from
// Pillow: 16-bit PNGs are scaled to 8 bits (v>>8) where Pillow's "I;16" to
// "L" conversion clips, and JPEG chroma is upsampled by Go's decoder, which
// can differ from libjpeg's smoothing by a few levels in colour images.
//
// Resizing uses Pillow's BILINEAR resampling (a triangle filter whose support
// widens with the scale factor when shrinking, so downsampling averages
// every input pixel instead of skipping some), computed in floating point
// without intermediate rounding to 8 bits.
//
// PNG files carry generation settings in tEXt (or, for text outside
// Latin-1, iTXt) chunks placed right after IHDR. Reading them back verifies
// every chunk's CRC and bounds every size, so hostile files give errors,
// never panics or large allocations.
package imageio
