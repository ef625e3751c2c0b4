package metricstest

import (
	"strings"
	"testing"
)

const text = `# HELP murder_a_total A counter.
# TYPE murder_a_total counter
murder_a_total{event="started",result="ok"} 3
murder_a_total{event="started",result="failure"} 1
murder_a_total{event="stopped",result="ok"} 0
# HELP murder_b A gauge.
# TYPE murder_b gauge
murder_b 2.5
# HELP murder_c_seconds A histogram.
# TYPE murder_c_seconds histogram
murder_c_seconds_bucket{le="0.1"} 4
murder_c_seconds_bucket{le="+Inf"} 7
murder_c_seconds_sum 1.5
murder_c_seconds_count 7
`

func TestValue(t *testing.T) {
	fams, err := Parse(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		labels []string
		want   float64
		ok     bool
	}{
		{"murder_a_total", []string{"event", "started", "result", "ok"}, 3, true},
		{"murder_a_total", []string{"result", "failure"}, 1, true},
		{"murder_a_total", []string{"event", "stopped"}, 0, true},
		{"murder_a_total", []string{"event", "started"}, 0, false}, // two series
		{"murder_a_total", []string{"event", "completed"}, 0, false},
		{"murder_b", nil, 2.5, true},
		{"murder_c_seconds", nil, 7, true},
		{"murder_missing", nil, 0, false},
	}
	for _, tt := range tests {
		got, ok := fams.Value(tt.name, tt.labels...)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Value(%s, %v) = %v, %v; want %v, %v", tt.name, tt.labels, got, ok, tt.want, tt.ok)
		}
	}
	for name, want := range map[string]string{"murder_a_total": "counter", "murder_b": "gauge", "murder_c_seconds": "histogram", "nope": ""} {
		if got := fams.Type(name); got != want {
			t.Errorf("Type(%s) = %q, want %q", name, got, want)
		}
	}
	if _, err := Parse(strings.NewReader("murder_a_total{ 1\n")); err == nil {
		t.Error("Parse accepted a broken line")
	}
}
