package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// readyLimit bounds start-to-ready: later is reported as missing.
const readyLimit = 30 * time.Second

// readyPhase times every node's cold start from the wrapper's start stamp
// (just before exec) to READY=1 on edged's NOTIFY_SOCKET, or to the stock
// serf agent's "Serf agent running!" line.
func (s *site) readyPhase(r *run) {
	starts, err := s.starts(s.names, s.released.Add(-time.Second))
	if err != nil {
		r.Metrics[mReady] = figure{Status: statusError, Note: err.Error()}
		return
	}
	// Every node is started; wait for the last ready (bounded).
	deadline := time.Now().Add(readyLimit)
	var f figure
	var missing []string
	for {
		f, missing = readyFigure(starts, s.ready, readyLimit)
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // bounded wait for the slowest stamp; the stamps are exact
	}
	if len(missing) > 0 {
		f.Note = fmt.Sprintf("%d of %d nodes not ready within %s: %s", len(missing), len(starts), readyLimit, strings.Join(missing, " "))
		if f.Status == statusOK {
			f.Status = statusError
		}
	} else {
		f.Note = fmt.Sprintf("median and slowest of %d nodes started at once", len(starts))
	}
	r.Metrics[mReady] = f
	s.logf("start to ready: %s", format(goalOf(mReady), f, true))
}

// readTraffic reads every node's traffic counters.
func (s *site) readTraffic() (map[string]counters, error) {
	out := map[string]counters{}
	for _, name := range s.names {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		b, err := s.lab.Command(ctx, name, "nft", "-j", "list", "counters", "table", "inet", "edgebench").Output()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s: nft list counters: %w", name, err)
		}
		c, err := parseCounters(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = c
	}
	return out, nil
}

// trafficFigures turns two readings taken seconds apart into the figures of
// bytes sent per node per second (mean, max), with the split by class.
func trafficFigures(r *run, before, after map[string]counters, seconds float64) {
	per := map[string]float64{}
	sum := map[string]float64{}
	var total, maxTx, rx float64
	busiest := ""
	for name, a := range before {
		b, ok := after[name]
		if !ok {
			continue
		}
		rt := rates(a, b, seconds)
		tx := 0.0
		for _, cl := range trafficClasses {
			tx += rt[cl+"_tx"]
			sum[cl] += rt[cl+"_tx"]
			rx += rt[cl+"_rx"]
		}
		per[name] = tx
		total += tx
		if busiest == "" || tx > maxTx {
			busiest, maxTx = name, tx
		}
	}
	k := float64(len(per))
	if k == 0 {
		r.Metrics[mTx] = figure{Status: statusError, Note: "no counters"}
		return
	}
	var parts []string
	for _, cl := range trafficClasses {
		if sum[cl] > 0 {
			parts = append(parts, fmt.Sprintf("%s %s", cl, num(sum[cl]/k)))
		}
	}
	r.Metrics[mTx] = figure{
		Value: total / k, Max: ptr(maxTx), PerNode: per, Status: statusOK,
		Detail: strings.Join(parts, ", "),
		Note:   fmt.Sprintf("bytes sent per node per second on eth0 (IP lengths) over %.0f s idle; received %s B/s per node; the busiest node is %s", seconds, num(rx/k), busiest),
	}
}

// goalOf returns the goal entry of a metric.
func goalOf(metric string) goal {
	i := slices.IndexFunc(goals, func(g goal) bool { return g.Metric == metric })
	if i < 0 {
		return goal{Metric: metric, Limit: -1}
	}
	return goals[i]
}
