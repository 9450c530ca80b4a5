// Package prom writes the Prometheus text exposition format, version 0.0.4:
// families with their HELP and TYPE lines, counter and gauge samples with
// escaped labels, and histograms with cumulative "le" buckets. It also holds
// the few value types a daemon updates between scrapes (counters and
// histograms, alone or one per combination of label values).
//
// It has no global state and no registry: the caller keeps its families in
// a table and writes them at each scrape, reading gauges from their sources
// then.
package prom
