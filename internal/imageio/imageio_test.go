package imageio

import (
	"bytes"
	"image"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

func TestPixelRoundTrip(t *testing.T) {
	for p := 0; p < 256; p++ {
		x := PixelToFloat(uint8(p))
		if x < -1 || x > 1 {
			t.Fatalf("pixel %d -> %v outside [-1, 1]", p, x)
		}
		if got := FloatToPixel(x); got != uint8(p) {
			t.Fatalf("pixel %d -> %v -> %d", p, x, got)
		}
	}
	for _, c := range []struct {
		x    float32
		want uint8
	}{{-1, 0}, {1, 255}, {-7, 0}, {3, 255}, {0, 128}, {float32(math.NaN()), 0}, {float32(math.Inf(1)), 255}} {
		if got := FloatToPixel(c.x); got != c.want {
			t.Errorf("FloatToPixel(%v) = %d, want %d", c.x, got, c.want)
		}
	}
}

// TestFloatToPixelHalfEven finds values whose scaled float32 product is
// exactly k + 0.5 and checks they round to the even neighbour, as numpy's
// round does (round-half-up would differ for even k).
func TestFloatToPixelHalfEven(t *testing.T) {
	found := 0
	for k := 0; k < 255; k++ {
		target := float32(k) + 0.5
		v := target / 255
		for step := 0; step < 64; step++ {
			x := float32(2*v) - 1
			vv := float32(x*0.5) + 0.5
			if float32(vv*255) == target {
				want := uint8(k)
				if k%2 == 1 {
					want = uint8(k + 1)
				}
				if got := FloatToPixel(x); got != want {
					t.Fatalf("x=%v scales to %v: got %d, want %d", x, target, got, want)
				}
				found++
				break
			}
			v = math.Nextafter32(v, 2)
		}
	}
	if found < 50 {
		t.Fatalf("only %d exact half cases found", found)
	}
}

func TestLuma(t *testing.T) {
	// Pillow's convert("L") of pure red, green and blue, and of grey.
	for _, c := range []struct{ r, g, b, want uint8 }{{255, 0, 0, 76}, {0, 255, 0, 150}, {0, 0, 255, 29}, {255, 255, 255, 255}, {0, 0, 0, 0}, {10, 200, 30, 124}} {
		if got := Luma(c.r, c.g, c.b); got != c.want {
			t.Errorf("Luma(%d,%d,%d) = %d, want %d", c.r, c.g, c.b, got, c.want)
		}
	}
	for v := 0; v < 256; v++ {
		if got := Luma(uint8(v), uint8(v), uint8(v)); got != uint8(v) {
			t.Fatalf("Luma of grey %d = %d", v, got)
		}
	}
}

func randomRGBA(rng *rand.Rand, w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range m.Pix {
		m.Pix[i] = uint8(rng.IntN(256))
		if i%4 == 3 {
			m.Pix[i] = 255
		}
	}
	return m
}

func randomGray(rng *rand.Rand, w, h int) *image.Gray {
	m := image.NewGray(image.Rect(0, 0, w, h))
	for i := range m.Pix {
		m.Pix[i] = uint8(rng.IntN(256))
	}
	return m
}

func TestTensorImageRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	rgb := randomRGBA(rng, 7, 5)
	x, err := FromImage(rgb, RGB)
	if err != nil {
		t.Fatal(err)
	}
	if s := x.Shape(); len(s) != 3 || s[0] != 3 || s[1] != 5 || s[2] != 7 {
		t.Fatalf("shape %v", s)
	}
	data := x.Data().([]float32)
	// CHW layout: the green plane starts after H*W values.
	if want := PixelToFloat(rgb.Pix[4*(2*7+3)+1]); data[35+2*7+3] != want {
		t.Fatalf("G at (3,2) = %v, want %v", data[35+2*7+3], want)
	}
	back, err := ToImage(x)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.(*image.RGBA).Pix, rgb.Pix) {
		t.Fatal("RGB round trip changed pixels")
	}
	g := randomGray(rng, 4, 6)
	y, _ := FromImage(g, Gray)
	gb, err := ToImage(y)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gb.(*image.Gray).Pix, g.Pix) {
		t.Fatal("grey round trip changed pixels")
	}
	// A batch of two converts image by image.
	both := append(append([]float32(nil), y.Data().([]float32)...), y.Data().([]float32)...)
	imgs, err := ToImages(tensor.New(tensor.WithShape(2, 1, 6, 4), tensor.WithBacking(both)))
	if err != nil || len(imgs) != 2 || !bytes.Equal(imgs[1].(*image.Gray).Pix, g.Pix) {
		t.Fatalf("ToImages: %v", err)
	}
	if _, err := ToImage(tensor.New(tensor.WithShape(2, 1, 6, 4), tensor.WithBacking(both))); err == nil {
		t.Fatal("ToImage accepted a batch of 2")
	}
	if _, err := ToImage(tensor.New(tensor.WithShape(2, 6, 4), tensor.WithBacking(both[:48]))); err == nil {
		t.Fatal("ToImage accepted 2 channels")
	}
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestLoadChannels(t *testing.T) {
	// An NRGBA pixel with alpha: Pillow's convert drops alpha, keeping
	// the stored colour.
	m := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	copy(m.Pix, []uint8{200, 100, 50, 10, 0, 255, 0, 255})
	p := writeFile(t, "a.png", encodePNG(t, m))
	rgb, err := Load(p, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{PixelToFloat(200), PixelToFloat(0), PixelToFloat(100), PixelToFloat(255), PixelToFloat(50), PixelToFloat(0)}
	if got := rgb.Data().([]float32); !equal(got, want) {
		t.Fatalf("RGB %v, want %v", got, want)
	}
	gray, err := Load(p, LoadOptions{Channels: Gray})
	if err != nil {
		t.Fatal(err)
	}
	if got := gray.Data().([]float32); !equal(got, []float32{PixelToFloat(Luma(200, 100, 50)), PixelToFloat(150)}) {
		t.Fatalf("grey %v", got)
	}
	// A grey file loads with 1 channel by default and replicates to 3.
	g := randomGray(rand.New(rand.NewPCG(3, 4)), 3, 2)
	gp := writeFile(t, "g.png", encodePNG(t, g))
	x, err := Load(gp, LoadOptions{})
	if err != nil || x.Shape()[0] != 1 {
		t.Fatalf("grey default: %v %v", x, err)
	}
	x3, err := Load(gp, LoadOptions{Channels: RGB})
	if err != nil {
		t.Fatal(err)
	}
	d3 := x3.Data().([]float32)
	if !equal(d3[:6], x.Data().([]float32)) || !equal(d3[6:12], d3[:6]) || !equal(d3[12:], d3[:6]) {
		t.Fatal("grey to RGB did not replicate")
	}
}

func TestLoadJPEG(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 16, 16))
	for i := range g.Pix {
		g.Pix[i] = uint8(i)
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, g, &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	p := writeFile(t, "a.jpg", b.Bytes())
	x, err := Load(p, LoadOptions{Channels: Gray})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range x.Data().([]float32) {
		if math.Abs(float64(v-PixelToFloat(g.Pix[i]))) > 4.0/127.5 {
			t.Fatalf("pixel %d: %v vs %d", i, v, g.Pix[i])
		}
	}
}

