package deploy

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/murder-deploy/murder/internal/fleet"
)

func TestDatacenterReports(t *testing.T) {
	if got, _ := datacenterReports([]fleet.Host{{Name: "a"}, {Name: "b"}}); got != nil {
		t.Errorf("peers of no datacenter: got %+v, want nil", got)
	}
	got, index := datacenterReports([]fleet.Host{{Name: "a", Datacenter: "west"}, {Name: "b", Datacenter: "east"}, {Name: "c"}, {Name: "d", Datacenter: "west"}})
	want := []DatacenterReport{{Name: "", Hosts: 1}, {Name: "east", Hosts: 1}, {Name: "west", Hosts: 2}}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] || index[want[i].Name] != i {
			t.Errorf("report %d: got %+v (index %d), want %+v", i, got[i], index[want[i].Name], want[i])
		}
	}
}

func TestSummaryPrintsDatacenters(t *testing.T) {
	s := &Summary{Hosts: 3, Succeeded: 2, Bytes: 2 << 20, Wall: 20 * time.Second, FilesInPlace: 15 * time.Second,
		Datacenters: []DatacenterSummary{
			{Name: "east", Hosts: 2, Succeeded: 2, Bytes: 2 << 20, FilesInPlace: 15 * time.Second},
			{Name: "", Hosts: 1},
		}}
	var b bytes.Buffer
	s.print(&b, "hosts", false)
	out := b.String()
	for _, want := range []string{"DATACENTER", "east", "2/2", "2.0 MiB", "15s", "(none)", "0/1"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	(&Summary{Hosts: 1, Succeeded: 1}).print(&b, "hosts", false)
	if strings.Contains(b.String(), "DATACENTER") {
		t.Errorf("summary of a deploy without datacenters has a datacenter table:\n%s", b.String())
	}
}
