// Package api holds the wire types of edged's local API: the JSON that
// `edgectl --json` prints and that scripts rely on. It is a leaf package: it
// imports nothing of the daemon, so the CLI can use it without pulling in the
// engine.
package api
