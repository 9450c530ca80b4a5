// Package systemd owns edged's integration with systemd: the unit file
// (edged.service, next to this file) and the sd_notify glue the daemon uses
// to report readiness, reloads, shutdown and liveness.
//
// A Notifier made outside systemd (no NOTIFY_SOCKET) does nothing, so the
// daemon can call it unconditionally in tests, in the lab and on a laptop.
//
// Protocol notes for systemd 252 (Debian 12), which has no Type=notify-reload:
// the unit uses Type=notify with ExecReload=/bin/kill -HUP $MAINPID; on SIGHUP
// the daemon calls Reloading, reloads, then Ready. The watchdog is driven by
// Run, which pings at half of WatchdogSec while the Healthy hook says so.
package systemd
