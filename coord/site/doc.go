// Package site owns the site config document: the replicated, versioned
// YAML an operator applies with `edgectl apply -f site.yaml`. It holds the
// desired settings of devices across the site's nodes (by selector: every
// node, a group, a glob, one node), the rollout policy and the site-wide
// constraints.
//
// The package is pure: Parse checks a document strictly (every problem
// named by file, line and key), Resolve turns it into the desired settings
// of each node, Check holds those against the constraints, DiffDesired
// shows what a new document changes, and Hash identifies a document by its
// meaning. Storing documents, numbering generations and rolling changes out
// belong to the store and the change controller.
package site
