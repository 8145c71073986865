// Package dataset provides training images: MNIST padded to 32x32, and
// folders of PNG or JPEG files, all as float32 CHW in [-1, 1], with seeded
// shuffling that is a pure function of (seed, position) so a resumed run
// sees exactly the batches an uninterrupted one would.
package dataset

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ldm-go/ldm/internal/imageio"
	"github.com/ldm-go/ldm/internal/mnist"
	"github.com/ldm-go/ldm/nn"
)

// Dataset is a fixed, indexable set of images with optional labels.
type Dataset interface {
	// Len is the number of images.
	Len() int
	// Shape is the channels, height and width of every image.
	Shape() (c, h, w int)
	// NumClasses is the number of labels, 0 for an unlabelled set.
	NumClasses() int
	// Get writes image i to dst (C*H*W values) and returns its label, or -1.
	Get(dst []float32, i int) int
}

// InMemory is a dataset held as one float32 array.
type InMemory struct {
	Images  []float32
	Labels  []int // nil when unlabelled
	C, H, W int
	Classes int
	// ClassNames names the labels of a folder dataset, by label.
	ClassNames []string
}

// Len is the number of images.
func (d *InMemory) Len() int { return len(d.Images) / (d.C * d.H * d.W) }

// Shape is the per-image shape.
func (d *InMemory) Shape() (int, int, int) { return d.C, d.H, d.W }

// NumClasses is the number of labels.
func (d *InMemory) NumClasses() int { return d.Classes }

// Get copies image i into dst.
func (d *InMemory) Get(dst []float32, i int) int {
	n := d.C * d.H * d.W
	copy(dst[:n], d.Images[i*n:(i+1)*n])
	if d.Labels == nil {
		return -1
	}
	return d.Labels[i]
}

// MNIST loads a split ("train" or "test") padded to 1x32x32.
func MNIST(split string) (*InMemory, error) {
	var s mnist.Split
	switch split {
	case "train":
		s = mnist.Train
	case "test":
		s = mnist.Test
	default:
		return nil, fmt.Errorf("dataset: MNIST split %q, want train or test", split)
	}
	set, err := mnist.Load(s)
	if err != nil {
		return nil, err
	}
	d := &InMemory{C: 1, H: mnist.PaddedSide, W: mnist.PaddedSide, Classes: 10, Labels: make([]int, set.Len())}
	d.Images = set.Tensor().Float32s()
	for i, l := range set.Labels {
		d.Labels[i] = int(l)
	}
	return d, nil
}

// Folder loads every PNG and JPEG under dir (recursively, in sorted order),
// resized to cover size x size and centre-cropped, with channels 1 or 3.
// With labels, each image's label is its first-level subfolder, classes
// sorted by name. Unreadable files are reported all at once.
func Folder(dir string, channels, size int, labels bool) (*InMemory, error) {
	if channels != 1 && channels != 3 {
		return nil, fmt.Errorf("dataset: channels %d, want 1 or 3", channels)
	}
	if size <= 0 || size > 4096 {
		return nil, fmt.Errorf("dataset: image size %d outside [1, 4096]", size)
	}
	var files []string
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".png", ".jpg", ".jpeg":
			if !e.IsDir() {
				files = append(files, path)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("dataset: no PNG or JPEG files under %s", dir)
	}
	sort.Strings(files)
	d := &InMemory{C: channels, H: size, W: size}
	classOf := map[string]int{}
	if labels {
		for _, f := range files {
			rel, _ := filepath.Rel(dir, f)
			parts := strings.SplitN(filepath.ToSlash(rel), "/", 2)
			if len(parts) < 2 {
				return nil, fmt.Errorf("dataset: %s is not inside a class subfolder of %s", f, dir)
			}
			classOf[parts[0]] = 0
		}
		for name := range classOf {
			d.ClassNames = append(d.ClassNames, name)
		}
		sort.Strings(d.ClassNames)
		for i, name := range d.ClassNames {
			classOf[name] = i
		}
		d.Classes = len(d.ClassNames)
		d.Labels = make([]int, 0, len(files))
	}
	per := channels * size * size
	d.Images = make([]float32, 0, len(files)*per)
	var bad []string
	for _, f := range files {
		t, err := imageio.Load(f, imageio.LoadOptions{Channels: channels, Height: size, Width: size, Size: imageio.Cover})
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		d.Images = append(d.Images, t.Float32s()...)
		if labels {
			rel, _ := filepath.Rel(dir, f)
			d.Labels = append(d.Labels, classOf[strings.SplitN(filepath.ToSlash(rel), "/", 2)[0]])
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("dataset: %d of %d files could not be read:\n\t%s", len(bad), len(files), strings.Join(bad, "\n\t"))
	}
	return d, nil
}

// Open loads "mnist" (the training split), "mnist-test", or a folder.
func Open(spec string, channels, size int, labels bool) (Dataset, error) {
	switch spec {
	case "mnist", "mnist-train":
		return MNIST("train")
	case "mnist-test":
		return MNIST("test")
	}
	if st, err := os.Stat(spec); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("dataset: %q is neither mnist, mnist-test nor a folder of images", spec)
	}
	return Folder(spec, channels, size, labels)
}

// Sampler draws training batches: the k-th example of training is position
// k mod N of a permutation drawn for epoch k / N from stream (seed, epoch),
// so any batch can be recomputed from its position alone. Flip mirrors each
// image horizontally with probability 1/2, decided by the caller's RNG.
type Sampler struct {
	Data  Dataset
	Seed  uint64
	Flip  bool
	epoch int
	perm  []int
}

// epochStream offsets the shuffling streams from the other uses of the seed.
const epochStream = 1 << 40

// Indices fills dst with the examples at positions k, k+1, ... of training.
func (s *Sampler) Indices(dst []int, k int) {
	total := s.Data.Len()
	for j := range dst {
		pos := k + j
		if epoch := pos / total; s.perm == nil || epoch != s.epoch {
			s.epoch = epoch
			s.perm = nn.NewRNG(s.Seed, epochStream+uint64(epoch)).Perm(total)
		}
		dst[j] = s.perm[pos%total]
	}
}

// Batch fills dst with the n examples starting at position k, and labels
// (if not nil) with their labels; rng decides flips.
func (s *Sampler) Batch(dst []float32, labels []int, k, n int, rng *nn.RNG) {
	c, h, w := s.Data.Shape()
	per := c * h * w
	idx := make([]int, n)
	s.Indices(idx, k)
	for j, i := range idx {
		img := dst[j*per : (j+1)*per]
		l := s.Data.Get(img, i)
		if labels != nil {
			labels[j] = l
		}
		if s.Flip && rng.Uint64()&1 == 1 {
			FlipRows(img, c*h, w)
		}
	}
}

// FlipRows mirrors each of the rows of length w in img.
func FlipRows(img []float32, rows, w int) {
	for r := 0; r < rows; r++ {
		row := img[r*w : (r+1)*w]
		for a, z := 0, w-1; a < z; a, z = a+1, z-1 {
			row[a], row[z] = row[z], row[a]
		}
	}
}
