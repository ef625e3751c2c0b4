import sys, libtorrent as lt
src, out, pad = sys.argv[1], sys.argv[2], sys.argv[3] == "pad"
fs = lt.file_storage()
lt.add_files(fs, src)
flags = lt.create_torrent.v1_only
if pad:
    flags |= lt.create_torrent.canonical_files
t = lt.create_torrent(fs, 16384, flags=flags)
t.add_tracker("http://127.0.0.1:8998/announce")
t.set_creator("libtorrent")
lt.set_piece_hashes(t, __import__("os").path.dirname(src))
open(out, "wb").write(lt.bencode(t.generate()))
