// Package batchjob runs one job over a file or a folder of images: it lists
// the inputs in a fixed order, keeps a deterministic share of them for one
// shard of a job array, derives each file's random stream from its name,
// and processes files concurrently up to a worker limit, collecting every
// failure instead of stopping at the first.
//
// Everything a file's result depends on comes from the file itself and its
// relative path: a folder split into n shards (Kubernetes indexed Jobs,
// Slurm job arrays) yields exactly the files one run yields, whatever the
// worker count or the order in which files finish.
package batchjob