// pngHeader returns a PNG signature and IHDR for a w x h grey image.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.Write(pngMagic)
	ihdr := []byte{byte(w >> 24), byte(w >> 16), byte(w >> 8), byte(w), byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h), 8, 0, 0, 0, 0}
	writeChunk(&b, "IHDR", ihdr)
	return b.Bytes()
}

func TestLoadRefusesLargeBeforeDecoding(t *testing.T) {
	// Only a header: decoding would fail, so the error proves the size
	// check came first.
	p := writeFile(t, "huge.png", pngHeader(100000, 100000))
	_, err := Load(p, LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "limit of 67108864 pixels") || !strings.Contains(err.Error(), p) {
		t.Fatalf("error %v", err)
	}
	small := writeFile(t, "small.png", encodePNG(t, image.NewGray(image.Rect(0, 0, 10, 10))))
	if _, err := Load(small, LoadOptions{MaxPixels: 99}); err == nil || !strings.Contains(err.Error(), "limit of 99") {
		t.Fatalf("custom limit: %v", err)
	}
	if _, err := Load(small, LoadOptions{MaxPixels: 100}); err != nil {
		t.Fatal(err)
	}
}

func TestLoadErrorsNameFile(t *testing.T) {
	bmp := writeFile(t, "x.bmp", []byte("BM not an image"))
	trunc := writeFile(t, "t.png", encodePNG(t, image.NewGray(image.Rect(0, 0, 10, 10)))[:40])
	for _, p := range []string{bmp, trunc, filepath.Join(t.TempDir(), "missing.png")} {
		_, err := Load(p, LoadOptions{})
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("Load(%s): %v", p, err)
		}
	}
}

func TestLoadResize(t *testing.T) {
	m := randomRGBA(rand.New(rand.NewPCG(5, 6)), 40, 20)
	p := writeFile(t, "r.png", encodePNG(t, m))
	for _, c := range []struct {
		mode SizeMode
		h, w int
	}{{Cover, 16, 16}, {Stretch, 10, 30}, {CropOnly, 20, 20}, {Cover, 8, 24}} {
		x, err := Load(p, LoadOptions{Height: c.h, Width: c.w, Size: c.mode})
		if err != nil {
			t.Fatal(err)
		}
		if s := x.Shape(); s[0] != 3 || s[1] != c.h || s[2] != c.w {
			t.Errorf("mode %d: shape %v", c.mode, s)
		}
	}
	// CropOnly keeps pixels exactly: the centre 20x20 starts at column 10.
	x, _ := Load(p, LoadOptions{Height: 20, Width: 20, Size: CropOnly})
	if got, want := x.Data().([]float32)[0], PixelToFloat(m.Pix[4*10]); got != want {
		t.Fatalf("crop origin %v, want %v", got, want)
	}
	if _, err := Load(p, LoadOptions{Height: 30, Width: 30, Size: CropOnly}); err == nil {
		t.Fatal("CropOnly accepted a target larger than the image")
	}
	if _, err := Load(p, LoadOptions{Height: 30}); err == nil {
		t.Fatal("accepted a target with width 0")
	}
}

