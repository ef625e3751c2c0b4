package metrics

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/murder-deploy/murder/internal/testenv"
)

// monitoring is where the Grafana dashboard and the alert rules live.
const monitoring = "../../docs/monitoring"

var metricName = regexp.MustCompile(`\bmurder_[a-z_]+`)

// documented returns the metric names docs/metrics.md describes.
func documented(t *testing.T) map[string]bool {
	t.Helper()
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, n := range metricName.FindAllString(string(doc), -1) {
		names[n] = true
	}
	return names
}

// checkNames fails t for every murder metric in expr that docs/metrics.md
// does not describe.
func checkNames(t *testing.T, where, expr string, names map[string]bool) {
	t.Helper()
	for _, n := range metricName.FindAllString(expr, -1) {
		base := n
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			base = strings.TrimSuffix(base, suf)
		}
		if !names[base] {
			t.Errorf("%s uses %s, which docs/metrics.md does not describe", where, n)
		}
	}
}

// TestDashboard checks that the Grafana dashboard is JSON whose panels
// query only metrics murder serves.
func TestDashboard(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(monitoring, "murder-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("murder-dashboard.json: %v", err)
	}
	if dash.Title == "" || len(dash.Panels) == 0 {
		t.Fatalf("murder-dashboard.json has title %q and %d panels", dash.Title, len(dash.Panels))
	}
	names := documented(t)
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			if !metricName.MatchString(tg.Expr) {
				t.Errorf("panel %q: %q queries no murder metric", p.Title, tg.Expr)
			}
			checkNames(t, "panel "+p.Title, tg.Expr, names)
		}
	}
}

// TestAlertRules checks the alert rules with promtool (check rules, and
// their unit tests) and that they use only metrics murder serves.
func TestAlertRules(t *testing.T) {
	rules := filepath.Join(monitoring, "murder-alerts.yml")
	data, err := os.ReadFile(rules)
	if err != nil {
		t.Fatal(err)
	}
	checkNames(t, "murder-alerts.yml", string(data), documented(t))

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		promtool = "../../bin/promtool" // where scripts/setup.sh puts it
	}
	testenv.Require(t, promtool)
	for _, args := range [][]string{
		{"check", "rules", "murder-alerts.yml"},
		{"test", "rules", "murder-alerts-test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = monitoring
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
