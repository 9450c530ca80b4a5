// Package notify is a change counter that can be waited on: the index a
// blocking query (?index=N&wait=D) compares against, and a channel closed
// at the next change for loops that react to changes.
package notify

import (
	"context"
	"sync"
)

// Index counts changes. The zero value is ready to use.
type Index struct {
	mu      sync.Mutex
	n       uint64
	changed chan struct{}
}

func (x *Index) ch() chan struct{} {
	if x.changed == nil {
		x.changed = make(chan struct{})
	}
	return x.changed
}

// Bump records a change and wakes every waiter.
func (x *Index) Bump() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.n++
	close(x.ch())
	x.changed = make(chan struct{})
}

// Load returns the current index and a channel closed at the next change.
func (x *Index) Load() (uint64, <-chan struct{}) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.n, x.ch()
}

// Changed returns a channel closed at the next change.
func (x *Index) Changed() <-chan struct{} {
	_, ch := x.Load()
	return ch
}

// Wait blocks until the index is past index or ctx is done, and returns
// the current index.
func (x *Index) Wait(ctx context.Context, index uint64) uint64 {
	for {
		cur, ch := x.Load()
		if cur > index {
			return cur
		}
		select {
		case <-ch:
		case <-ctx.Done():
			cur, _ := x.Load()
			return cur
		}
	}
}