func equal(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func chwTensor(c, h, w int, f func(c, y, x int) float32) *tensor.Dense {
	d := make([]float32, c*h*w)
	for k := 0; k < c; k++ {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				d[(k*h+y)*w+x] = f(k, y, x)
			}
		}
	}
	return tensor.New(tensor.WithShape(c, h, w), tensor.WithBacking(d))
}

func TestResize(t *testing.T) {
	// A linear ramp along x is reproduced at the output sample centres
	// wherever the filter does not reach the border.
	ramp := chwTensor(1, 3, 32, func(_, _, x int) float32 { return float32(x) })
	down, err := Resize(ramp, 3, 8)
	if err != nil {
		t.Fatal(err)
	}
	d := down.Data().([]float32)
	for i := 2; i < 6; i++ {
		// Output i covers input [4i, 4i+4): centre 4i+2 in continuous
		// coordinates, pixel value x sits at x+0.5.
		if want := float32(4*i) + 1.5; math.Abs(float64(d[8+i]-want)) > 1e-5 {
			t.Errorf("down[%d] = %v, want %v", i, d[8+i], want)
		}
	}
	// Weights of a 2x reduction are Pillow's 1/8, 3/8, 3/8, 1/8.
	first, ws := resampleWeights(8, 4)
	if first[1] != 1 || len(ws[1]) != 4 || ws[1][0] != 0.125 || ws[1][1] != 0.375 {
		t.Fatalf("weights %v %v", first, ws)
	}
	// A constant stays constant, up or down, and the same size is a copy.
	c := chwTensor(3, 5, 7, func(k, _, _ int) float32 { return float32(k) - 0.25 })
	for _, sz := range [][2]int{{5, 7}, {13, 2}, {2, 19}} {
		r, err := Resize(c, sz[0], sz[1])
		if err != nil {
			t.Fatal(err)
		}
		rd := r.Data().([]float32)
		for i, v := range rd {
			if want := float32(i/(sz[0]*sz[1])) - 0.25; math.Abs(float64(v-want)) > 1e-6 {
				t.Fatalf("size %v value %d = %v, want %v", sz, i, v, want)
			}
		}
	}
}

func TestCenterCropOffsets(t *testing.T) {
	// torchvision: int(round((H - h) / 2.0)) with round half to even.
	for d, want := range []int{0, 0, 1, 2, 2, 2, 3, 4} {
		if got := centerOffset(d); got != want {
			t.Errorf("centerOffset(%d) = %d, want %d", d, got, want)
		}
	}
	if h, w := coverSize(20, 40, 16, 16); h != 16 || w != 32 {
		t.Errorf("cover 40x20 -> 16: %dx%d", w, h)
	}
	if h, w := coverSize(30, 20, 16, 16); h != 24 || w != 16 {
		t.Errorf("cover 20x30 -> 16: %dx%d", w, h)
	}
}

func TestFitRestore(t *testing.T) {
	src := chwTensor(1, 5, 6, func(_, y, x int) float32 { return float32(y*6+x) / 30 })
	fitted, f, err := Fit(src, 8, 8, FitPad, Padding{Value: -1})
	if err != nil {
		t.Fatal(err)
	}
	fd := fitted.Data().([]float32)
	if f.Box != image.Rect(1, 1, 7, 6) || fd[0] != -1 || fd[1*8+1] != 0 {
		t.Fatalf("box %v, corner %v, origin %v", f.Box, fd[0], fd[9])
	}
	back, err := f.Restore(fitted)
	if err != nil || !equal(back.Data().([]float32), src.Data().([]float32)) {
		t.Fatalf("pad restore: %v", err)
	}
	edge, _, err := Fit(src, 8, 8, FitPad, Padding{Edge: true})
	if err != nil {
		t.Fatal(err)
	}
	ed := edge.Data().([]float32)
	// Corners repeat the image's corners; the bottom row repeats row 4.
	if ed[0] != fd[9] || ed[63] != src.Data().([]float32)[29] || ed[7*8+3] != src.Data().([]float32)[4*6+2] {
		t.Fatalf("edge padding %v", ed)
	}
	if _, _, err := Fit(src, 4, 8, FitPad, Padding{}); err == nil || !strings.Contains(err.Error(), "6x5") {
		t.Fatalf("pad of a larger image: %v", err)
	}
	resized, f2, err := Fit(src, 10, 12, FitResize, Padding{})
	if err != nil || resized.Shape()[1] != 10 || resized.Shape()[2] != 12 {
		t.Fatalf("resize fit: %v", err)
	}
	r2, err := f2.Restore(resized)
	if err != nil || r2.Shape()[1] != 5 || r2.Shape()[2] != 6 {
		t.Fatalf("resize restore: %v", err)
	}
}
