package daemon

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/raft"

	"edge/coord"
	"edge/coord/store"
	"edge/daemon/api"
)

// checkRecovery refuses a bad recovery file (<data_dir>/raft/peers.json)
// while the daemon is made, before it joins the site: the same checks the
// store makes when it applies the file (docs/recovery.md).
func checkRecovery(rc coord.RaftConfig) error {
	self := &net.TCPAddr{IP: rc.AdvertiseAddr.AsSlice(), Port: rc.Port}
	if err := store.CheckRecovery(rc.Store.Dir, rc.NodeName, self); err != nil {
		return fmt.Errorf("raft recovery: %w", err)
	}
	return nil
}

// raftHandlers adds the raft endpoints to the local API.
func (d *Daemon) raftHandlers(mux *http.ServeMux) {
	mux.HandleFunc("GET "+api.PathRaftPeers, d.handleRaftPeers)
}

// handleRaftPeers answers the last raft configuration this node knows, with
// the member status of each server. Everything comes from this node: it
// answers without a quorum.
func (d *Daemon) handleRaftPeers(w http.ResponseWriter, _ *http.Request) {
	if d.raft == nil {
		writeErr(w, http.StatusConflict, errNoRaft)
		return
	}
	rf := d.raft.Store().Raft()
	f := rf.GetConfiguration()
	if err := f.Error(); err != nil {
		writeErr(w, http.StatusServiceUnavailable, fmt.Errorf("raft configuration: %w", err))
		return
	}
	status := map[string]string{}
	mems, _ := d.member.Members()
	for _, m := range mems {
		status[m.Name] = m.Status
	}
	_, leader := d.raft.Store().Leader()
	out := api.RaftPeers{
		Node:         d.cfg.Node,
		Leader:       leader,
		Servers:      []api.RaftServer{},
		LastIndex:    rf.LastIndex(),
		AppliedIndex: rf.AppliedIndex(),
		Generation:   d.raft.Store().State().Generation,
	}
	out.LastTerm, _ = strconv.ParseUint(rf.Stats()["last_log_term"], 10, 64)
	for _, s := range f.Configuration().Servers {
		rs := api.RaftServer{ID: string(s.ID), Address: string(s.Address), Suffrage: api.SuffrageNonvoter, Status: "unknown", Leader: string(s.ID) == leader}
		if s.Suffrage == raft.Voter {
			rs.Suffrage = api.SuffrageVoter
		}
		if st, ok := status[rs.ID]; ok {
			rs.Status = st
		}
		out.Servers = append(out.Servers, rs)
	}
	slices.SortFunc(out.Servers, func(a, b api.RaftServer) int { return strings.Compare(a.ID, b.ID) })
	writeJSON(w, out)
}
