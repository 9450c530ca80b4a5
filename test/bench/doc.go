// Package bench measures the membership numbers of DESIGN.md ("Numbers we
// hold ourselves to") on the site lab, for edged and for two anchors run in
// the same lab: the stock serf agent finding its peers with its own mDNS
// (-discover) and the stock serf agent given node1's address (-join).
//
// The benchmarks run only under `make bench` (root, network namespaces); see
// docs/benchmarks.md for what each figure means and how it is measured. The
// non-test files hold the pure parts (reading /proc, parsing event files,
// replaying membership timelines, rendering the report), which TestHelpers
// covers without root.
package bench
