package site

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"edge/internal/strictyaml"
)

// Strategy is how a change reaches the target nodes.
type Strategy string

// Rollout strategies.
const (
	// Parallel applies on every target node at once.
	Parallel Strategy = "parallel"
	// Rolling applies on MaxUnavailable nodes at a time.
	Rolling Strategy = "rolling"
)

// Bounds and default of Policy.ConfirmTimeout.
const (
	MinConfirmTimeout     = 10 * time.Second
	MaxConfirmTimeout     = 24 * time.Hour
	DefaultConfirmTimeout = 5 * time.Minute
	// MaxUnavailableLimit bounds a count in max_unavailable.
	MaxUnavailableLimit = 1000
)

// Policy is the rollout policy of a site document.
type Policy struct {
	Strategy Strategy
	// MaxUnavailable is how many nodes a rolling change touches at once, as
	// a count; or, when MaxUnavailablePercent is set instead, as a
	// percentage (1-100) of the target nodes. Both are 0 for Parallel.
	MaxUnavailable        int
	MaxUnavailablePercent int
	// ConfirmTimeout: a tentative change reverts after this without a
	// confirmation.
	ConfirmTimeout time.Duration
	// Atomic: one node failing rolls every node back.
	Atomic bool
	// AutoConfirm: confirm by itself once every node's read-back and
	// health checks pass.
	AutoConfirm bool
}

// DefaultPolicy is the policy of a document without policy: parallel,
// atomic, confirm within 5 minutes, by hand.
func DefaultPolicy() Policy {
	return Policy{
		Strategy:       Parallel,
		ConfirmTimeout: DefaultConfirmTimeout,
		Atomic:         true,
	}
}

// Validate checks a policy built in code; Parse reports the same problems
// at their lines. Errors name the document's keys (policy.strategy: ...).
func (p Policy) Validate() error {
	var errs []error
	for _, pr := range p.problems() {
		errs = append(errs, fmt.Errorf("%s: %s", pr.key, pr.msg))
	}
	return errors.Join(errs...)
}

type problem struct{ key, msg string }

func (p Policy) problems() []problem {
	var out []problem
	switch p.Strategy {
	case Parallel:
		if p.MaxUnavailable != 0 || p.MaxUnavailablePercent != 0 {
			out = append(out, problem{"policy.max_unavailable", "only applies to strategy: rolling"})
		}
	case Rolling:
		switch {
		case p.MaxUnavailable != 0 && p.MaxUnavailablePercent != 0:
			out = append(out, problem{"policy.max_unavailable", "a count or a percentage, not both"})
		case p.MaxUnavailablePercent != 0:
			if p.MaxUnavailablePercent < 1 || p.MaxUnavailablePercent > 100 {
				out = append(out, problem{"policy.max_unavailable", fmt.Sprintf("must be 1%%-100%%, got %d%%", p.MaxUnavailablePercent)})
			}
		case p.MaxUnavailable < 1 || p.MaxUnavailable > MaxUnavailableLimit:
			out = append(out, problem{"policy.max_unavailable", fmt.Sprintf("must be 1-%d or a percentage such as 25%%, got %d", MaxUnavailableLimit, p.MaxUnavailable)})
		}
	default:
		out = append(out, problem{"policy.strategy", fmt.Sprintf("must be one of parallel|rolling, got %q", p.Strategy)})
	}
	if p.ConfirmTimeout < MinConfirmTimeout || p.ConfirmTimeout > MaxConfirmTimeout {
		out = append(out, problem{"policy.confirm_timeout", fmt.Sprintf("must be %s-%s, got %s", fmtDuration(MinConfirmTimeout), fmtDuration(MaxConfirmTimeout), fmtDuration(p.ConfirmTimeout))})
	}
	return out
}

// BatchSize is how many of targets nodes a change touches at once: all of
// them for Parallel; MaxUnavailable, or MaxUnavailablePercent of them
// rounded down, for Rolling. It is at least 1 (when targets > 0) and at
// most targets.
func (p Policy) BatchSize(targets int) int {
	if targets <= 0 {
		return 0
	}
	n := targets
	if p.Strategy == Rolling {
		n = p.MaxUnavailable
		if p.MaxUnavailablePercent != 0 {
			n = targets * p.MaxUnavailablePercent / 100
		}
	}
	return max(1, min(n, targets))
}

