// Package safetensors reads and writes the safetensors format that Hugging
// Face models ship in: an 8-byte little-endian header length, a JSON header
// naming each tensor's dtype, shape and byte range, then the raw bytes.
//
// The reader trusts nothing in the file: the header size is capped, every
// shape is checked for overflow, and the byte ranges must tile the data
// region exactly (no gaps, no overlap, nothing past the end), as the
// reference implementation requires. No allocation is sized from the header;
// tensors are views of the bytes actually read.
//
// We keep our own small implementation rather than a library because we need
// zero-dimensional tensors on write (optimiser step counters) and full
// control over the checks above.
package safetensors
