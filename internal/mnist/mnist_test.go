package mnist

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

var (
	loadOnce      sync.Once
	train, test   *Set
	trainE, testE error
)

// sets loads both splits once for all tests.
func sets(t *testing.T) (*Set, *Set) {
	t.Helper()
	loadOnce.Do(func() {
		train, trainE = Load(Train)
		test, testE = Load(Test)
	})
	if trainE != nil || testE != nil {
		t.Fatalf("loading MNIST: %v / %v", trainE, testE)
	}
	return train, test
}

func TestCountsAndLabels(t *testing.T) {
	tr, te := sets(t)
	if tr.Len() != TrainCount || len(tr.Pixels) != TrainCount*Side*Side {
		t.Fatalf("train: %d labels, %d pixels", tr.Len(), len(tr.Pixels))
	}
	if te.Len() != TestCount || len(te.Pixels) != TestCount*Side*Side {
		t.Fatalf("test: %d labels, %d pixels", te.Len(), len(te.Pixels))
	}
	// Known facts of MNIST: the first training digit is a 5 and the first
	// test digit a 7; the label counts of each split are fixed.
	if tr.Labels[0] != 5 || te.Labels[0] != 7 {
		t.Fatalf("first labels %d, %d", tr.Labels[0], te.Labels[0])
	}
	for _, c := range []struct {
		s    *Set
		want [10]int
	}{
		{tr, [10]int{5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949}},
		{te, [10]int{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009}},
	} {
		var hist [10]int
		for _, l := range c.s.Labels {
			hist[l]++
		}
		if hist != c.want {
			t.Errorf("label histogram %v, want %v", hist, c.want)
		}
	}
	// Digits are drawn on a black background: corners are 0 and every
	// image has some full ink.
	for i := 0; i < tr.Len(); i += 997 {
		raw := tr.Raw(i)
		mx := uint8(0)
		for _, p := range raw {
			mx = max(mx, p)
		}
		if raw[0] != 0 || raw[Side*Side-1] != 0 || mx < 200 {
			t.Fatalf("image %d: corners %d %d, max %d", i, raw[0], raw[Side*Side-1], mx)
		}
	}
}

func TestTensor(t *testing.T) {
	_, te := sets(t)
	x := te.Tensor()
	if s := x.Shape(); len(s) != 4 || s[0] != TestCount || s[1] != 1 || s[2] != 32 || s[3] != 32 {
		t.Fatalf("shape %v", s)
	}
	d := x.Data().([]float32)
	lo, hi := d[0], d[0]
	for _, v := range d {
		lo, hi = min(lo, v), max(hi, v)
	}
	if lo != -1 || hi != 1 {
		t.Fatalf("range [%v, %v], want [-1, 1]", lo, hi)
	}
	for i := 0; i < TestCount; i++ {
		img := d[i*1024 : (i+1)*1024]
		for y := 0; y < 32; y++ {
			for x := 0; x < 32; x++ {
				border := y < Pad || y >= Pad+Side || x < Pad || x >= Pad+Side
				v := img[y*32+x]
				if border && v != -1 {
					t.Fatalf("image %d border (%d,%d) = %v", i, x, y, v)
				}
				if !border {
					p := te.Raw(i)[(y-Pad)*Side+x-Pad]
					if want := float32(2*(float32(p)/255)) - 1; v != want {
						t.Fatalf("image %d (%d,%d) = %v, pixel %d wants %v", i, x, y, v, p, want)
					}
				}
			}
		}
	}
	// A batch picks images in the order asked.
	b := make([]float32, 2*1024)
	if err := te.PaddedBatch(b, []int{9, 3}); err != nil {
		t.Fatal(err)
	}
	if !slicesEqual(b[:1024], d[9*1024:10*1024]) || !slicesEqual(b[1024:], d[3*1024:4*1024]) {
		t.Fatal("PaddedBatch order")
	}
	if err := te.PaddedBatch(b, []int{1}); err == nil {
		t.Fatal("wrong dst length accepted")
	}
	if err := te.PaddedBatch(b, []int{0, TestCount}); err == nil {
		t.Fatal("index out of range accepted")
	}
}

