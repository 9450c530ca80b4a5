// Package daemon wires edged together: it reads the node config, starts
// membership, discovery and the joiner, serves the local API on a unix
// socket and, when metrics_address is set, Prometheus metrics over HTTP
// (metrics.go), talks to systemd, and shuts everything down in order
// (leave the cluster, stop discovery, close the socket and the metrics
// listener). Wire types live in the leaf package daemon/api and the typed
// client in daemon/client.
package daemon