// MaxUnavailableString shows max_unavailable as written: "2", "25%", or ""
// for Parallel.
func (p Policy) MaxUnavailableString() string {
	switch {
	case p.MaxUnavailablePercent != 0:
		return strconv.Itoa(p.MaxUnavailablePercent) + "%"
	case p.MaxUnavailable != 0:
		return strconv.Itoa(p.MaxUnavailable)
	}
	return ""
}

var strategies = []string{string(Parallel), string(Rolling)}

func (p *parser) policy(n *yaml.Node, path string) Policy {
	pol := DefaultPolicy()
	if n.Kind != yaml.MappingNode {
		p.Errorf(n, path, "want a mapping (strategy:, confirm_timeout:, ...), got %s", strictyaml.KindName(n))
		return pol
	}
	lines := map[string]int{}
	p.Mapping(n, path, func(key string, k, v *yaml.Node) {
		full := strictyaml.Join(path, key)
		lines[full] = k.Line
		switch key {
		case "strategy":
			if s := p.Enum(v, full, strategies); s != "" {
				pol.Strategy = Strategy(s)
			}
		case "max_unavailable":
			pol.MaxUnavailable, pol.MaxUnavailablePercent = p.maxUnavailable(v, full)
		case "confirm_timeout":
			if d := p.confirmTimeout(v, full); d != 0 {
				pol.ConfirmTimeout = d
			}
		case "atomic":
			pol.Atomic = p.Bool(v, full)
		case "auto_confirm":
			pol.AutoConfirm = p.Bool(v, full)
		default:
			p.Errorf(k, full, "unknown key (want strategy, max_unavailable, confirm_timeout, atomic or auto_confirm)")
		}
	})
	if pol.Strategy == Rolling && pol.MaxUnavailable == 0 && pol.MaxUnavailablePercent == 0 && lines["policy.max_unavailable"] == 0 {
		pol.MaxUnavailable = 1
	}
	// Checks across keys, unless a key involved already failed to parse.
	for _, pr := range pol.problems() {
		if p.failed(pr.key) || (pr.key == "policy.max_unavailable" && p.failed("policy.strategy")) {
			continue
		}
		line := lines[pr.key]
		if line == 0 {
			line = n.Line
		}
		p.Errs = append(p.Errs, &strictyaml.Error{File: p.File, Line: line, Key: pr.key, Msg: pr.msg})
	}
	return pol
}

// maxUnavailable reads a count (2) or a percentage ("25%").
func (p *parser) maxUnavailable(n *yaml.Node, key string) (count, percent int) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && strings.HasSuffix(n.Value, "%") {
		v, err := strconv.Atoi(strings.TrimSuffix(n.Value, "%"))
		if err != nil || v < 1 || v > 100 {
			p.Errorf(n, key, "want a percentage 1%%-100%%, got %q", n.Value)
			return 0, 0
		}
		return 0, v
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		p.Errorf(n, key, "want a count (1-%d) or a percentage such as \"25%%\", got %s", MaxUnavailableLimit, strictyaml.Describe(n))
		return 0, 0
	}
	return p.IntIn(n, key, 1, MaxUnavailableLimit), 0
}

// confirmTimeout reads a duration in [MinConfirmTimeout, MaxConfirmTimeout].
func (p *parser) confirmTimeout(n *yaml.Node, key string) time.Duration {
	s := p.Str(n, key)
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil && s != "0" {
		p.Errorf(n, key, "want a duration such as 90s, 5m or 1h, got %q", s)
		return 0
	}
	if d < MinConfirmTimeout || d > MaxConfirmTimeout {
		p.Errorf(n, key, "must be %s-%s (leave it out for the default %s), got %s",
			fmtDuration(MinConfirmTimeout), fmtDuration(MaxConfirmTimeout), fmtDuration(DefaultConfirmTimeout), s)
		return 0
	}
	return d
}

// fmtDuration shows a duration the short way: 24h, 5m, 90s (not 24h0m0s).
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
