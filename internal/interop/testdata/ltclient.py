#!/usr/bin/python3
"""Seed or download one torrent with libtorrent, for murder's interop tests
and transfer benchmark. Run with /usr/bin/python3 (Debian's
python3-libtorrent is importable only there).

  ltclient.py seed TORRENT DIR [--port N] [--peer HOST:PORT] [--high-performance]
  ltclient.py download TORRENT DIR [--port N] [--peer HOST:PORT] [--high-performance] [--exit-on-complete]

Prints machine-readable lines on stdout:
  listening PORT       once the session listens
  seeding              once every piece is verified (seed: after the check;
                       download: when the download is complete)
and exits on SIGTERM/SIGINT, or after "seeding" with --exit-on-complete.
Status goes to stderr every second.
"""

import argparse
import signal
import sys
import time

import libtorrent as lt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["seed", "download"])
    ap.add_argument("torrent")
    ap.add_argument("dir")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--peer", action="append", default=[])
    ap.add_argument("--high-performance", action="store_true")
    ap.add_argument("--exit-on-complete", action="store_true")
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    settings = lt.high_performance_seed() if args.high_performance else lt.default_settings()
    settings.update({
        "listen_interfaces": "127.0.0.1:%d" % args.port,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        "out_enc_policy": int(lt.enc_policy.disabled),
        "in_enc_policy": int(lt.enc_policy.enabled),
        "alert_mask": int(lt.alert.category_t.error_notification
                          | lt.alert.category_t.status_notification),
        "user_agent": "murder-interop libtorrent/" + lt.__version__,
    })
    ses = lt.session(settings)

    deadline = time.time() + 10
    while ses.listen_port() == 0 and time.time() < deadline:
        time.sleep(0.01)
    print("listening %d" % ses.listen_port(), flush=True)

    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(args.torrent)
    params.save_path = args.dir
    h = ses.add_torrent(params)
    for p in args.peer:
        host, port = p.rsplit(":", 1)
        h.connect_peer((host.strip("[]"), int(port)), 0)

    end = time.time() + args.timeout
    announced = False
    last = 0.0
    while not stop and time.time() < end:
        for a in ses.pop_alerts():
            if a.category() & lt.alert.category_t.error_notification:
                print("alert: %s" % a.message(), file=sys.stderr, flush=True)
        st = h.status()
        if not announced and st.is_seeding:
            print("seeding", flush=True)
            announced = True
            if args.exit_on_complete:
                break
        now = time.time()
        if now - last >= 1:
            last = now
            print("state=%s progress=%.3f down=%d up=%d peers=%d" % (
                st.state, st.progress, st.download_rate, st.upload_rate, st.num_peers),
                file=sys.stderr, flush=True)
        time.sleep(0.005 if not announced else 0.1)
    if not announced:
        print("timed out" if not stop else "stopped before complete", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
