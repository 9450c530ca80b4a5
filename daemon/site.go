package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"edge/coord/site"
	"edge/coord/store"
	"edge/daemon/api"
	"edge/hardware"
)

// errNoRaft: the site-config API needs raft on this node.
var errNoRaft = errors.New("the site config is not available on this node: raft is off (no tls_ca/tls_cert/tls_key; see edgectl tls)")

// siteHandlers adds the site-config endpoints to the local API.
func (d *Daemon) siteHandlers(mux *http.ServeMux) {
	mux.HandleFunc("GET "+api.PathConfig, d.handleConfig)
	mux.HandleFunc("POST "+api.PathApply, d.handleApply)
	mux.HandleFunc("POST "+api.PathDiff, d.handleDiff)
	mux.HandleFunc("GET "+api.PathChanges, d.handleChanges)
	mux.HandleFunc("GET "+api.PathChanges+"/{id}", d.handleChange)
	mux.HandleFunc("POST "+api.PathConfirm, d.handleConfirm)
	mux.HandleFunc("POST "+api.PathRollback, d.handleRollback)
	mux.HandleFunc("GET "+api.PathHistory, d.handleHistory)
	mux.HandleFunc("POST "+api.PathLock, d.handleLock)
	mux.HandleFunc("DELETE "+api.PathLock, d.handleUnlock)
	mux.HandleFunc("GET "+api.PathEvents, d.handleEvents)
}

// rpcHandlers adds the node-to-node endpoints.
func (d *Daemon) rpcHandlers() {
	d.raft.HandleRPC("POST /rpc/v1/plan", func(w http.ResponseWriter, r *http.Request) {
		var req map[string]hardware.Settings
		if err := json.NewDecoder(io.LimitReader(r.Body, 4<<20)).Decode(&req); err != nil {
			http.Error(w, "bad plan request", http.StatusBadRequest)
			return
		}
		writeJSON(w, d.planLocal(req))
	})
}

// planLocal shows the native commands for changes on this node's devices.
func (d *Daemon) planLocal(changes map[string]hardware.Settings) api.NodePlan {
	out := api.NodePlan{Node: d.cfg.Node, Alive: true}
	names := make([]string, 0, len(changes))
	for n := range changes {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, dev := range names {
		cmds, err := d.hw.Plan(dev, changes[dev])
		if err != nil {
			out.Error = err.Error()
			continue
		}
		out.Commands = append(out.Commands, cmds...)
	}
	return out
}

// siteRequest decodes the body of a site-config request on a node with
// raft; ok false: the answer (an error) was written.
func (d *Daemon) siteRequest(w http.ResponseWriter, r *http.Request, v any) bool {
	if !decodeBody(w, r, v) {
		return false
	}
	if d.raft == nil {
		writeErr(w, http.StatusConflict, errNoRaft)
		return false
	}
	return true
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(io.LimitReader(r.Body, 2<<20)).Decode(v); err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("bad request body: %w", err))
		return false
	}
	return true
}

// siteNodes are the nodes a site document is resolved for: every edged
// member that runs raft, alive or not.
func (d *Daemon) siteNodes() (all []string, alive map[string]bool) {
	mems, _ := d.member.Members()
	alive = map[string]bool{}
	for _, m := range mems {
		if m.Tags[api.TagRole] != api.RoleEdged || m.Status == api.StatusLeft {
			continue
		}
		all = append(all, m.Name)
		alive[m.Name] = m.Status == api.StatusAlive || m.Status == api.StatusSuspect
	}
	slices.Sort(all)
	return all, alive
}

// desiredOf resolves generation gen of st for nodes.
func desiredOf(st *store.State, gen uint64, nodes []string) (site.Desired, error) {
	doc, ok := st.Docs[gen]
	if gen == 0 || (ok && len(doc.Raw) == 0) {
		return site.Desired{}, nil
	}
	if !ok {
		return nil, fmt.Errorf("generation %d is no longer in the history", gen)
	}
	parsed, err := site.Parse(doc.File, doc.Raw)
	if err != nil {
		return nil, err
	}
	des, _, err := parsed.Resolve(nodes)
	return des, err
}

