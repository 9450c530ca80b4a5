package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tailer follows files as they grow and hands every complete line to a
// callback, with the time the line was read. It waits on inotify, so that
// time is within scheduling latency of the write: it timestamps the log
// lines of programs whose own timestamps are too coarse (serf: seconds).
type tailer struct {
	fd   int
	ino  *os.File // fd, registered with the runtime poller
	done chan struct{}

	mu    sync.Mutex
	files map[int32]*followed // by watch descriptor
}

type followed struct {
	path string
	f    *os.File
	buf  []byte
	fn   func(at time.Time, line string)
}

func newTailer() (*tailer, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("tail: inotify: %w", err)
	}
	t := &tailer{fd: fd, ino: os.NewFile(uintptr(fd), "inotify"), done: make(chan struct{}), files: map[int32]*followed{}}
	go t.loop()
	return t, nil
}

// follow hands every line of path, those already there and those to come,
// to fn. fn runs on the tailer's goroutine: keep it short.
func (t *tailer) follow(path string, fn func(at time.Time, line string)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	wd, err := unix.InotifyAddWatch(t.fd, path, unix.IN_MODIFY)
	if err != nil {
		f.Close()
		return fmt.Errorf("tail: watch %s: %w", path, err)
	}
	fl := &followed{path: path, f: f, fn: fn}
	t.files[int32(wd)] = fl
	fl.drain()
	return nil
}

func (t *tailer) loop() {
	defer close(t.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := t.ino.Read(buf)
		if err != nil {
			return // closed
		}
		var wds []int32
		all := false
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
				all = true
			}
			wds = append(wds, ev.Wd)
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
		t.mu.Lock()
		if all {
			for _, fl := range t.files {
				fl.drain()
			}
		} else {
			for _, wd := range wds {
				if fl := t.files[wd]; fl != nil {
					fl.drain()
				}
			}
		}
		t.mu.Unlock()
	}
}

// drain reads what was appended since the last call.
func (fl *followed) drain() {
	chunk := make([]byte, 32<<10)
	for {
		n, err := fl.f.Read(chunk)
		at := time.Now()
		fl.buf = append(fl.buf, chunk[:n]...)
		for {
			i := bytes.IndexByte(fl.buf, '\n')
			if i < 0 {
				break
			}
			fl.fn(at, string(fl.buf[:i]))
			fl.buf = fl.buf[i+1:]
		}
		if err != nil || n == 0 {
			if err != nil && !errors.Is(err, io.EOF) {
				fl.fn(at, "bench: tail error: "+err.Error())
			}
			return
		}
	}
}

// close stops following every file.
func (t *tailer) close() {
	t.ino.Close()
	<-t.done
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, fl := range t.files {
		fl.f.Close()
	}
	t.files = nil
}
