package coord

import "edge/coord/store"

// gate refuses a command whose format version some raft server does not
// speak (store.ServersSpeak): the proposer checks before it sends, and the
// leader again before it commits, each with its own view of the site.
// Version 1, every command today, always passes.
func (r *Raft) gate(cmd store.Command) error {
	if cmd.Version <= 1 {
		return nil
	}
	f := r.store.Raft().GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	return store.ServersSpeak(f.Configuration(), r.peers(), cmd.Version)
}
