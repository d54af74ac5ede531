package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// repoRoot is the repository's root, seen from this package's directory.
const repoRoot = "../.."

// exporterMetrics are the metrics the dashboard reads from
// redis_exporter (docker-compose.yml's redis-exporter), not from Tocsin,
// with their labels.
var exporterMetrics = map[string][]string{
	"redis_memory_used_bytes": nil,
	"redis_memory_max_bytes":  nil,
}

// targetLabels are the labels Prometheus adds to every scraped series
// (job, instance) and a histogram's bucket label.
var targetLabels = []string{"job", "instance", "le"}

// registryMetrics is every metric name newRegistry describes, with its
// labels.
func registryMetrics(t *testing.T) map[string][]string {
	t.Helper()
	_, opts := redistest.New(t)
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: opts.Addr, DB: opts.DB})
	t.Cleanup(func() { _ = insp.Close() })
	reg, _ := newRegistry(insp)
	descs := make(chan *prometheus.Desc)
	go func() {
		reg.Describe(descs)
		close(descs)
	}()
	name := regexp.MustCompile(`^Desc\{fqName: "([^"]+)"`)
	vars := regexp.MustCompile(`variableLabels: \{([^}]*)\}\}$`)
	out := map[string][]string{}
	for d := range descs {
		s := d.String()
		m := name.FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("unparsed descriptor %s", s)
		}
		var labels []string
		if v := vars.FindStringSubmatch(s); v != nil && v[1] != "" {
			labels = strings.Split(v[1], ",")
		}
		out[m[1]] = labels
	}
	return out
}

// selector is one metric a PromQL expression reads, with the labels it
// matches on.
type selector struct {
	name   string
	labels []string
}

var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promRange    = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring)\s*\(([^)]*)\)`)
	promMatchers = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}`)
	promLabel    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	promIdent    = regexp.MustCompile(`[a-zA-Z0-9_:.$]+`)
	promKeywords = []string{"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset", "inf", "nan"}
)

// parsePromQL returns the metrics expr selects (every identifier that is
// neither a function, a keyword nor a label) and the labels it groups by.
func parsePromQL(expr string) (sels []selector, grouping []string) {
	e := promString.ReplaceAllString(expr, `""`)
	e = promRange.ReplaceAllString(e, "")
	for _, m := range promGrouping.FindAllStringSubmatch(e, -1) {
		for l := range strings.SplitSeq(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				grouping = append(grouping, l)
			}
		}
	}
	e = promGrouping.ReplaceAllString(e, " ")
	for _, m := range promMatchers.FindAllStringSubmatch(e, -1) {
		s := selector{name: m[1]}
		for _, l := range promLabel.FindAllStringSubmatch(m[2], -1) {
			s.labels = append(s.labels, l[1])
		}
		sels = append(sels, s)
	}
	e = promMatchers.ReplaceAllString(e, " ")
	for _, loc := range promIdent.FindAllStringIndex(e, -1) {
		word := e[loc[0]:loc[1]]
		if c := word[0]; c >= '0' && c <= '9' || c == '.' || c == '$' || slices.Contains(promKeywords, word) {
			continue // a number, a Grafana variable or a keyword
		}
		if strings.HasPrefix(strings.TrimLeft(e[loc[1]:], " "), "(") {
			continue // a function
		}
		sels = append(sels, selector{name: word})
	}
	return sels, grouping
}

func TestParsePromQL(t *testing.T) {
	t.Parallel()
	sels, by := parsePromQL(`histogram_quantile(0.99, sum by (channel, le) (rate(a_bucket{x="}", y=~"a|b"}[5m]))) / clamp_min(sum(b), 1e-9) + on (z) c`)
	got := []string{}
	for _, s := range sels {
		got = append(got, s.name+"{"+strings.Join(s.labels, ",")+"}")
	}
	if want := []string{"a_bucket{x,y}", "b{}", "c{}"}; !slices.Equal(got, want) {
		t.Errorf("selectors %v, want %v", got, want)
	}
	if want := []string{"channel", "le", "z"}; !slices.Equal(by, want) {
		t.Errorf("grouping %v, want %v", by, want)
	}
}

