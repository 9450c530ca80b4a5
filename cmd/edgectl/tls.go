package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"time"

	"edge/internal/pki"
)

// maxDays bounds --days: a century, far below time.Duration's limit.
const maxDays = 36500

// runTLS makes the site's TLS credentials: `tls ca` the site CA, `tls cert`
// one node's certificate. It works offline, without edged.
func runTLS(ctx context.Context, e *env, args []string) error {
	return runVerb(ctx, e, "tls", args, []verb{{"ca", runTLSCA}, {"cert", runTLSCert}}, tlsUsage)
}

func tlsUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: edgectl tls ca --dir DIR --site SITE [--days N]")
	fmt.Fprintln(w, "       edgectl tls cert --ca DIR --node NAME [--ip IP ...] [--out DIR] [--days N]")
	fmt.Fprintln(w, "\nca makes the site CA once per site; cert makes one node's credentials, signed by it.")
}

// runTLSCA makes a site CA.
func runTLSCA(_ context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("tls ca", flag.ContinueOnError)
	dir := fs.String("dir", "", "`folder` for ca.crt and ca.key (created if missing)")
	site := fs.String("site", "", "`site` name, as in edged.yaml")
	days := fs.Int("days", int(pki.DefaultCAValidity/(24*time.Hour)), "validity in `days`")
	if err := parseFlags(fs, args, e.stderr); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("%w: --dir is required", errUsage)
	}
	if *site == "" {
		return fmt.Errorf("%w: --site is required", errUsage)
	}
	validity, err := daysFlag(*days)
	if err != nil {
		return err
	}
	cert, err := pki.CreateCA(*dir, *site, validity)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "created the CA of site %s, valid until %s:\n", *site, day(cert.NotAfter))
	fmt.Fprintf(e.stdout, "  %s  certificate: goes to every node (tls_ca)\n", filepath.Join(*dir, pki.CACertFile))
	_, err = fmt.Fprintf(e.stdout, "  %s  private key: keep it safe and off the nodes\n", filepath.Join(*dir, pki.CAKeyFile))
	return err
}

// runTLSCert makes one node's certificate and key, signed by the site CA.
func runTLSCert(_ context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("tls cert", flag.ContinueOnError)
	caDir := fs.String("ca", "", "`folder` of the site CA (ca.crt, ca.key)")
	node := fs.String("node", "", "node `name`, as in edged.yaml")
	out := fs.String("out", ".", "`folder` for NAME.crt, NAME.key and a copy of ca.crt (created if missing)")
	var ips ipList
	fs.Var(&ips, "ip", "an `IP` address of the node; repeat or separate with commas")
	days := fs.Int("days", 0, fmt.Sprintf("validity in `days` (default %d, never past the CA's end)",
		int(pki.DefaultNodeValidity/(24*time.Hour))))
	if err := parseFlags(fs, args, e.stderr); err != nil {
		return err
	}
	if *caDir == "" {
		return fmt.Errorf("%w: --ca is required", errUsage)
	}
	if *node == "" {
		return fmt.Errorf("%w: --node is required", errUsage)
	}
	var validity time.Duration
	if setFlag(fs, "days") {
		var err error
		if validity, err = daysFlag(*days); err != nil {
			return err
		}
	}
	cert, err := pki.CreateNodeCert(*caDir, *out, *node, ips, validity)
	if err != nil {
		return err
	}
	what := "node " + *node
	if len(ips) > 0 {
		what += " (" + ips.String() + ")"
	}
	fmt.Fprintf(e.stdout, "created the credentials of %s, valid until %s:\n", what, day(cert.NotAfter))
	fmt.Fprintf(e.stdout, "  %s  tls_cert\n", filepath.Join(*out, *node+".crt"))
	fmt.Fprintf(e.stdout, "  %s  tls_key (on the node: root:edged, mode 0640)\n", filepath.Join(*out, *node+".key"))
	_, err = fmt.Fprintf(e.stdout, "  %s  tls_ca\n", filepath.Join(*out, pki.CACertFile))
	return err
}

// daysFlag checks --days and turns it into a validity.
func daysFlag(days int) (time.Duration, error) {
	if days < 1 || days > maxDays {
		return 0, fmt.Errorf("%w: --days %d: must be 1-%d", errUsage, days, maxDays)
	}
	return time.Duration(days) * 24 * time.Hour, nil
}

// setFlag reports whether the flag name was given on the command line.
func setFlag(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// ipList is a repeatable --ip flag; each value may hold several, comma
// separated.
type ipList []net.IP

func (l *ipList) String() string {
	s := make([]string, len(*l))
	for i, ip := range *l {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}

func (l *ipList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		ip := net.ParseIP(strings.TrimSpace(part))
		if ip == nil {
			return errors.New("not an IP address")
		}
		*l = append(*l, ip)
	}
	return nil
}
