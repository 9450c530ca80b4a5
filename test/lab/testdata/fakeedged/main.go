// Command fakeedged stands in for edged in the lab's own tests. It reads the
// node config the lab writes, checks the key file, listens on the API socket,
// answers UDP probes on the gossip port and mDNS-group probes (224.0.0.251
// and ff02::fb, port 5353) with its node name, sends READY=1 to
// $NOTIFY_SOCKET and runs until SIGTERM, when it sends STOPPING=1 and exits 0.
//
// Extra config keys steer it: fake_fail: true (exit 3 at once),
// fake_no_ready: true (never send READY=1), fake_ready_delay: DURATION.
package main

import (
	"bufio"
	"encoding/base64"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	config := flag.String("config", "", "node config file")
	fail := flag.Bool("fail", false, "exit 3 at once")
	flag.Parse()
	if err := run(*config, *fail); err != nil {
		fmt.Fprintln(os.Stderr, "fakeedged:", err)
		os.Exit(3)
	}
}

func run(path string, fail bool) error {
	cfg, err := readConfig(path)
	if err != nil {
		return err
	}
	if fail || cfg["fake_fail"] == "true" {
		return fmt.Errorf("failing as asked")
	}
	key, err := os.ReadFile(unquote(cfg["key_file"]))
	if err != nil {
		return err
	}
	if k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(key))); err != nil || len(k) != 32 {
		return fmt.Errorf("bad key file %s", cfg["key_file"])
	}
	name := unquote(cfg["node"])
	port, err := strconv.Atoi(cfg["gossip_port"])
	if err != nil {
		return fmt.Errorf("gossip_port: %w", err)
	}

	echo, err := net.ListenUDP("udp", &net.UDPAddr{Port: port})
	if err != nil {
		return err
	}
	go answer(echo, echo, name)
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		return err
	}
	for _, g := range []struct{ net, addr string }{{"udp4", "224.0.0.251"}, {"udp6", "ff02::fb"}} {
		m, err := net.ListenMulticastUDP(g.net, ifi, &net.UDPAddr{IP: net.ParseIP(g.addr), Port: 5353})
		if err != nil {
			return fmt.Errorf("multicast %s: %w", g.addr, err)
		}
		go answer(m, echo, name)
	}

	sock := unquote(cfg["socket"])
	os.Remove(sock)
	api, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	defer api.Close()

	if d := cfg["fake_ready_delay"]; d != "" {
		dd, err := time.ParseDuration(d)
		if err != nil {
			return err
		}
		time.Sleep(dd)
	}
	if cfg["fake_no_ready"] != "true" {
		if err := notify("READY=1"); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "fakeedged: %s ready pid=%d\n", name, os.Getpid())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	_ = notify("STOPPING=1")
	fmt.Fprintf(os.Stderr, "fakeedged: %s stopping\n", name)
	return nil
}

// answer replies "NAME PAYLOAD" to every datagram read from in, through out.
func answer(in, out *net.UDPConn, name string) {
	buf := make([]byte, 1500)
	for {
		n, from, err := in.ReadFromUDP(buf)
		if err != nil {
			return
		}
		_, _ = out.WriteToUDP([]byte(name+" "+string(buf[:n])), from)
	}
}

func notify(msg string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(msg))
	return err
}

// readConfig reads the top-level "key: value" lines of a node config.
func readConfig(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cfg := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == ' ' || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%s: bad line %q", path, line)
		}
		cfg[k] = strings.TrimSpace(v)
	}
	return cfg, sc.Err()
}

func unquote(s string) string {
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return s
}
