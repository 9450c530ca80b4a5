package prom

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// ContentType is the media type of the text format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Kind is a family's TYPE.
type Kind string

// The kinds this package writes.
const (
	Counter   Kind = "counter"
	Gauge     Kind = "gauge"
	Histogram Kind = "histogram"
)

// Family describes one metric family.
type Family struct {
	Name string
	Kind Kind
	// Help is the HELP text; it must not be empty.
	Help string
	// Labels are the label names of every series, in the order values
	// are given (a histogram's "le" is added by the writer).
	Labels []string
}

var (
	nameRE  = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// Validate checks the family's name, kind, help and label names.
func (f Family) Validate() error {
	if !nameRE.MatchString(f.Name) {
		return fmt.Errorf("prom: %q is not a valid metric name", f.Name)
	}
	switch f.Kind {
	case Counter, Gauge, Histogram:
	default:
		return fmt.Errorf("prom: %s: unknown kind %q", f.Name, f.Kind)
	}
	if strings.TrimSpace(f.Help) == "" {
		return fmt.Errorf("prom: %s: no help text", f.Name)
	}
	seen := map[string]bool{}
	for _, l := range f.Labels {
		if !labelRE.MatchString(l) || strings.HasPrefix(l, "__") {
			return fmt.Errorf("prom: %s: %q is not a valid label name", f.Name, l)
		}
		if l == "le" && f.Kind == Histogram {
			return fmt.Errorf("prom: %s: a histogram's own label le is taken", f.Name)
		}
		if seen[l] {
			return fmt.Errorf("prom: %s: label %q twice", f.Name, l)
		}
		seen[l] = true
	}
	return nil
}

// Writer writes families one after the other: Begin writes a family's HELP
// and TYPE lines, then Value or Histogram write its series. Misuse (a family
// written twice, a sample of the wrong kind or with the wrong number of
// label values) is reported by Flush, with the first write error.
type Writer struct {
	w    *bufio.Writer
	fam  *Family
	done map[string]bool
	err  error
}

// NewWriter returns a writer to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: bufio.NewWriter(w), done: map[string]bool{}}
}

func (w *Writer) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// Begin starts family f.
func (w *Writer) Begin(f Family) {
	if err := f.Validate(); err != nil {
		w.fail(err)
		w.fam = nil
		return
	}
	if w.done[f.Name] {
		w.fail(fmt.Errorf("prom: family %s written twice", f.Name))
		w.fam = nil
		return
	}
	w.done[f.Name] = true
	w.fam = &f
	fmt.Fprintf(w.w, "# HELP %s %s\n# TYPE %s %s\n", f.Name, escapeHelp(f.Help), f.Name, f.Kind)
}

// check reports whether a sample of kind with values fits the current
// family.
func (w *Writer) check(kind string, values []string) bool {
	f := w.fam
	switch {
	case f == nil:
		w.fail(errors.New("prom: sample outside a family"))
		return false
	case kind == "histogram" && f.Kind != Histogram, kind == "value" && f.Kind == Histogram:
		w.fail(fmt.Errorf("prom: %s: a %s sample in a %s family", f.Name, kind, f.Kind))
		return false
	case len(values) != len(f.Labels):
		w.fail(fmt.Errorf("prom: %s: %d label values for labels %v", f.Name, len(values), f.Labels))
		return false
	}
	return true
}

// Value writes one sample of the current counter or gauge family.
func (w *Writer) Value(v float64, labelValues ...string) {
	if !w.check("value", labelValues) {
		return
	}
	w.sample(w.fam.Name, labelValues, "", "", v)
}

// Histogram writes one histogram series of the current family.
func (w *Writer) Histogram(h *Hist, labelValues ...string) {
	if !w.check("histogram", labelValues) {
		return
	}
	bounds, counts, sum, count := h.snapshot()
	name := w.fam.Name
	var cum uint64
	for i, b := range bounds {
		cum += counts[i]
		w.sample(name+"_bucket", labelValues, "le", formatFloat(b), float64(cum))
	}
	w.sample(name+"_bucket", labelValues, "le", "+Inf", float64(count))
	w.sample(name+"_sum", labelValues, "", "", sum)
	w.sample(name+"_count", labelValues, "", "", float64(count))
}

