package weights_test

import (
	"context"
	"testing"

	"github.com/ldm-go/ldm/internal/classifier"
	"github.com/ldm-go/ldm/internal/dataset"
	"github.com/ldm-go/ldm/weights"
)

// The shipped classifier reads the first 1,000 MNIST test digits at least
// as well as its model card says it reads all 10,000 (99.28%), less a margin
// for the smaller sample.
func TestEmbeddedClassifier(t *testing.T) {
	fsys, ok := weights.Classifier()
	if !ok {
		t.Fatal("no classifier embedded")
	}
	m, err := classifier.LoadFS(fsys, ".", "embedded")
	if err != nil {
		t.Fatal(err)
	}
	test, err := dataset.MNIST("test")
	if err != nil {
		t.Fatal(err)
	}
	sub := &dataset.InMemory{C: 1, H: 32, W: 32, Classes: 10, Images: test.Images[:1000*32*32], Labels: test.Labels[:1000]}
	acc, err := classifier.Accuracy(context.Background(), m, sub, 250)
	if err != nil {
		t.Fatal(err)
	}
	if acc < 0.98 {
		t.Errorf("accuracy %.4f on 1,000 test digits, want at least 0.98", acc)
	}
}
