// Package bundle packs a directory into a deterministic archive (tar,
// tar+gzip or tar+zstd), hashes it into a .torrent in the same pass, and
// unpacks such archives safely and atomically on the receiving side.
//
// The writing side (Create) walks the tree in sorted order and writes
// numeric owner 0 with no user or group names, so the same tree always
// gives the same bytes and the same info hash.
//
// The reading side (Extract, Publish) never writes outside the destination,
// whatever the archive holds, and leaves the destination either complete or
// exactly as it was. Publish builds the new tree in a temporary directory
// beside the destination and renames it into place; Stage does the same
// for a tree that is filled over a longer time (a peer's download).
//
// Extraction is also bounded, against decompression bombs and runaway
// archives: by default the contents of regular files may take the space
// free on the destination's file system less a reserve (the larger of
// 64 MiB and 1% of the file system), and an archive may hold at most
// DefaultMaxEntries entries. Each file is checked against the bound by its
// declared size before any of it is written, so a bomb fails at once with
// ErrTooLarge, and Publish removes what was written. Limits overrides both.
package bundle
