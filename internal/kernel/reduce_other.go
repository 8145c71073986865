//go:build !amd64

package kernel

var reducePaths = []reducePath{reduceGoPath}
