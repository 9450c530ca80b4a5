package modbus

import (
	"errors"
	"sync"
	"testing"
	"time"

	"edge/hardware"
	"edge/hardware/sim"
)

// TestObserveExchanges: each request/response is reported once with its
// duration and outcome: a good answer, an exception (refused) and no answer
// (timeout).
func TestObserveExchanges(t *testing.T) {
	m := startRectifier(t, t.TempDir())
	var (
		mu   sync.Mutex
		took []time.Duration
		errs []error
	)
	since := func(n int) ([]time.Duration, []error) {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Duration(nil), took[n:]...), append([]error(nil), errs[n:]...)
	}
	observe := func(d time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		took, errs = append(took, d), append(errs, err)
	}
	const timeout = 200 * time.Millisecond
	d, err := OpenDevice(ctxT(t), hardware.Config{Name: "rect", Driver: "modbus", Port: m.Path(), Profile: exampleProfile, Unit: 1, Timeout: timeout, Observe: observe}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	if _, err := d.Read(ctxT(t), []string{"float_voltage"}); err != nil {
		t.Fatal(err)
	}
	got, gotErrs := since(0)
	if len(got) != 1 || gotErrs[0] != nil || got[0] <= 0 {
		t.Fatalf("read: took %v errs %v, want one good exchange", got, gotErrs)
	}

	m.SetException(6) // server device busy
	if _, err := d.Read(ctxT(t), []string{"float_voltage"}); !errors.Is(err, hardware.ErrRejected) {
		t.Fatalf("read with an exception: %v", err)
	}
	got, gotErrs = since(1)
	if len(got) != 1 || !errors.Is(gotErrs[0], hardware.ErrRejected) {
		t.Fatalf("exception: took %v errs %v", got, gotErrs)
	}

	m.SetException(0)
	m.SetFault(sim.ModbusNoAnswer)
	if _, err := d.Read(ctxT(t), []string{"float_voltage"}); !errors.Is(err, hardware.ErrTimeout) {
		t.Fatalf("read without answer: %v", err)
	}
	got, gotErrs = since(2)
	if len(got) != 1 || !errors.Is(gotErrs[0], hardware.ErrTimeout) || got[0] < timeout {
		t.Fatalf("timeout: took %v errs %v, want one timeout of at least %s", got, gotErrs, timeout)
	}
}
