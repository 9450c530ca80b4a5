package notify

import (
	"context"
	"testing"
	"time"
)

func TestIndex(t *testing.T) {
	var x Index
	n, ch := x.Load()
	if n != 0 {
		t.Fatalf("zero index %d", n)
	}
	done := make(chan uint64)
	go func() { done <- x.Wait(context.Background(), 0) }()
	x.Bump()
	<-ch // the channel taken before the bump is closed by it
	if got := <-done; got != 1 {
		t.Errorf("Wait = %d, want 1", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if got := x.Wait(ctx, 1); got != 1 {
		t.Errorf("Wait with nothing new = %d, want 1 after the deadline", got)
	}
}