// plan is a parsed, checked request against the current state.
type plan struct {
	doc      *site.Document
	base     uint64
	changes  []site.Change
	targets  []string
	offline  []string
	warnings []string
}

func (d *Daemon) planChange(ctx context.Context, req api.ApplyRequest) (*plan, int, error) {
	if d.raft == nil {
		return nil, http.StatusConflict, errNoRaft
	}
	file := req.File
	if file == "" {
		file = "site.yaml"
	}
	doc, err := site.Parse(file, req.Doc)
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	if err := doc.CheckSite(d.cfg.Site); err != nil {
		return nil, http.StatusBadRequest, err
	}
	// Plan against the site as it is now, not as this replica last heard:
	// a change that another node just finished must be the base.
	if err := d.raft.Sync(ctx); err != nil {
		return nil, http.StatusServiceUnavailable, err
	}
	st := d.raft.Store().State()
	if req.Base != nil && *req.Base != st.Confirmed {
		return nil, http.StatusConflict, fmt.Errorf("%w: --base %d but the site is at generation %d; look at `edgectl diff` again", store.ErrConflict, *req.Base, st.Confirmed)
	}
	nodes, alive := d.siteNodes()
	next, warnings, err := doc.Resolve(nodes)
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	if err := doc.Check(next); err != nil {
		return nil, http.StatusBadRequest, err
	}
	cur, err := desiredOf(st, st.Confirmed, nodes)
	if err != nil {
		return nil, http.StatusInternalServerError, err
	}
	p := &plan{doc: doc, base: st.Confirmed, changes: site.DiffDesired(cur, next), warnings: warnings}
	seen := map[string]bool{}
	for _, c := range p.changes {
		if seen[c.Node] {
			continue
		}
		seen[c.Node] = true
		if alive[c.Node] {
			p.targets = append(p.targets, c.Node)
		} else {
			p.offline = append(p.offline, c.Node)
		}
	}
	return p, 0, nil
}

func (d *Daemon) handleDiff(w http.ResponseWriter, r *http.Request) {
	var req api.ApplyRequest
	if !decodeBody(w, r, &req) {
		return
	}
	p, code, err := d.planChange(r.Context(), req)
	if err != nil {
		writeErr(w, code, err)
		return
	}
	out := api.Diff{Base: p.base, Warnings: nonNil(p.warnings)}
	byNode := map[string]*api.NodePlan{}
	var order []string
	for _, c := range p.changes {
		np, ok := byNode[c.Node]
		if !ok {
			np = &api.NodePlan{Node: c.Node}
			byNode[c.Node] = np
			order = append(order, c.Node)
		}
		np.Changes = append(np.Changes, api.SettingChange{Node: c.Node, Device: c.Device, Setting: c.Setting, Old: c.Old, New: c.New})
	}
	_, alive := d.siteNodes()
	for _, n := range order {
		np := byNode[n]
		np.Alive = alive[n]
		req := map[string]hardware.Settings{}
		for _, c := range np.Changes {
			if c.New == nil {
				continue // back to the node config's value: nothing to plan here
			}
			if req[c.Device] == nil {
				req[c.Device] = hardware.Settings{}
			}
			req[c.Device][c.Setting] = c.New
		}
		var got api.NodePlan
		switch {
		case n == d.cfg.Node:
			got = d.planLocal(req)
		case !np.Alive:
			got.Error = "node is down: it converges when it returns"
		default:
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
			if err := d.raft.Call(ctx, n, "/rpc/v1/plan", req, &got); err != nil {
				got.Error = err.Error()
			}
			cancel()
		}
		np.Commands, np.Error = got.Commands, got.Error
		out.Nodes = append(out.Nodes, *np)
	}
	writeJSON(w, out)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func newID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b)
}