// dashboardExprs is every PromQL expression of the dashboard's panels
// (rows' nested panels included), by panel title.
func dashboardExprs(t *testing.T) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "deploy/grafana/dashboards/tocsin.json"))
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var d struct {
		UID    string            `json:"uid"`
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	out := map[string][]string{}
	var walk func([]json.RawMessage)
	walk = func(ps []json.RawMessage) {
		for _, raw := range ps {
			var p panel
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatalf("panel %s: %v", raw, err)
			}
			for _, tg := range p.Targets {
				out[p.Title] = append(out[p.Title], tg.Expr)
			}
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// TestDashboardMetricsExist: every metric the Grafana dashboard queries is
// one newRegistry exports (or redis_exporter's), and every label it
// matches or groups on is one of that metric's; so the dashboard cannot
// drift from the code. It also covers what operators look for.
func TestDashboardMetricsExist(t *testing.T) {
	t.Parallel()
	known := registryMetrics(t)
	for _, want := range []string{"tocsin_deliveries_total", "tocsin_queue_tasks", "tocsin_queue_latency_seconds", "go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := known[want]; !ok {
			t.Fatalf("registry lacks %s: the descriptor parsing is broken (%d metrics)", want, len(known))
		}
	}
	lookup := func(name string) ([]string, bool) {
		if l, ok := known[name]; ok {
			return l, true
		}
		if l, ok := exporterMetrics[name]; ok {
			return l, true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if l, ok := known[strings.TrimSuffix(name, suffix)]; ok && strings.HasSuffix(name, suffix) {
				return l, true
			}
		}
		return nil, false
	}
	exprs := dashboardExprs(t)
	used := map[string]bool{}
	for title, list := range exprs {
		for _, expr := range list {
			sels, grouping := parsePromQL(expr)
			if len(sels) == 0 {
				t.Errorf("panel %q: no metric in %s", title, expr)
			}
			var labels []string
			for _, s := range sels {
				l, ok := lookup(s.name)
				if !ok {
					t.Errorf("panel %q: metric %q is not exported by Tocsin (newRegistry) nor redis_exporter: %s", title, s.name, expr)
					continue
				}
				used[s.name] = true
				labels = append(labels, l...)
				for _, sl := range s.labels {
					if !slices.Contains(l, sl) && !slices.Contains(targetLabels, sl) {
						t.Errorf("panel %q: %s has no label %q (has %v): %s", title, s.name, sl, l, expr)
					}
				}
			}
			for _, g := range grouping {
				if !slices.Contains(labels, g) && !slices.Contains(targetLabels, g) {
					t.Errorf("panel %q: grouping by %q, a label none of its metrics has: %s", title, g, expr)
				}
			}
		}
	}
	// What the dashboard is for: throughput per channel, lag, failures,
	// rate-limit waits, the SMS budget, catch-up and Redis memory.
	for _, name := range []string{"tocsin_deliveries_total", "tocsin_queue_latency_seconds", "tocsin_queue_tasks", "tocsin_sms_budget_spent",
		"tocsin_sms_budget_exhausted_total", "tocsin_catchup_sends_total", "tocsin_send_duration_seconds_bucket", "redis_memory_used_bytes",
		"tocsin_deliveries_not_sent_total", "tocsin_ratelimit_wait_seconds_bucket", "tocsin_ratelimit_wait_seconds_sum"} {
		if !used[name] {
			t.Errorf("no panel reads %s", name)
		}
	}
}

// TestComposeMetricsProfile: docker compose --profile metrics adds
// Prometheus, Grafana and redis_exporter, and only with that profile;
// every file they mount is in the repository; Prometheus scrapes the
// tocsin service's port and the exporter; Grafana's provisioning points
// at Prometheus and at where the dashboard is mounted. (No compose
// binary here: this reads the YAML.)
func TestComposeMetricsProfile(t *testing.T) {
	t.Parallel()
	type service struct {
		Image       string            `yaml:"image"`
		Profiles    []string          `yaml:"profiles"`
		Ports       []string          `yaml:"ports"`
		Volumes     []string          `yaml:"volumes"`
		Environment map[string]string `yaml:"environment"`
		DependsOn   yaml.Node         `yaml:"depends_on"`
	}
	var compose struct {
		Services map[string]service `yaml:"services"`
		Volumes  map[string]any     `yaml:"volumes"`
	}
	readYAML(t, "docker-compose.yml", &compose)

	for _, name := range []string{"redis", "tocsin"} {
		if s, ok := compose.Services[name]; !ok || len(s.Profiles) != 0 {
			t.Errorf("service %s: %+v, want it without a profile (plain `docker compose up`)", name, s)
		}
	}
	mounts := map[string]string{} // container path -> repository path
	for _, name := range []string{"prometheus", "grafana", "redis-exporter"} {
		s, ok := compose.Services[name]
		if !ok {
			t.Fatalf("no service %s", name)
		}
		if !slices.Equal(s.Profiles, []string{"metrics"}) {
			t.Errorf("service %s has profiles %v, want [metrics]", name, s.Profiles)
		}
		if s.Image == "" || !strings.Contains(s.Image, ":") || strings.HasSuffix(s.Image, ":latest") {
			t.Errorf("service %s image %q: want a pinned tag", name, s.Image)
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("service %s publishes %s beyond localhost", name, p)
			}
		}
		for _, v := range s.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) < 2 {
				t.Errorf("service %s: volume %q", name, v)
				continue
			}
			if !strings.HasPrefix(parts[0], "./") {
				if _, ok := compose.Volumes[parts[0]]; !ok {
					t.Errorf("service %s mounts volume %q, not declared", name, parts[0])
				}
				continue
			}
			if _, err := os.Stat(filepath.Join(repoRoot, parts[0])); err != nil {
				t.Errorf("service %s mounts %s: %v", name, parts[0], err)
			}
			mounts[parts[1]] = parts[0]
		}
	}

	// Prometheus scrapes the tocsin service where it listens.
	var prom struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if mounts["/etc/prometheus/prometheus.yml"] == "" {
		t.Fatal("prometheus: no configuration mounted at /etc/prometheus/prometheus.yml")
	}
	readYAML(t, mounts["/etc/prometheus/prometheus.yml"], &prom)
	targets := map[string][]string{}
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			targets[sc.JobName] = append(targets[sc.JobName], st.Targets...)
		}
	}
	tocsinPort := ""
	if ps := compose.Services["tocsin"].Ports; len(ps) > 0 {
		tocsinPort = ps[0][strings.LastIndex(ps[0], ":")+1:]
	}
	if want := "tocsin:" + tocsinPort; !slices.Contains(targets["tocsin"], want) {
		t.Errorf("job tocsin scrapes %v, want %s", targets["tocsin"], want)
	}
	if !slices.Contains(targets["redis"], "redis-exporter:9121") {
		t.Errorf("job redis scrapes %v, want redis-exporter:9121", targets["redis"])
	}

	// Grafana: the data source is that Prometheus, the dashboard provider
	// reads the directory the dashboard is mounted at.
	prov := mounts["/etc/grafana/provisioning"]
	if prov == "" {
		t.Fatal("grafana: no provisioning mounted at /etc/grafana/provisioning")
	}
	var ds struct {
		Datasources []struct {
			UID, Type, URL string
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join(prov, "datasources/prometheus.yml"), &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != "http://prometheus:9090" || ds.Datasources[0].UID != "prometheus" {
		t.Errorf("data sources %+v, want one prometheus at http://prometheus:9090, uid prometheus (the dashboard's default)", ds.Datasources)
	}
	var dp struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join(prov, "dashboards/tocsin.yml"), &dp)
	if len(dp.Providers) != 1 || dp.Providers[0].Type != "file" {
		t.Fatalf("dashboard providers %+v, want one of type file", dp.Providers)
	}
	dir := mounts[dp.Providers[0].Options.Path]
	if dir == "" {
		t.Fatalf("the dashboard provider reads %s, where nothing is mounted", dp.Providers[0].Options.Path)
	}
	if _, err := os.Stat(filepath.Join(repoRoot, dir, "tocsin.json")); err != nil {
		t.Errorf("dashboard directory %s: %v", dir, err)
	}
	home := compose.Services["grafana"].Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
	if home != dp.Providers[0].Options.Path+"/tocsin.json" {
		t.Errorf("home dashboard %q, want %s/tocsin.json", home, dp.Providers[0].Options.Path)
	}
}

// readYAML decodes the repository's file p (relative to its root) into v,
// refusing fields v does not know.
func readYAML(t *testing.T, p string, v any) {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, p))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
}
