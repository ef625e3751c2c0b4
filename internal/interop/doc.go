// Package interop holds murder's interoperability tests against third-party
// BitTorrent software: aria2c, libtorrent (python3-libtorrent),
// transmission and Debian's opentracker. It has no code of its own; the
// tests drive the murder binary and the engine over loopback.
package interop
