package imageio

import (
	"bytes"
	"compress/zlib"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

func TestMetadataRoundTrip(t *testing.T) {
	img := randomRGBA(rand.New(rand.NewPCG(7, 8)), 9, 4)
	meta := map[string]string{
		"model": "weights/mnist-ldm", "seed": "42", "index": "3", "scheduler": "dpm++2m",
		"steps": "25", "guidance": "1.5", "note": "Ünïcødé ✓ beyond Latin-1", "empty": "",
	}
	p := filepath.Join(t.TempDir(), "out.png")
	if err := SavePNG(p, img, meta); err != nil {
		t.Fatal(err)
	}
	got, err := ReadMetadata(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(meta) {
		t.Fatalf("got %v", got)
	}
	for k, v := range meta {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	// The file is still a PNG with the same pixels.
	f, _ := os.ReadFile(p)
	dec, err := png.Decode(bytes.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	for y := 0; y < 4; y++ {
		for x := 0; x < 9; x++ {
			if color.RGBAModel.Convert(dec.At(x, y)) != img.At(x, y) {
				t.Fatalf("pixel (%d,%d) changed", x, y)
			}
		}
	}
	// Text chunks sit right after IHDR, tEXt for Latin-1 values and iTXt
	// for the rest.
	if string(f[37:41]) != "tEXt" || !bytes.Contains(f, []byte("iTXt")) {
		t.Fatalf("chunk after IHDR is %q", f[37:41])
	}
	// Nothing besides the file is left in the folder.
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Fatalf("folder holds %d entries", len(entries))
	}
}

func TestMetadataRefusesBadKeys(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 1, 1))
	for _, k := range []string{"", " lead", "two  spaces", strings.Repeat("k", 80), "tab\tkey", "é"} {
		if err := EncodePNG(&bytes.Buffer{}, img, map[string]string{k: "v"}); err == nil {
			t.Errorf("key %q accepted", k)
		}
	}
	if err := EncodePNG(&bytes.Buffer{}, img, map[string]string{"k": "a\x00b"}); err == nil {
		t.Error("NUL in value accepted")
	}
}

// chunkStream assembles a PNG chunk stream from (type, data) pairs.
func chunkStream(chunks ...[2]string) []byte {
	var b bytes.Buffer
	b.Write(pngHeader(1, 1))
	for _, c := range chunks {
		writeChunk(&b, c[0], []byte(c[1]))
	}
	return b.Bytes()
}

func zlibBytes(s string) string {
	var b bytes.Buffer
	w := zlib.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.String()
}

func TestDecodeMetadataChunkKinds(t *testing.T) {
	data := chunkStream(
		[2]string{"tEXt", "latin\x00caf\xe9"},
		[2]string{"zTXt", "z\x00\x00" + zlibBytes("compressed text")},
		[2]string{"iTXt", "i\x00\x01\x00en\x00Title\x00" + zlibBytes("ünï")},
		[2]string{"tEXt", "latin\x00second value loses"},
		[2]string{"IEND", ""},
	)
	meta, err := DecodeMetadata(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"latin": "café", "z": "compressed text", "i": "ünï"}
	for k, v := range want {
		if meta[k] != v {
			t.Errorf("%s = %q, want %q", k, meta[k], v)
		}
	}
}

func TestDecodeMetadataHostile(t *testing.T) {
	good := chunkStream([2]string{"tEXt", "k\x00v"}, [2]string{"IEND", ""})
	badCRC := append([]byte(nil), good...)
	badCRC[len(pngHeader(1, 1))+8+3] ^= 1 // a byte of the tEXt data
	huge := append(pngHeader(1, 1), 0x7f, 0xff, 0xff, 0xff, 't', 'E', 'X', 't', 'k', 0)
	over := append(pngHeader(1, 1), 0xff, 0xff, 0xff, 0xff, 'I', 'D', 'A', 'T')
	bomb := chunkStream([2]string{"zTXt", "z\x00\x00" + zlibBytes(strings.Repeat("a", MaxTextChunk+1))}, [2]string{"IEND", ""})
	cases := map[string][]byte{
		"empty":          nil,
		"no signature":   []byte("GIF89a"),
		"bad CRC":        badCRC,
		"no IEND":        good[:len(good)-12],
		"truncated":      good[:len(good)-20],
		"huge text":      huge,
		"length over 2G": over,
		"zlib bomb":      bomb,
		"IHDR not first": append(append([]byte(nil), pngMagic...), chunkStream([2]string{"IEND", ""})[33:]...),
		"no separator":   chunkStream([2]string{"tEXt", "novalue"}, [2]string{"IEND", ""}),
		"bad type":       chunkStream([2]string{"t3Xt", "k\x00v"}, [2]string{"IEND", ""}),
	}
	for name, data := range cases {
		_, err := DecodeMetadata(bytes.NewReader(data))
		if err == nil {
			t.Errorf("%s: no error", name)
		} else if !errors.Is(err, ErrBadPNG) {
			t.Errorf("%s: error %v does not wrap ErrBadPNG", name, err)
		}
	}
	if _, err := DecodeMetadata(bytes.NewReader(good)); err != nil {
		t.Fatalf("good stream: %v", err)
	}
	p := filepath.Join(t.TempDir(), "bad.png")
	os.WriteFile(p, badCRC, 0o644)
	if _, err := ReadMetadata(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("ReadMetadata error does not name the file: %v", err)
	}
}

func TestMask(t *testing.T) {
	m := image.NewNRGBA(image.Rect(0, 0, 3, 2))
	copy(m.Pix, []uint8{255, 255, 255, 255, 0, 0, 0, 255, 255, 0, 0, 0})
	p := filepath.Join(t.TempDir(), "mask.png")
	os.WriteFile(p, encodePNG(t, m), 0o644)
	mask, err := LoadMask(p, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	if s := mask.Shape(); s[0] != 1 || s[1] != 2 || s[2] != 3 {
		t.Fatalf("shape %v", s)
	}
	d := mask.Data().([]float32)
	if d[0] != 1 || d[1] != 0 || d[2] != float32(76)/255 || d[3] != 0 {
		t.Fatalf("mask values %v", d)
	}
	BinarizeMask(d)
	if d[0] != 1 || d[2] != 0 {
		t.Fatalf("binarised %v", d)
	}
	_, err = LoadMask(p, 4, 2)
	if !errors.Is(err, ErrMaskSize) || !strings.Contains(err.Error(), "3x2") || !strings.Contains(err.Error(), "4x2") || !strings.Contains(err.Error(), p) {
		t.Fatalf("size mismatch error: %v", err)
	}
}

func TestGrid(t *testing.T) {
	for n, want := range map[int]int{1: 1, 2: 2, 4: 2, 5: 3, 9: 3, 10: 4, 16: 4, 17: 5} {
		if got := GridColumns(n); got != want {
			t.Errorf("GridColumns(%d) = %d, want %d", n, got, want)
		}
	}
	var imgs []image.Image
	for i := 0; i < 5; i++ {
		g := image.NewGray(image.Rect(0, 0, 2, 3))
		for j := range g.Pix {
			g.Pix[j] = uint8(10 * (i + 1))
		}
		imgs = append(imgs, g)
	}
	out, err := Grid(imgs, 0, 1, color.Gray{Y: 255})
	if err != nil {
		t.Fatal(err)
	}
	g, ok := out.(*image.Gray)
	if !ok {
		t.Fatalf("grid of grey images is %T", out)
	}
	// 3 columns, 2 rows: width 3*2+4, height 2*3+3.
	if b := g.Bounds(); b.Dx() != 10 || b.Dy() != 9 {
		t.Fatalf("grid bounds %v", b)
	}
	// Image 4 is row 1, column 1: top-left at (1+3, 1+4).
	if g.GrayAt(4, 5).Y != 50 || g.GrayAt(0, 0).Y != 255 || g.GrayAt(7, 5).Y != 255 || g.GrayAt(1, 1).Y != 10 {
		t.Fatal("grid cells misplaced")
	}
	if _, err := Grid(append(imgs, image.NewGray(image.Rect(0, 0, 3, 3))), 0, 0, nil); err == nil {
		t.Fatal("grid accepted mixed sizes")
	}
	rgb, err := Grid([]image.Image{randomRGBA(rand.New(rand.NewPCG(1, 1)), 2, 2)}, 4, 0, nil)
	if _, ok := rgb.(*image.RGBA); err != nil || !ok || rgb.Bounds().Dx() != 2 {
		t.Fatalf("single RGB grid: %T %v", rgb, err)
	}
}

func TestGIF(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	grays := []image.Image{randomGray(rng, 5, 4), randomGray(rng, 5, 4)}
	var b bytes.Buffer
	if err := EncodeGIF(&b, grays, 7); err != nil {
		t.Fatal(err)
	}
	g, err := gif.DecodeAll(&b)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Image) != 2 || g.Delay[1] != 7 || g.LoopCount != 0 {
		t.Fatalf("frames %d delay %v loop %d", len(g.Image), g.Delay, g.LoopCount)
	}
	for i, f := range g.Image {
		for y := 0; y < 4; y++ {
			for x := 0; x < 5; x++ {
				if color.GrayModel.Convert(f.At(x, y)).(color.Gray) != grays[i].(*image.Gray).GrayAt(x, y) {
					t.Fatalf("grey frame %d pixel (%d,%d) changed", i, x, y)
				}
			}
		}
	}
	// Colour frames with few colours keep them exactly; many colours are
	// approximated by the median-cut palette.
	few := image.NewRGBA(image.Rect(0, 0, 4, 4))
	for i := 0; i < 16; i++ {
		few.Set(i%4, i/4, color.RGBA{uint8(i * 16), uint8(255 - i*8), 7, 255})
	}
	many := randomRGBA(rng, 32, 32)
	for _, tc := range []struct {
		img image.Image
		tol int
	}{{few, 0}, {many, 80}} {
		p := filepath.Join(t.TempDir(), "a.gif")
		if err := SaveGIF(p, []image.Image{tc.img}, 10); err != nil {
			t.Fatal(err)
		}
		f, _ := os.Open(p)
		g, err := gif.DecodeAll(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		sum := 0
		for y := 0; y < tc.img.Bounds().Dy(); y++ {
			for x := 0; x < tc.img.Bounds().Dx(); x++ {
				a := color.RGBAModel.Convert(g.Image[0].At(x, y)).(color.RGBA)
				w := tc.img.At(x, y).(color.RGBA)
				d := abs(int(a.R)-int(w.R)) + abs(int(a.G)-int(w.G)) + abs(int(a.B)-int(w.B))
				if d > tc.tol {
					t.Fatalf("pixel (%d,%d): %v vs %v", x, y, a, w)
				}
				sum += d
			}
		}
		if tc.tol > 0 && sum/(32*32) > 40 {
			t.Fatalf("mean palette error %d", sum/(32*32))
		}
	}
	if err := EncodeGIF(&b, []image.Image{few, many}, 1); err == nil {
		t.Fatal("frames of different sizes accepted")
	}
	// Frames made from a tensor batch.
	x := tensor.New(tensor.WithShape(3, 1, 2, 2), tensor.WithBacking(make([]float32, 12)))
	frames, _ := ToImages(x)
	if err := EncodeGIF(&bytes.Buffer{}, frames, 5); err != nil {
		t.Fatal(err)
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
