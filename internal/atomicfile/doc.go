// Package atomicfile writes files so that a reader, or a crash, never sees a
// half-written one: the bytes go to a temporary file in the same directory,
// which is synced and then renamed over the destination.
package atomicfile
