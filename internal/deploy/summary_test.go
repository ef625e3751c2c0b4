package deploy

import (
	"bufio"
	"bytes"
	"regexp"
	"slices"
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

var inPlaceLine = regexp.MustCompile(`(?m)^files in place on the last of them after (\S+); whole run (\S+)$`)

// checkSummary checks a deploy's printed summary: the time until the
// last peer had its files in place is within the whole run, and with -v
// every step in want has a line giving when it started and how long it
// took, each ending within the whole run.
func checkSummary(t *testing.T, out string, want []string) {
	t.Helper()
	m := inPlaceLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("summary lacks the time to files in place and the whole run's:\n%s", out)
	}
	inPlace, err1 := time.ParseDuration(m[1])
	wall, err2 := time.ParseDuration(m[2])
	if err1 != nil || err2 != nil {
		t.Fatalf("summary times %q, %q: %v, %v", m[1], m[2], err1, err2)
	}
	if inPlace <= 0 || inPlace > wall {
		t.Errorf("files in place after %s, whole run %s: want 0 < in place <= whole run", inPlace, wall)
	}
	var got []string
	sc := bufio.NewScanner(strings.NewReader(out[strings.Index(out, m[0]):]))
	inTable := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "STEP":
			inTable = true
		case inTable && len(f) == 3:
			start, err1 := time.ParseDuration(f[1])
			took, err2 := time.ParseDuration(f[2])
			if err1 != nil || err2 != nil {
				t.Errorf("step line %q: %v, %v", sc.Text(), err1, err2)
				continue
			}
			// Each figure is rounded to at most 100 ms.
			if start+took > wall+200*time.Millisecond {
				t.Errorf("step %s started at %s and took %s, past the whole run's %s", f[0], start, took, wall)
			}
			got = append(got, f[0])
		case inTable:
			inTable = false
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("summary has steps %q, want %q among them:\n%s", got, w, out)
		}
	}
}

func TestSummaryPrint(t *testing.T) {
	s := &Summary{
		Hosts: 4, Succeeded: 3, Bytes: 3 << 20,
		Wall:         2500 * time.Millisecond,
		FilesInPlace: 2100 * time.Millisecond,
		Steps: []Step{
			{Name: "distribute-files", Start: 0, Took: 300 * time.Millisecond},
			{Name: "peer", Start: 400 * time.Millisecond, Took: 1700 * time.Millisecond},
		},
	}
	for _, verbose := range []bool{false, true} {
		var b bytes.Buffer
		s.print(&b, "hosts", verbose)
		out := b.String()
		if !strings.Contains(out, "deployed to 3/4 hosts: 3.0 MiB in 2.5s") {
			t.Errorf("verbose=%v: no totals line:\n%s", verbose, out)
		}
		if verbose {
			checkSummary(t, out, []string{"distribute-files", "peer"})
		} else if strings.Contains(out, "STEP") {
			t.Errorf("steps printed without -v:\n%s", out)
		}
	}
}

func TestSteps(t *testing.T) {
	st := newSteps(time.Now().Add(-time.Second))
	end := st.begin("a")
	time.Sleep(time.Millisecond)
	end()
	st.begin("b") // never ends: took stays 0
	got := st.list()
	if len(got) != 2 || got[0].Name != "a" || got[1].Name != "b" {
		t.Fatalf("got %+v, want steps a and b", got)
	}
	if got[0].Start < time.Second || got[0].Took <= 0 || got[1].Took != 0 {
		t.Errorf("got %+v: want a starting after 1s with a duration, b without", got)
	}
}