func (w *Writer) sample(name string, values []string, extraName, extraValue string, v float64) {
	b := w.w
	b.WriteString(name)
	if len(values) > 0 || extraName != "" {
		b.WriteByte('{')
		for i, val := range values {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(w.fam.Labels[i])
			b.WriteString(`="`)
			b.WriteString(escapeLabel(val))
			b.WriteByte('"')
		}
		if extraName != "" {
			if len(values) > 0 {
				b.WriteByte(',')
			}
			b.WriteString(extraName)
			b.WriteString(`="`)
			b.WriteString(extraValue)
			b.WriteByte('"')
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(formatFloat(v))
	b.WriteByte('\n')
}

// Flush writes what is buffered and returns the first error: a misuse or
// a failed write.
func (w *Writer) Flush() error {
	if err := w.w.Flush(); err != nil {
		w.fail(err)
	}
	return w.err
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }

// Count is a counter: a number that only goes up.
type Count struct{ n atomic.Uint64 }

// Add adds n.
func (c *Count) Add(n uint64) { c.n.Add(n) }

// Inc adds one.
func (c *Count) Inc() { c.n.Add(1) }

// Load returns the count.
func (c *Count) Load() uint64 { return c.n.Load() }

// Hist is a histogram with fixed upper bounds.
type Hist struct {
	bounds []float64

	mu     sync.Mutex
	counts []uint64 // per bucket, not cumulative; the last is above every bound
	sum    float64
	count  uint64
}

// NewHist returns a histogram with the given upper bounds, which must be
// finite and strictly increasing (anything else is a wiring bug: it
// panics).
func NewHist(bounds []float64) *Hist {
	if err := checkBounds(bounds); err != nil {
		panic(err)
	}
	return &Hist{bounds: slices.Clone(bounds), counts: make([]uint64, len(bounds)+1)}
}

func checkBounds(bounds []float64) error {
	if len(bounds) == 0 {
		return errors.New("prom: a histogram needs at least one bucket")
	}
	for i, b := range bounds {
		if math.IsInf(b, 0) || math.IsNaN(b) {
			return fmt.Errorf("prom: bucket bound %v is not finite", b)
		}
		if i > 0 && b <= bounds[i-1] {
			return fmt.Errorf("prom: bucket bounds must increase: %v after %v", b, bounds[i-1])
		}
	}
	return nil
}

// Observe adds one observation.
func (h *Hist) Observe(v float64) {
	i, _ := slices.BinarySearch(h.bounds, v) // the first bound >= v
	h.mu.Lock()
	h.counts[i]++
	h.sum += v
	h.count++
	h.mu.Unlock()
}

// Count returns the number of observations.
func (h *Hist) Count() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}

func (h *Hist) snapshot() (bounds []float64, counts []uint64, sum float64, count uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bounds, slices.Clone(h.counts), h.sum, h.count
}

// Vec holds one value per combination of label values (a *Count or a
// *Hist), made on first use.
type Vec[T any] struct {
	make func() T

	mu sync.Mutex
	m  map[string]*vecEntry[T]
}

type vecEntry[T any] struct {
	values []string
	v      T
}

// NewCountVec returns a vector of counters.
func NewCountVec() *Vec[*Count] {
	return &Vec[*Count]{make: func() *Count { return new(Count) }, m: map[string]*vecEntry[*Count]{}}
}

// NewHistVec returns a vector of histograms with the given bounds.
func NewHistVec(bounds []float64) *Vec[*Hist] {
	if err := checkBounds(bounds); err != nil {
		panic(err)
	}
	return &Vec[*Hist]{make: func() *Hist { return NewHist(bounds) }, m: map[string]*vecEntry[*Hist]{}}
}

func vecKey(values []string) string { return strings.Join(values, "\xff") }

// With returns the value for these label values, made if new.
func (v *Vec[T]) With(values ...string) T {
	k := vecKey(values)
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.m[k]
	if !ok {
		e = &vecEntry[T]{values: slices.Clone(values), v: v.make()}
		v.m[k] = e
	}
	return e.v
}

// Each calls fn for every value, in the order of their label values.
func (v *Vec[T]) Each(fn func(values []string, val T)) {
	v.mu.Lock()
	entries := make([]*vecEntry[T], 0, len(v.m))
	for _, e := range v.m {
		entries = append(entries, e)
	}
	v.mu.Unlock()
	slices.SortFunc(entries, func(a, b *vecEntry[T]) int { return slices.Compare(a.values, b.values) })
	for _, e := range entries {
		fn(e.values, e.v)
	}
}

// Retain drops the values whose label values keep rejects.
func (v *Vec[T]) Retain(keep func(values []string) bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for k, e := range v.m {
		if !keep(e.values) {
			delete(v.m, k)
		}
	}
}
