// Package tracker implements murder's HTTP BitTorrent tracker and the
// announce client that seeders and peers use to reach it.
//
// The wire format follows BEP 3 (announce), BEP 23 (compact peers), BEP 7
// (IPv6 peers in peers6), BEP 12 (announce-list tiers) and BEP 48 (scrape).
//
// The server side is a [Server] (an http.Handler with Serve and Run) backed by
// a [Store]; [MemStore] is the sharded in-memory store used by default. The
// client side is a [Client] that announces to the trackers of a torrent and
// fails over across its tiers.
package tracker
