package systemd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// Notifier sends sd_notify(3) messages to the service manager. The zero
// value and a Notifier made without NOTIFY_SOCKET are no-ops: every method
// returns nil and Run returns at once.
//
// Set the exported fields before calling Run; they must not change after.
type Notifier struct {
	// Healthy, when set, is called before each watchdog ping; the ping is
	// skipped while it returns false, so systemd restarts a daemon that
	// stays unhealthy for WatchdogSec. It must be safe to call from the
	// goroutine running Run.
	Healthy func() bool

	// Logger receives watchdog ping failures and skipped pings. Nil means
	// no logging.
	Logger *slog.Logger

	socket      string        // NOTIFY_SOCKET when NewNotifier ran
	watchdog    time.Duration // WatchdogSec for this process, 0 if off
	watchdogErr error         // malformed WATCHDOG_USEC/WATCHDOG_PID
}

// NewNotifier reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the
// environment. It has no other side effects and leaves the environment as
// it is.
func NewNotifier() *Notifier {
	n := &Notifier{socket: os.Getenv("NOTIFY_SOCKET")}
	if n.socket == "" {
		return n
	}
	n.watchdog, n.watchdogErr = daemon.SdWatchdogEnabled(false)
	return n
}

// Enabled reports whether the process runs under a service manager that
// listens for notifications.
func (n *Notifier) Enabled() bool { return n != nil && n.socket != "" }

// WatchdogInterval returns the watchdog timeout systemd set for this
// process (WatchdogSec), or 0 when the watchdog is off.
func (n *Notifier) WatchdogInterval() time.Duration {
	if !n.Enabled() {
		return 0
	}
	return n.watchdog
}

// Ready tells systemd that start-up, or a reload, has finished. Send it
// only once the local API socket listens.
func (n *Notifier) Ready() error { return n.send(daemon.SdNotifyReady) }

// Stopping tells systemd that the daemon has begun shutting down.
func (n *Notifier) Stopping() error { return n.send(daemon.SdNotifyStopping) }

// Reloading tells systemd that the daemon is reloading its configuration.
// It sends RELOADING=1 with MONOTONIC_USEC, the CLOCK_MONOTONIC time in
// microseconds, as systemd 252 and later expect. Call Ready when done.
func (n *Notifier) Reloading() error {
	if !n.Enabled() {
		return nil
	}
	usec, err := monotonicUsec()
	if err != nil {
		return fmt.Errorf("systemd: notify reloading: %w", err)
	}
	return n.send(daemon.SdNotifyReloading + "\nMONOTONIC_USEC=" + strconv.FormatUint(usec, 10))
}

// Status sets the one-line status shown by systemctl status. Newlines in
// msg would end the message early, so they are replaced by spaces.
func (n *Notifier) Status(msg string) error {
	return n.send("STATUS=" + strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(msg))
}

// Run sends WATCHDOG=1 at half of WatchdogSec, skipping a ping whenever
// Healthy returns false, until ctx is done; it then returns nil. The first
// ping goes out at once. A failed ping is logged and retried at the next
// tick. When the watchdog is off (or there is no NOTIFY_SOCKET) Run returns
// nil at once; it returns an error only for a malformed WATCHDOG_USEC or
// WATCHDOG_PID.
func (n *Notifier) Run(ctx context.Context) error {
	if !n.Enabled() {
		return nil
	}
	if n.watchdogErr != nil {
		return fmt.Errorf("systemd: watchdog: %w", n.watchdogErr)
	}
	if n.watchdog <= 0 {
		return nil
	}
	period := n.watchdog / 2
	if period <= 0 {
		period = n.watchdog
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		n.ping()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// ping sends one WATCHDOG=1 if the daemon is healthy.
func (n *Notifier) ping() {
	if n.Healthy != nil && !n.Healthy() {
		n.log(slog.LevelWarn, "watchdog ping skipped: daemon unhealthy")
		return
	}
	if err := n.send(daemon.SdNotifyWatchdog); err != nil {
		n.log(slog.LevelWarn, "watchdog ping failed", "err", err)
	}
}

func (n *Notifier) log(level slog.Level, msg string, args ...any) {
	if n.Logger != nil {
		n.Logger.Log(context.Background(), level, msg, args...)
	}
}

// send writes one datagram to NOTIFY_SOCKET.
func (n *Notifier) send(state string) error {
	if !n.Enabled() {
		return nil
	}
	if _, err := daemon.SdNotify(false, state); err != nil {
		return fmt.Errorf("systemd: notify %s: %w", n.socket, err)
	}
	return nil
}

// monotonicUsec returns CLOCK_MONOTONIC in microseconds, the clock systemd
// compares MONOTONIC_USEC with.
func monotonicUsec() (uint64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, fmt.Errorf("clock_gettime(CLOCK_MONOTONIC): %w", err)
	}
	return uint64(ts.Sec)*1_000_000 + uint64(ts.Nsec)/1_000, nil
}
