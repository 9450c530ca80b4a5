package line

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"edge/hardware"
	"edge/hardware/sim"
)

// exchanges records what a driver reports to its observer.
type exchanges struct {
	mu   sync.Mutex
	took []time.Duration
	errs []error
}

func (e *exchanges) observe(took time.Duration, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.took = append(e.took, took)
	e.errs = append(e.errs, err)
}

func (e *exchanges) since(n int) ([]time.Duration, []error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]time.Duration(nil), e.took[n:]...), append([]error(nil), e.errs[n:]...)
}

func (e *exchanges) len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.took)
}

// TestObserveExchanges: every command that waits for an answer is reported
// once with its duration and outcome; a set command that gets no answer in
// line framing is not a round trip.
func TestObserveExchanges(t *testing.T) {
	s := newSCPI(t)
	var ex exchanges
	dev, err := Open(context.Background(), hardware.Config{Name: "sg0", Driver: "line", Port: s.Path(), Profile: scpiProfile, Timeout: testTimeout, Observe: ex.observe}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	// Open: *IDN? and SYST:ERR?.
	took, errs := ex.since(0)
	if len(took) != 2 || errs[0] != nil || errs[1] != nil || took[0] <= 0 {
		t.Fatalf("after open: took %v errs %v, want two good exchanges", took, errs)
	}

	n := ex.len()
	if _, err := dev.Read(context.Background(), []string{"frequency"}); err != nil {
		t.Fatal(err)
	}
	if took, errs = ex.since(n); len(took) != 1 || errs[0] != nil {
		t.Fatalf("read: took %v errs %v, want one good exchange", took, errs)
	}

	n = ex.len()
	if err := dev.Apply(context.Background(), hardware.Settings{"output": true}); err != nil {
		t.Fatal(err)
	}
	// ":OUTP ON" gets no answer; its error-queue query does.
	if took, errs = ex.since(n); len(took) != 1 || errs[0] != nil {
		t.Fatalf("apply: took %v errs %v, want only the error-queue query", took, errs)
	}

	s.SetFaults(sim.LineFaults{NoAnswer: true})
	n = ex.len()
	if _, err := dev.Read(context.Background(), []string{"frequency"}); !errors.Is(err, hardware.ErrTimeout) {
		t.Fatalf("read without answer: %v", err)
	}
	took, errs = ex.since(n)
	if len(took) != 1 || !errors.Is(errs[0], hardware.ErrTimeout) || took[0] < testTimeout {
		t.Fatalf("timeout: took %v errs %v, want one timeout of at least %s", took, errs, testTimeout)
	}
}
