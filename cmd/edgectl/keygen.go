package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
)

// runKeygen prints a new 32-byte gossip key, base64, the format of
// `serf keygen` and of key_file.
func runKeygen(_ context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	if err := parseFlags(fs, args, e.stderr); err != nil {
		return err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("random: %w", err)
	}
	_, err := fmt.Fprintln(e.stdout, base64.StdEncoding.EncodeToString(key))
	return err
}

// runVersion prints the CLI's version.
func runVersion(_ context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if err := parseFlags(fs, args, e.stderr); err != nil {
		return err
	}
	_, err := fmt.Fprintln(e.stdout, "edgectl", version())
	return err
}
