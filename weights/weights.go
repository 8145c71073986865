// Package weights ships the project's pretrained models, embedded in the
// binary: the default MNIST latent diffusion pipeline and the MNIST
// classifier used for evaluation. See README.md, the model card.
package weights

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/ldm-go/ldm/internal/classifier"
)

//go:embed README.md mnist-classifier mnist-ldm
var files embed.FS

// DefaultPipelineDir is the folder of the default pipeline inside FS.
const DefaultPipelineDir = "mnist-ldm"

// ClassifierDir is the folder of the MNIST classifier inside FS.
const ClassifierDir = "mnist-classifier"

// Classifier returns the classifier folder, or false when none is installed.
func Classifier() (fs.FS, bool) {
	sub, err := fs.Sub(files, ClassifierDir)
	if err != nil {
		return nil, false
	}
	if _, err := fs.Stat(sub, "config.json"); err != nil {
		return nil, false
	}
	return sub, true
}

// ErrNotInstalled says a build carries no such model in weights/.
var ErrNotInstalled = errors.New("not installed in this build")

// LoadClassifier loads the embedded MNIST classifier; the error wraps
// ErrNotInstalled when the build has none.
func LoadClassifier() (*classifier.Model, error) {
	fsys, ok := Classifier()
	if !ok {
		return nil, fmt.Errorf("the MNIST classifier (weights/%s) is %w", ClassifierDir, ErrNotInstalled)
	}
	return classifier.LoadFS(fsys, ".", "embedded classifier")
}

// FS is the embedded folder.
func FS() fs.FS { return files }

// Default returns the default pipeline folder, or false when none is installed.
func Default() (fs.FS, bool) {
	sub, err := fs.Sub(files, DefaultPipelineDir)
	if err != nil {
		return nil, false
	}
	if _, err := fs.Stat(sub, "model_index.json"); err != nil {
		return nil, false
	}
	return sub, true
}
