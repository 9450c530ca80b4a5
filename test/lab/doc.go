// Package lab builds a site lab: N edged nodes, each in its own Linux network
// namespace, wired to one bridge, for demos, end-to-end tests, benchmarks and
// chaos experiments. It is Linux only and needs root.
//
// Layout. A lab with prefix P has one bridge namespace "P-br" holding bridge
// br0 (multicast snooping off, so IPv4 and IPv6 multicast such as mDNS are
// flooded to every port) and one namespace "P-NODE" per node. A node
// namespace has lo up and eth0, a veth whose peer ("vethI") is a port of br0,
// with the address subnet+10+I/len (node1 is 192.0.2.11/24 by default), a
// device route "default dev eth0" and IPv6 duplicate address detection
// turned off so link-local addresses are usable at once.
//
// Files. Everything lives under Config.Dir (default /run/edgelab):
//
//	lab.json            state, rewritten atomically before anything is created
//	lab.lock            flock held while the state is read-modified-written
//	site.key            base64 of 32 random bytes, mode 0600
//	NODE/edged.yaml     node config
//	NODE/edged.log      stdout and stderr of the node's process
//	NODE/edged.sock     the daemon's local API socket (made by the daemon)
//	NODE/notify.sock    NOTIFY_SOCKET given to the daemon
//	NODE/data/          data_dir
//
// Processes. Each node's process is started with "ip netns exec NS ARGV" in
// its own session, with the node directory as working directory, so it
// outlives the process that made the lab (the edgelab CLI). Its environment
// is ours without NOTIFY_SOCKET, WATCHDOG_* and LISTEN_*, plus
// NOTIFY_SOCKET=NODE/notify.sock, EDGELAB_NODE, EDGELAB_ADDR, EDGELAB_CONFIG,
// then Config.Env and NodeSpec.Env. The lab waits for READY=1 on the node's
// NOTIFY_SOCKET: that is the only synchronisation, there are no sleeps. The
// socket is read only while the Lab value that started the node lives (the
// CLI exits after "up"), so a daemon must ignore sd_notify errors.
//
// Releases. Every node runs Config.Edged unless NodeSpec.Edged names
// another binary; Lab.SetEdged swaps a node's binary from its next Start, so
// a test can stop a node, give it another release and start it again (a
// rolling upgrade or a downgrade). So the node configs the lab writes hold
// only keys the previous release accepts too (its parser refuses unknown
// keys); options that need newer keys write them only when a test sets them.
//
// Faults. Partition and Loss install one nftables table, "table bridge
// edgelab", in the bridge namespace. Filtering at the bridge sees every frame
// between nodes (ARP, IPv4, IPv6 link-local, unicast, multicast and
// broadcast) exactly once per receiving port and never touches a node's
// loopback traffic, so there is no class of packet that leaks across a
// partition, and one nft transaction switches the whole lab at once.
//
// State. lab.json is written atomically (temporary file, fsync, rename,
// directory fsync) before any namespace or process exists, so a crash at any
// point leaves enough behind for Down or Clean from another process.
//
// Teardown. Down, and Clean for a lab whose state file may be lost, kill every
// recorded process and every process inside any namespace named "P-...",
// delete those namespaces and remove the files the lab made. Both are
// idempotent. Prefixes may not contain '-', so one lab's sweep never matches
// another lab's names.
package lab
