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
// exactly as it was.
package bundle
