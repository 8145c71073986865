//go:build !amd64

package kernel

// siluPaths lists the SiLU implementations this architecture runs.
var siluPaths = []siluPath{siluGoPath}