func (d *Daemon) handleApply(w http.ResponseWriter, r *http.Request) {
	var req api.ApplyRequest
	if !decodeBody(w, r, &req) {
		return
	}
	p, code, err := d.planChange(r.Context(), req)
	if err != nil {
		writeErr(w, code, err)
		return
	}
	if len(p.targets)+len(p.offline) == 0 {
		writeErr(w, http.StatusConflict, fmt.Errorf("nothing to change: the site already has these settings at generation %d", p.base))
		return
	}
	if len(p.offline) > 0 && !req.AllowMissing {
		writeErr(w, http.StatusConflict, fmt.Errorf("refused: target node(s) %s down; nothing was changed (--allow-missing applies to the others, and the down nodes converge when they return)", strings.Join(p.offline, ", ")))
		return
	}
	if len(p.targets) == 0 {
		writeErr(w, http.StatusConflict, fmt.Errorf("refused: every target node (%s) is down", strings.Join(p.offline, ", ")))
		return
	}
	pol := p.doc.Policy
	targets := max(len(p.targets), 1)
	policy := store.Policy{Strategy: string(pol.Strategy), BatchSize: pol.BatchSize(targets), ConfirmTimeout: pol.ConfirmTimeout,
		Atomic: pol.Atomic, AutoConfirm: pol.AutoConfirm || req.AutoConfirm}
	author := req.Author
	if author == "" {
		author = "edgectl@" + d.cfg.Node
	}
	id := newID()
	cmd := store.Command{Op: store.OpPropose, Propose: &store.Propose{
		ID: id, Kind: "apply", Base: p.base, Author: author, Policy: policy, Targets: p.targets, Missing: p.offline,
		Doc: &store.Doc{File: p.doc.File, Raw: p.doc.Raw, Hash: p.doc.Hash()},
	}}
	res, err := d.raft.Apply(r.Context(), cmd)
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	d.waitLocal(r.Context(), id)
	writeJSON(w, api.ApplyResult{ChangeID: id, Gen: res.Gen, Targets: p.targets, Missing: p.offline, Warnings: nonNil(p.warnings)})
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, store.ErrNoQuorum):
		return http.StatusServiceUnavailable
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrLockFull):
		return http.StatusConflict
	}
	return http.StatusBadRequest
}

func toAPIChange(c *store.Change) api.Change {
	out := api.Change{ID: c.ID, Kind: c.Kind, Gen: c.Gen, Base: c.Base, State: c.State, Reason: c.Reason, Author: c.Author,
		Strategy: c.Policy.Strategy, Atomic: c.Policy.Atomic, AutoConfirm: c.Policy.AutoConfirm, Created: c.Created, Updated: c.Updated, ConfirmBy: c.ConfirmBy,
		Missing: c.Missing, Final: store.Final(c.State)}
	for _, n := range c.Targets() {
		p := c.Nodes[n]
		out.Nodes = append(out.Nodes, api.NodeProgress{Node: n, Phase: p.Phase, Reason: p.Reason, Updated: p.Updated})
	}
	for _, t := range c.History {
		out.History = append(out.History, api.Transition(t))
	}
	return out
}

// waitLocal waits (a few seconds at most) until this node's replica holds
// the change just committed through the leader, so that what edgectl asks
// next is answered from a replica that knows it.
func (d *Daemon) waitLocal(ctx context.Context, id string) {
	d.waitLocalCond(ctx, func(st *store.State) bool { return st.Change(id) != nil })
}

