// Package e2e holds the end-to-end tests of edge: real edged processes in
// network namespaces of the site lab, real multicast, real serf, and
// independent peers (a stock serf agent, avahi). They need root; in CI
// (CI set) a missing privilege is a failure, never a skip.
package e2e
