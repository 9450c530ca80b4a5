package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"edge/daemon/api"
)

// exitError carries a command's exit code through run.
type exitError struct{ code int }

func (e exitError) Error() string { return "command exited with status " + strconv.Itoa(e.code) }

// runLock runs a command while holding a slot of a site-wide lock (a
// semaphore with --limit N), like `consul lock`. The command gets the fencing
// token in EDGE_LOCK_TOKEN: it only grows, so a resource can refuse a holder
// older than the last one it saw.
func runLock(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("lock", flag.ContinueOnError)
	limit := fs.Int("limit", 1, "how many holders at once (a semaphore when > 1)")
	wait := fs.Duration("wait", 5*time.Minute, "how long to wait for a free slot")
	fs.SetOutput(e.stderr)
	name := ""
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	argv := fs.Args()
	if name == "" && len(argv) > 0 {
		name, argv = argv[0], argv[1:]
	}
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	if name == "" {
		return fmt.Errorf("%w: lock NAME [--limit N] [--wait D] -- COMMAND [ARGS...]", errUsage)
	}
	if len(argv) == 0 || *limit < 1 {
		return fmt.Errorf("%w: lock NAME [--limit N>=1] -- COMMAND [ARGS...]", errUsage)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	host, _ := os.Hostname()
	holder := fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
	req := api.LockRequest{Name: name, Holder: holder, Limit: *limit, Wait: *wait}
	res, err := e.client.Lock(ctx, req)
	if err != nil {
		return err
	}
	// Release whatever happens to the command.
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.client.Unlock(rctx, req); err != nil {
			fmt.Fprintf(e.stderr, "edgectl lock: release %s: %v\n", name, err)
		}
	}()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, e.stdout, e.stderr
	cmd.Env = append(os.Environ(), "EDGE_LOCK_NAME="+name, "EDGE_LOCK_TOKEN="+strconv.FormatUint(res.Token, 10))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	sigs := make(chan os.Signal, 3)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			_ = cmd.Process.Signal(s)
		case err := <-done:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return exitError{code: ee.ExitCode()}
			}
			return err
		}
	}
}

// runUnlock frees a lock by force: every holder (or one, --holder), for a
// holder that died without releasing it.
func runUnlock(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("unlock", flag.ContinueOnError)
	holder := fs.String("holder", "", "release only this holder (default: all)")
	name := ""
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args, e.stderr); err != nil {
		return err
	}
	if name == "" {
		return fmt.Errorf("%w: unlock NAME [--holder H]", errUsage)
	}
	if err := e.client.Unlock(ctx, api.LockRequest{Name: name, Holder: *holder}); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "released %s\n", name)
	return nil
}
