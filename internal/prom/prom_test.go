package prom

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
)

func TestWriterFormat(t *testing.T) {
	var b strings.Builder
	w := NewWriter(&b)
	w.Begin(Family{Name: "edge_members", Kind: Gauge, Help: "Members by status.", Labels: []string{"status"}})
	w.Value(3, "alive")
	w.Value(0, "failed")
	w.Begin(Family{Name: "edge_weird", Kind: Gauge, Help: "Back\\slash and\nnewline.", Labels: []string{"device"}})
	w.Value(1.5, `a"b\c`+"\nd")
	w.Begin(Family{Name: "edge_changes_total", Kind: Counter, Help: "Changes."})
	w.Value(7)
	w.Begin(Family{Name: "edge_special", Kind: Gauge, Help: "Special values.", Labels: []string{"v"}})
	w.Value(math.Inf(1), "inf")
	w.Value(math.NaN(), "nan")
	w.Value(1e-7, "small")
	h := NewHist([]float64{0.001, 0.01, 0.1})
	for _, v := range []float64{0.0005, 0.001, 0.002, 0.5} {
		h.Observe(v)
	}
	w.Begin(Family{Name: "edge_rt_seconds", Kind: Histogram, Help: "Round trips.", Labels: []string{"device"}})
	w.Histogram(h, "sg0")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := `# HELP edge_members Members by status.
# TYPE edge_members gauge
edge_members{status="alive"} 3
edge_members{status="failed"} 0
# HELP edge_weird Back\\slash and\nnewline.
# TYPE edge_weird gauge
edge_weird{device="a\"b\\c\nd"} 1.5
# HELP edge_changes_total Changes.
# TYPE edge_changes_total counter
edge_changes_total 7
# HELP edge_special Special values.
# TYPE edge_special gauge
edge_special{v="inf"} +Inf
edge_special{v="nan"} NaN
edge_special{v="small"} 1e-07
# HELP edge_rt_seconds Round trips.
# TYPE edge_rt_seconds histogram
edge_rt_seconds_bucket{device="sg0",le="0.001"} 2
edge_rt_seconds_bucket{device="sg0",le="0.01"} 3
edge_rt_seconds_bucket{device="sg0",le="0.1"} 3
edge_rt_seconds_bucket{device="sg0",le="+Inf"} 4
edge_rt_seconds_sum{device="sg0"} 0.5035
edge_rt_seconds_count{device="sg0"} 4
`
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriterMisuse(t *testing.T) {
	gauge := Family{Name: "g", Kind: Gauge, Help: "A gauge.", Labels: []string{"a"}}
	hist := Family{Name: "h_seconds", Kind: Histogram, Help: "A histogram."}
	cases := []struct {
		name string
		run  func(w *Writer)
		want string
	}{
		{"family twice", func(w *Writer) { w.Begin(gauge); w.Begin(gauge) }, "written twice"},
		{"sample first", func(w *Writer) { w.Value(1) }, "outside a family"},
		{"label count", func(w *Writer) { w.Begin(gauge); w.Value(1) }, "0 label values"},
		{"value in histogram", func(w *Writer) { w.Begin(hist); w.Value(1) }, "a value sample in a histogram family"},
		{"histogram in gauge", func(w *Writer) { w.Begin(gauge); w.Histogram(NewHist([]float64{1}), "x") }, "a histogram sample"},
		{"no help", func(w *Writer) { w.Begin(Family{Name: "x", Kind: Gauge}) }, "no help text"},
		{"bad name", func(w *Writer) { w.Begin(Family{Name: "edge-x", Kind: Gauge, Help: "x"}) }, "not a valid metric name"},
		{"bad kind", func(w *Writer) { w.Begin(Family{Name: "x", Kind: "summary", Help: "x"}) }, "unknown kind"},
		{"bad label", func(w *Writer) { w.Begin(Family{Name: "x", Kind: Gauge, Help: "x", Labels: []string{"a-b"}}) }, "not a valid label name"},
		{"reserved label", func(w *Writer) { w.Begin(Family{Name: "x", Kind: Gauge, Help: "x", Labels: []string{"__name__"}}) }, "not a valid label name"},
		{"le in histogram", func(w *Writer) { w.Begin(Family{Name: "x", Kind: Histogram, Help: "x", Labels: []string{"le"}}) }, "le is taken"},
		{"label twice", func(w *Writer) { w.Begin(Family{Name: "x", Kind: Gauge, Help: "x", Labels: []string{"a", "a"}}) }, "twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b strings.Builder
			w := NewWriter(&b)
			c.run(w)
			err := w.Flush()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Flush() = %v, want an error with %q", err, c.want)
			}
		})
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("gone") }

func TestWriterWriteError(t *testing.T) {
	w := NewWriter(failWriter{})
	w.Begin(Family{Name: "x", Kind: Gauge, Help: "x"})
	w.Value(1)
	if err := w.Flush(); err == nil || err.Error() != "gone" {
		t.Errorf("Flush() = %v, want the write error", err)
	}
}

func TestHistBounds(t *testing.T) {
	for _, bounds := range [][]float64{nil, {1, 1}, {2, 1}, {math.Inf(1)}, {math.NaN()}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewHist(%v) did not panic", bounds)
				}
			}()
			NewHist(bounds)
		}()
	}
}

func TestHistConcurrent(t *testing.T) {
	h := NewHist([]float64{1, 2})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				h.Observe(1.5)
			}
		})
	}
	wg.Wait()
	if h.Count() != 8000 {
		t.Errorf("count %d, want 8000", h.Count())
	}
	_, counts, sum, _ := h.snapshot()
	if counts[1] != 8000 || sum != 12000 {
		t.Errorf("counts %v sum %v", counts, sum)
	}
}

func TestVec(t *testing.T) {
	v := NewCountVec()
	v.With("b", "x").Inc()
	v.With("a", "y").Add(2)
	v.With("b", "x").Inc()
	var got []string
	v.Each(func(values []string, c *Count) {
		got = append(got, strings.Join(values, "/")+"="+formatFloat(float64(c.Load())))
	})
	if strings.Join(got, " ") != "a/y=2 b/x=2" {
		t.Errorf("Each: %v", got)
	}
	v.Retain(func(values []string) bool { return values[0] == "a" })
	got = nil
	v.Each(func(values []string, _ *Count) { got = append(got, values[0]) })
	if strings.Join(got, " ") != "a" {
		t.Errorf("after Retain: %v", got)
	}
	hv := NewHistVec([]float64{1})
	hv.With("d").Observe(0.5)
	if hv.With("d").Count() != 1 || hv.With("e").Count() != 0 {
		t.Error("histogram vector does not keep its values apart")
	}
}