func slicesEqual(a, b []float32) bool {
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

// TestModuleVersionInSync keeps ModuleVersion equal to go.mod's.
func TestModuleVersionInSync(t *testing.T) {
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?` + regexp.QuoteMeta(ModulePath) + `\s+(\S+)\s*$`).FindSubmatch(mod)
	if m == nil {
		t.Fatalf("go.mod does not require %s directly", ModulePath)
	}
	if string(m[1]) != ModuleVersion {
		t.Fatalf("go.mod has %s, ModuleVersion is %s", m[1], ModuleVersion)
	}
	if path, v := moduleVersion(); path != ModulePath || v != ModuleVersion {
		t.Fatalf("build info gives %s@%s", path, v)
	}
	if got := escapePath(ModulePath); got != "github.com/petar/!go!m!n!i!s!t" {
		t.Fatalf("escaped path %s", got)
	}
}

func idx(magic uint32, dims []uint32, payload []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, magic)
	binary.Write(&b, binary.BigEndian, dims)
	b.Write(payload)
	return b.Bytes()
}

func gz(data []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(data)
	w.Close()
	return b.Bytes()
}

func TestCorruptFiles(t *testing.T) {
	img2 := make([]byte, 2*Side*Side)
	img2[5] = 255
	goodImg := idx(ImageMagic, []uint32{2, Side, Side}, img2)
	goodLbl := idx(LabelMagic, []uint32{2}, []byte{3, 9})
	write := func(imgs, lbls []byte) string {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), imgs, 0o644)
		os.WriteFile(filepath.Join(dir, "t10k-labels-idx1-ubyte"), lbls, 0o644)
		return dir
	}
	// A well-formed pair, one gzipped and one plain, loads.
	s, err := LoadDir(write(gz(goodImg), goodLbl), Test)
	if err != nil || s.Len() != 2 || s.Labels[1] != 9 || s.Raw(0)[5] != 255 {
		t.Fatalf("good files: %v", err)
	}
	cases := map[string][2][]byte{
		"bad image magic":  {gz(idx(0x804, []uint32{2, Side, Side}, img2)), goodLbl},
		"labels as images": {gz(goodLbl), goodLbl},
		"wrong size":       {gz(idx(ImageMagic, []uint32{2, 27, 29}, img2)), goodLbl},
		"truncated data":   {gz(goodImg[:len(goodImg)-1]), goodLbl},
		"trailing data":    {gz(append(goodImg, 0)), goodLbl},
		"huge count":       {gz(idx(ImageMagic, []uint32{1 << 30, Side, Side}, img2)), goodLbl},
		"short header":     {gz(goodImg[:10]), goodLbl},
		"broken gzip":      {gz(goodImg)[:30], goodLbl},
		"count mismatch":   {gz(goodImg), idx(LabelMagic, []uint32{1}, []byte{3})},
		"label not digit":  {gz(goodImg), idx(LabelMagic, []uint32{2}, []byte{3, 10})},
		"empty":            {nil, goodLbl},
	}
	for name, c := range cases {
		dir := write(c[0], c[1])
		_, err := LoadDir(dir, Test)
		if err == nil {
			t.Errorf("%s: no error", name)
		} else if !strings.Contains(err.Error(), "t10k-") {
			t.Errorf("%s: error does not name the file: %v", name, err)
		}
	}
	if _, err := LoadDir(t.TempDir(), Train); err == nil || !strings.Contains(err.Error(), "train-images") {
		t.Fatalf("missing files: %v", err)
	}
	if _, err := LoadDir(t.TempDir(), "valid"); err == nil {
		t.Fatal("unknown split accepted")
	}
}

func TestDirOverride(t *testing.T) {
	empty := t.TempDir()
	t.Setenv(EnvDir, empty)
	if _, err := Dir(); err == nil || !strings.Contains(err.Error(), EnvDir) {
		t.Fatalf("empty override: %v", err)
	}
	t.Setenv(EnvDir, "")
	t.Setenv("GOMODCACHE", empty)
	_, err := Dir()
	if err == nil || !strings.Contains(err.Error(), "go mod download "+ModulePath) {
		t.Fatalf("missing module: %v", err)
	}
}
