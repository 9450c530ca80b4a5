package lab

import (
	"strings"
	"testing"
)

// The metrics_address line: only when the lab asks for it, on the node's
// own address.
func TestNodeYAMLMetricsAddress(t *testing.T) {
	n := nodeState{Name: "node2", Addr: "192.0.2.12", Dir: "/l/node2", Socket: "/l/node2/edged.sock"}
	if got := string(nodeYAML(n, nodeConf{site: "lab"}, 7946, "")); strings.Contains(got, "metrics_address") {
		t.Errorf("metrics off, config has it:\n%s", got)
	}
	got := string(nodeYAML(n, nodeConf{site: "lab", metricsPort: 9464}, 7946, ""))
	if !strings.Contains(got, "metrics_address: \"192.0.2.12:9464\"\n") {
		t.Errorf("config\n%s\nwant metrics_address: \"192.0.2.12:9464\"", got)
	}
	if err := (Config{MetricsPort: 70000}).Validate(); err == nil || !strings.Contains(err.Error(), "metrics port") {
		t.Errorf("Validate(MetricsPort 70000) = %v", err)
	}
}
