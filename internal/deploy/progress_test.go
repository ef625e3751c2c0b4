package deploy

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/murder-deploy/murder/internal/fleet"
	"github.com/murder-deploy/murder/internal/progress"
)

func TestProgressLine(t *testing.T) {
	var out bytes.Buffer
	p := newStatusLine(&out, false, "peer", 4)
	p.update("a", progress.Event{Event: "progress", BytesDone: 50 << 20, BytesTotal: 100 << 20, DownRate: 10 << 20})
	p.update("b", progress.Event{Event: "progress", BytesDone: 30 << 20, BytesTotal: 100 << 20, DownRate: 10 << 20})
	p.finish("c", true, "")
	p.finish("d", false, "connect: refused")
	// c finished (counted whole), d failed (nothing), a and b at 80 MiB of
	// 200; unknown totals are taken from the hosts that reported.
	got := p.line()
	for _, want := range []string{"peer: 1/4 hosts done, 1 failed", "80.0 MiB of 400.0 MiB", "20.0 MiB/s", "ETA 16s"} {
		if !strings.Contains(got, want) {
			t.Errorf("line %q lacks %q", got, want)
		}
	}
	if s := out.String(); !strings.Contains(s, "c ") || !strings.Contains(s, "d                        FAILED: connect: refused") {
		t.Errorf("host lines:\n%s", s)
	}
}

func TestPrintFailures(t *testing.T) {
	err := errors.Join(
		&fleet.HostError{Host: fleet.Host{Spec: "w02"}, Err: errors.New("connect:\n refused")},
		&fleet.HostError{Host: fleet.Host{Spec: "w01"}, Err: errors.New("host key")},
		&fleet.HostError{Host: fleet.Host{Spec: "w01"}, Err: errors.New("later step")},
	)
	var out bytes.Buffer
	PrintFailures(&out, fleet.NewFailedHostsError(err, 5), 5)
	want := "\nFAILED HOSTS (2 of 5)\nHOST  ERROR\nw01   host key\nw02   connect: refused\n"
	if out.String() != want {
		t.Errorf("got\n%q\nwant\n%q", out.String(), want)
	}
	if got := fleet.NewFailedHostsError(err, 5).Error(); got != "2 of 5 hosts failed" {
		t.Errorf("error: got %q", got)
	}
	out.Reset()
	PrintFailures(&out, nil, 5)
	if out.Len() != 0 {
		t.Errorf("no failures printed %q", out.String())
	}
}

func TestRemotePath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/srv/build", `'/srv/build'`},
		{"~/files", `"$HOME"/'files'`},
		{"~", `"$HOME"`},
		{"~bob/x", `'~bob/x'`},
		{"it's", `'it'\''s'`},
	}
	for _, tt := range tests {
		if got := remotePath(tt.in); got != tt.want {
			t.Errorf("remotePath(%q): got %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestValidTag(t *testing.T) {
	for _, ok := range []string{"v42", "Deploy20100101", "build-20260102-030405", "a.b_c"} {
		if err := ValidTag(ok); err != nil {
			t.Errorf("ValidTag(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a/b", "..", "a..b", "x\x00", "a b", "$(reboot)", "a;b", "`x`", "v42\n", ".v42", "v\x1b[2J"} {
		if err := ValidTag(bad); err == nil {
			t.Errorf("ValidTag(%q): got nil, want an error", bad)
		}
	}
}

func TestProgressHold(t *testing.T) {
	var b strings.Builder
	p := newStatusLine(&b, false, "peer", 2)
	p.hold()
	p.finish("h1", false, "connect: refused")
	if b.Len() != 0 || p.opened() {
		t.Fatalf("held progress wrote %q", b.String())
	}
	p.open(func() { b.WriteString("==> peer\n") })
	p.open(func() { b.WriteString("==> peer again\n") })
	p.finish("h2", true, "")
	got := b.String()
	if !strings.HasPrefix(got, "==> peer\n  h1") || !strings.Contains(got, "FAILED: connect: refused") || !strings.Contains(got, "h2") || strings.Contains(got, "again") {
		t.Errorf("got %q, want the header once, then h1's failure, then h2", got)
	}
}
