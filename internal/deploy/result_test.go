package deploy

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestRecorderResult(t *testing.T) {
	var r recorder
	r.add("web1", time.Second, 100, nil)
	r.add("web1", 500*time.Millisecond, 0, nil)
	r.add("web2", time.Second, 100, errors.New("hook failed"))
	r.add("web2", time.Second, 0, errors.New("a later error"))
	r.add("web3", time.Second, 0, &unreachableError{errors.New("connection refused")})
	r.add("tracker", time.Second, 0, errors.New("tracker exited"))
	r.add("seeder", time.Second, 0, nil)
	res := r.result("deploy", "v1", []string{"web1", "web2", "web3", "web4"}, 3*time.Second, errors.New("deploy: stopped"))
	want := []HostResult{
		{Host: "web1", Status: StatusOK, Seconds: 1.5, Bytes: 100},
		{Host: "web2", Status: StatusFailed, Error: "hook failed", Seconds: 2, Bytes: 100},
		{Host: "web3", Status: StatusUnreachable, Error: "connection refused", Seconds: 1},
		{Host: "web4", Status: StatusFailed, Error: errNotReached},
		{Host: "tracker", Status: StatusFailed, Error: "tracker exited", Seconds: 1},
	}
	if !reflect.DeepEqual(res.Hosts, want) {
		t.Fatalf("hosts:\n%+v\nwant\n%+v", res.Hosts, want)
	}
	if wantT := (Totals{Hosts: 5, OK: 1, Failed: 3, Unreachable: 1, Bytes: 200, Seconds: 3}); res.Totals != wantT {
		t.Errorf("totals %+v, want %+v", res.Totals, wantT)
	}
	if res.Error != "deploy: stopped" || !res.Started() {
		t.Errorf("error %q, started %v", res.Error, res.Started())
	}
	if (&recorder{}).result("peer", "v1", []string{"a"}, 0, nil).Started() {
		t.Error("a run that reached no host says it started")
	}
}

func TestWaves(t *testing.T) {
	for _, tt := range []struct {
		n, canary, batch int
		want             []int
	}{
		{0, 1, 1, nil},
		{4, 0, 0, []int{4}},
		{4, 1, 0, []int{1, 3}},
		{4, 1, 1, []int{1, 1, 1, 1}},
		{5, 2, 2, []int{2, 2, 1}},
		{3, 5, 1, []int{3}},
		{7, 0, 3, []int{3, 3, 1}},
	} {
		if got := waves(tt.n, tt.canary, tt.batch); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("waves(%d, canary %d, batch %d) = %v, want %v", tt.n, tt.canary, tt.batch, got, tt.want)
		}
	}
}
