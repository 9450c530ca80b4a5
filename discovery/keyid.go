package discovery

// SetKeyID changes the gossip key id advertised in TXT, after the node's
// primary gossip key changed (a key rotation). A running Discovery
// advertises the new TXT at once; peers see it in their next browse session.
func (d *Discovery) SetKeyID(id string) error {
	d.mu.Lock()
	if d.cfg.KeyID == id {
		d.mu.Unlock()
		return nil
	}
	d.cfg.KeyID = id
	adv := d.adv
	d.mu.Unlock()
	if adv == nil {
		return nil
	}
	return adv.refresh()
}
