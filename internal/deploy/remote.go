package deploy

import (
	"context"
	"strings"

	"github.com/murder-deploy/murder/internal/fleet"
)

// shellLib is prepended to every remote script. It finds daemons only
// through their pid files, and believes a pid file only when the process
// it names is this murder binary running the expected subcommand, so a
// recycled pid is never killed. It forks as little as it can: on a busy
// host every fork of a stop's polling loop counts.
const shellLib = `
murder_nl='
'
murder_alive() {
  [ -f "$1" ] || return 1
  p=; read -r p 2>/dev/null < "$1" || [ -n "$p" ] || return 1
  case "$p" in ''|*[!0-9]*) return 1;; esac
  [ -r "/proc/$p/cmdline" ] || return 1
  a=$(tr '\0' '\n' < "/proc/$p/cmdline" 2>/dev/null) || return 1
  a0=${a%%"$murder_nl"*}; a=${a#*"$murder_nl"}; a1=${a%%"$murder_nl"*}
  [ "$a0" = "$BIN" ] && [ "$a1" = "$2" ] || return 1
  echo "$p"
}
murder_gone() {
  murder_s=; read -r murder_s 2>/dev/null < "/proc/$1/stat" || return 0
  case "$murder_s" in *") Z "*|*") X "*) return 0;; esac
  return 1
}
murder_start() {
  pf=$1; out=$2; errf=$3; shift 3
  : > "$out"
  if command -v setsid >/dev/null 2>&1; then
    setsid "$BIN" "$@" </dev/null >>"$out" 2>>"$errf" &
  else
    nohup "$BIN" "$@" </dev/null >>"$out" 2>>"$errf" &
  fi
  echo $! > "$pf.tmp.$$" && mv -f "$pf.tmp.$$" "$pf"
}
murder_start_status() {
  pf=$1; log=$2; st=$3; shift 3
  : > "$log"
  if command -v setsid >/dev/null 2>&1; then
    setsid "$BIN" "$@" </dev/null >>"$log" 2>&1 3>"$st" &
  else
    nohup "$BIN" "$@" </dev/null >>"$log" 2>&1 3>"$st" &
  fi
  echo $! > "$pf.tmp.$$" && mv -f "$pf.tmp.$$" "$pf"
}
murder_stop() {
  if p=$(murder_alive "$1" "$2"); then
    kill "$p" 2>/dev/null || true
    i=0
    # Once the pid was ours and is signalled, its /proc entry tells when
    # it is gone; the kill -9 below still checks that it is ours.
    while [ $i -lt 500 ] && ! murder_gone "$p"; do sleep 0.02; i=$((i+1)); done
    if murder_alive "$1" "$2" >/dev/null; then kill -9 "$p" 2>/dev/null || true; sleep 0.2; fi
    echo "stopped $2 (pid $p)"
  else
    echo "$2 not running"
  fi
  rm -f "$1"
}
`

// tempCheck makes the temp path when it is missing, private (0700), and
// refuses one that is not a directory of this user's that no one else may
// write to: murder writes files of fixed names there (pid files, logs,
// the .torrent), and the shell follows any link planted at such a name.
const tempCheck = `if [ ! -e "$T" ] && [ ! -L "$T" ]; then mkdir -p "$(dirname "$T")"; mkdir -m 700 "$T" 2>/dev/null || true; fi
if [ -L "$T" ] || [ ! -d "$T" ]; then echo "temp path $T is not a directory (it may be a symlink): remove it, or set temp_path" >&2; exit 5; fi
if [ ! -O "$T" ]; then echo "temp path $T belongs to another user, who could plant links at the names murder writes there: remove it, or set temp_path to a directory of $(id -un)'s" >&2; exit 5; fi
case $(ls -ld "$T") in d????-??-*) ;; *) echo "temp path $T may be written by other users, who could plant links at the names murder writes there: set temp_path to a private directory (the default is /tmp/murder)" >&2; exit 5;; esac
`

// script builds a remote script: strict mode, the binary and temp path as
// variables, the helper functions, then the lines.
func (f *Fleet) script(lines ...string) string {
	return "set -e\n" + f.scriptBody(lines...)
}

// scriptBody is script without the strict mode, for code that runs after
// another script's lines.
func (f *Fleet) scriptBody(lines ...string) string {
	var b strings.Builder
	b.WriteString("BIN=" + fleet.Quote(f.inv.Binary()) + "\n")
	b.WriteString("T=" + fleet.Quote(f.inv.TempPath) + "\n")
	b.WriteString(shellLib)
	b.WriteString(tempCheck)
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// remoteTail returns the last lines of a remote log, for error messages.
func (f *Fleet) remoteTail(ctx context.Context, c *fleet.Conn, file string) string {
	out, _ := c.Output(ctx, "T="+fleet.Quote(f.inv.TempPath)+"; tail -n 3 "+file+" 2>/dev/null")
	return oneLine(out)
}

// remoteTemp is the path of name in the hosts' temp path.
func (f *Fleet) remoteTemp(name string) string {
	return strings.TrimSuffix(f.inv.TempPath, "/") + "/" + name
}

// Remote file names under the temp path.
func trackerPid() string            { return "$T/murder-tracker.pid" }
func trackerLog() string            { return "$T/murder-tracker.log" }
func seedPid(tag string) string     { return "$T/" + fleet.Quote("murder-seed-"+tag+".pid") }
func seedLog(tag string) string     { return "$T/" + fleet.Quote("murder-seed-"+tag+".log") }
func peerPid(tag string) string     { return "$T/" + fleet.Quote("murder-peer-"+tag+".pid") }
func peerLog(tag string) string     { return "$T/" + fleet.Quote("murder-peer-"+tag+".log") }
func peerJSON(tag string) string    { return "$T/" + fleet.Quote("murder-peer-"+tag+".json") } // older builds' progress file, still cleaned
func peerStatus(tag string) string  { return "$T/" + fleet.Quote("murder-peer-"+tag+".status") }
func peerTorrent(tag string) string { return "$T/" + fleet.Quote(torrentName(tag)) }
func peerSig(tag string) string     { return "$T/" + fleet.Quote(torrentName(tag)+".sig") }
func torrentName(tag string) string { return tag + ".tgz.torrent" }
func sigName(tag string) string     { return torrentName(tag) + ".sig" }
