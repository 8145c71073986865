package imageio

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// FuzzReadMetadata feeds arbitrary bytes to the PNG text chunk reader: it
// must return an error or valid UTF-8 text within the size limits, never
// panic. The seed corpus is testdata/fuzz/FuzzReadMetadata.
func FuzzReadMetadata(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		meta, err := DecodeMetadata(bytes.NewReader(data))
		if err != nil {
			return
		}
		total := 0
		for k, v := range meta {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				t.Fatalf("invalid UTF-8 in %q: %q", k, v)
			}
			total += len(k) + len(v)
		}
		// Latin-1 text grows at most twice when converted to UTF-8.
		if total > 2*MaxTextTotal {
			t.Fatalf("%d bytes of text", total)
		}
	})
}

// FuzzLoad feeds arbitrary bytes to the image and mask loaders, with a small
// pixel limit so that hostile headers cannot make the fuzzer allocate much:
// every success must give a tensor of the requested shape with values in
// range. The seed corpus is testdata/fuzz/FuzzLoad.
func FuzzLoad(f *testing.F) {
	const limit = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, opt := range []LoadOptions{
			{Channels: Gray, MaxPixels: limit},
			{Channels: RGB, MaxPixels: limit, Height: 8, Width: 8},
			{MaxPixels: limit, Height: 4, Width: 6, Size: Stretch},
		} {
			x, err := Decode(bytes.NewReader(data), "fuzz", opt)
			if err != nil {
				continue
			}
			s := x.Shape()
			if opt.Channels != 0 && s[0] != opt.Channels || opt.Height != 0 && (s[1] != opt.Height || s[2] != opt.Width) {
				t.Fatalf("shape %v for %+v", s, opt)
			}
			for _, v := range x.Data().([]float32) {
				if !(v >= -1 && v <= 1) {
					t.Fatalf("value %v out of [-1, 1]", v)
				}
			}
		}
		// The mask loader uses the default limit, so only try small images.
		if _, err := DecodeImage(bytes.NewReader(data), "fuzz", limit); err == nil {
			m, err := DecodeMask(bytes.NewReader(data), "fuzz", 0, 0)
			if err != nil {
				t.Fatalf("mask failed where the image decoded: %v", err)
			}
			for _, v := range m.Data().([]float32) {
				if !(v >= 0 && v <= 1) {
					t.Fatalf("mask value %v out of [0, 1]", v)
				}
			}
		}
	})
}