// waitLocalCond waits (a few seconds at most) until cond holds on this
// node's replica.
func (d *Daemon) waitLocalCond(ctx context.Context, cond func(*store.State) bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		ch := d.raft.Store().Changed()
		if cond(d.raft.Store().State()) {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// waitState blocks (for a blocking query) until the replica's index passes
// index or wait elapses.
func (d *Daemon) waitState(ctx context.Context, index uint64, wait time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		ch := d.raft.Store().Changed()
		if d.raft.Store().State().Index > index {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// replicaFor answers a read of the replica: raft must be on, and a blocking
// query (?index=&wait=) waits first. ok false: the answer was written.
func (d *Daemon) replicaFor(w http.ResponseWriter, r *http.Request) (*store.State, bool) {
	if d.raft == nil {
		writeErr(w, http.StatusConflict, errNoRaft)
		return nil, false
	}
	idx, wait, ok := waitParams(w, r)
	if !ok {
		return nil, false
	}
	if wait > 0 {
		d.waitState(r.Context(), idx, wait)
	}
	return d.raft.Store().State(), true
}

func (d *Daemon) handleChanges(w http.ResponseWriter, r *http.Request) {
	st, ok := d.replicaFor(w, r)
	if !ok {
		return
	}
	out := api.Changes{Index: st.Index, Changes: []api.Change{}}
	for i := len(st.Changes) - 1; i >= 0; i-- {
		out.Changes = append(out.Changes, toAPIChange(st.Changes[i]))
	}
	writeJSON(w, out)
}

func (d *Daemon) handleChange(w http.ResponseWriter, r *http.Request) {
	st, ok := d.replicaFor(w, r)
	if !ok {
		return
	}
	c := st.Change(r.PathValue("id"))
	if c == nil {
		writeErr(w, http.StatusNotFound, fmt.Errorf("no change %q (see edgectl changes)", r.PathValue("id")))
		return
	}
	out := api.Changes{Index: st.Index, Changes: []api.Change{toAPIChange(c)}}
	writeJSON(w, out)
}

func (d *Daemon) handleConfirm(w http.ResponseWriter, r *http.Request) {
	var req api.ConfirmRequest
	if !d.siteRequest(w, r, &req) {
		return
	}
	res, err := d.raft.Apply(r.Context(), store.Command{Op: store.OpConfirm, ChangeID: req.ChangeID, Node: d.cfg.Node})
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, map[string]uint64{"generation": res.Gen})
}

func (d *Daemon) handleRollback(w http.ResponseWriter, r *http.Request) {
	var req api.RollbackRequest
	if !d.siteRequest(w, r, &req) {
		return
	}
	if err := d.raft.Sync(r.Context()); err != nil {
		writeErr(w, http.StatusServiceUnavailable, err)
		return
	}
	st := d.raft.Store().State()
	if c := st.ActiveChange(); c != nil && req.To == nil {
		// Roll back the change in progress.
		switch c.State {
		case store.Proposed, store.Validated:
			_, err := d.raft.Apply(r.Context(), store.Command{Op: store.OpAdvance, ChangeID: c.ID, From: c.State, State: store.Aborted, Reason: "aborted by " + d.cfg.Node})
			if err != nil {
				writeErr(w, statusOf(err), err)
				return
			}
		case store.Applying, store.Applied:
			_, err := d.raft.Apply(r.Context(), store.Command{Op: store.OpAdvance, ChangeID: c.ID, From: c.State, State: store.RollingBack,
				Reason: "rolled back by " + d.cfg.Node, Phase: store.PhaseReverting, Nodes: c.Targets()})
			if err != nil {
				writeErr(w, statusOf(err), err)
				return
			}
		default:
			writeErr(w, http.StatusConflict, fmt.Errorf("change %s is %s: nothing to roll back", c.ID, c.State))
			return
		}
		d.waitLocalCond(r.Context(), func(st *store.State) bool {
			cc := st.Change(c.ID)
			return cc == nil || cc.State != c.State
		})
		writeJSON(w, api.ApplyResult{ChangeID: c.ID, Gen: c.Base, Targets: c.Targets(), Warnings: []string{}, InProgress: true})
		return
	}
	to := uint64(0)
	if req.To != nil {
		to = *req.To
	} else {
		// The generation before the confirmed one: the base of the change
		// that confirmed it.
		for _, c := range st.Changes {
			if c.Gen == st.Confirmed && c.State == store.Confirmed {
				to = c.Base
			}
		}
	}
	if to == st.Confirmed {
		writeErr(w, http.StatusConflict, fmt.Errorf("the site is at generation %d already", to))
		return
	}
	nodes, alive := d.siteNodes()
	cur, err := desiredOf(st, st.Confirmed, nodes)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	if _, ok := st.Docs[to]; !ok && to != 0 {
		if to > st.Generation {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("there is no generation %d (the newest is %d; see edgectl history)", to, st.Generation))
		} else {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("generation %d is no longer in the history (see edgectl history)", to))
		}
		return
	}
	next, err := desiredOf(st, to, nodes)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	var targets, missing []string
	seen := map[string]bool{}
	for _, c := range site.DiffDesired(cur, next) {
		if !seen[c.Node] {
			seen[c.Node] = true
			if alive[c.Node] {
				targets = append(targets, c.Node)
			} else {
				missing = append(missing, c.Node)
			}
		}
	}
	if len(targets) == 0 {
		writeErr(w, http.StatusConflict, fmt.Errorf("generation %d sets nothing different from %d on any node that is up", to, st.Confirmed))
		return
	}
	author := req.Author
	if author == "" {
		author = "edgectl@" + d.cfg.Node
	}
	id := newID()
	res, err := d.raft.Apply(r.Context(), store.Command{Op: store.OpPropose, Propose: &store.Propose{
		ID: id, Kind: "rollback", Base: st.Confirmed, ToGen: to, Author: author, Targets: targets, Missing: missing,
		Policy: store.Policy{Strategy: "parallel", ConfirmTimeout: 5 * time.Minute, Atomic: true, AutoConfirm: true},
	}})
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	d.waitLocal(r.Context(), id)
	writeJSON(w, api.ApplyResult{ChangeID: id, Gen: res.Gen, Targets: targets, Missing: missing, Warnings: []string{}})
}

func (d *Daemon) handleHistory(w http.ResponseWriter, _ *http.Request) {
	if d.raft == nil {
		writeErr(w, http.StatusConflict, errNoRaft)
		return
	}
	st := d.raft.Store().State()
	out := api.History{Confirmed: st.Confirmed, Generations: []api.Generation{}}
	for i := len(st.Changes) - 1; i >= 0; i-- {
		c := st.Changes[i]
		g := api.Generation{Gen: c.Gen, ChangeID: c.ID, State: c.State, Author: c.Author, Created: c.Created, Confirmed: c.Gen == st.Confirmed}
		if doc, ok := st.Docs[c.Gen]; ok {
			g.File, g.Hash = doc.File, doc.Hash
		}
		out.Generations = append(out.Generations, g)
	}
	writeJSON(w, out)
}

func (d *Daemon) handleLock(w http.ResponseWriter, r *http.Request) {
	var req api.LockRequest
	if !d.siteRequest(w, r, &req) {
		return
	}
	if req.Name == "" || req.Holder == "" || req.Limit < 1 {
		writeErr(w, http.StatusBadRequest, errors.New("lock: name, holder and a limit >= 1 are required"))
		return
	}
	deadline := time.Now().Add(min(req.Wait, maxWait))
	for {
		ch := d.raft.Store().Changed()
		res, err := d.raft.Apply(r.Context(), store.Command{Op: store.OpLock, Lock: req.Name, Holder: req.Holder, Node: d.cfg.Node, Limit: req.Limit})
		if err == nil {
			writeJSON(w, api.LockResult{Token: res.Token})
			return
		}
		if !errors.Is(err, store.ErrLockFull) || time.Now().After(deadline) {
			writeErr(w, statusOf(err), err)
			return
		}
		// Wait for the next change of the replicated state (a release).
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-ch:
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
		t.Stop()
	}
}

func (d *Daemon) handleUnlock(w http.ResponseWriter, r *http.Request) {
	var req api.LockRequest
	if !d.siteRequest(w, r, &req) {
		return
	}
	if req.Name == "" {
		writeErr(w, http.StatusBadRequest, errors.New("unlock: a lock name is required"))
		return
	}
	if _, err := d.raft.Apply(r.Context(), store.Command{Op: store.OpUnlock, Lock: req.Name, Holder: req.Holder}); err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, map[string]bool{"released": true})
}

// configStatus is the config section of status.
func (d *Daemon) configStatus() *api.Config {
	if d.raft == nil {
		return nil
	}
	st := d.raft.Store().State()
	out := &api.Config{Generation: st.Confirmed, State: "none"}
	if st.Confirmed > 0 {
		out.State = store.Confirmed
	}
	if c := st.ActiveChange(); c != nil {
		out.State, out.PendingChange = c.State, c.ID
	}
	out.Applied, _ = st.DesiredGen(d.cfg.Node)
	return out
}
