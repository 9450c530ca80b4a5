package bench

import (
	"bytes"
	"errors"
	"net"
	"os"
	"slices"
	"sync"
	"time"
)

// serfRunning is the line the stock serf agent prints once its agent and
// RPC listener run, before it joins: the moment that matches edged's
// READY=1 (API socket listening, parts started, joins to come).
const serfRunning = "Serf agent running!"

// readyLog records, per node, when it said it was ready.
type readyLog struct {
	mu sync.Mutex
	at map[string][]time.Time
}

func newReadyLog() *readyLog { return &readyLog{at: map[string][]time.Time{}} }

func (r *readyLog) add(node string, t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.at[node] = append(r.at[node], t)
}

// first returns the node's first ready at or after t.
func (r *readyLog) first(node string, t time.Time) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, at := range r.at[node] {
		if !at.Before(t) {
			return at, true
		}
	}
	return time.Time{}, false
}

// notifySocket listens on a unix datagram socket as systemd's NOTIFY_SOCKET
// does and calls ready with the arrival time of every message that carries
// READY=1.
type notifySocket struct {
	conn *net.UnixConn
	done chan struct{}
}

func listenNotifySocket(path string, ready func(time.Time)) (*notifySocket, error) {
	os.Remove(path)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	n := &notifySocket{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		buf := make([]byte, 4096)
		for {
			k, _, err := conn.ReadFromUnix(buf)
			at := time.Now()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			if slices.ContainsFunc(bytes.Split(buf[:k], []byte("\n")), func(l []byte) bool { return string(l) == "READY=1" }) {
				ready(at)
			}
		}
	}()
	return n, nil
}

func (n *notifySocket) Close() error {
	err := n.conn.Close()
	<-n.done
	return err
}

// readyFigure is start-to-ready over the nodes' last starts: the median as
// the value, the slowest as Max. missing names the nodes that never said
// ready within limit of their start.
func readyFigure(starts map[string]time.Time, log *readyLog, limit time.Duration) (f figure, missing []string) {
	per := map[string]float64{}
	var ds []float64
	for node, t := range starts {
		at, ok := log.first(node, t)
		if !ok || at.Sub(t) > limit {
			missing = append(missing, node)
			continue
		}
		d := at.Sub(t).Seconds()
		per[node] = d
		ds = append(ds, d)
	}
	slices.Sort(missing)
	if len(ds) == 0 {
		return figure{Status: statusError}, missing
	}
	slices.Sort(ds)
	return figure{Value: ds[len(ds)/2], Max: ptr(ds[len(ds)-1]), PerNode: per, Status: statusOK}, missing
}
