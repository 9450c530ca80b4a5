#!/usr/bin/env bash
# Installs what the build, the tests, the lab and the linters need on a
# Debian 12 machine: Debian packages, staticcheck and the stock serf agent.
# Idempotent, and quick when everything is present (no apt-get update then).
# As root (CI, the build machines) a failure is fatal; as another user (a
# developer laptop) it prints what is missing and carries on.
set -euo pipefail

STATICCHECK_VERSION=v0.8.2 # staticcheck 2026.2.2, the first that knows Go 1.26
SERF_VERSION=v0.10.2       # the stock agent, for interop tests

# Debian package -> why.
debs=(
	iproute2               # ip netns, veth, bridge: the lab
	nftables               # partitions and packet loss in the lab
	socat                  # pseudo-terminal pairs for serial tests
	avahi-daemon           # independent mDNS peer
	avahi-utils            # avahi-browse
	dbus                   # avahi-daemon needs a system bus
	iputils-ping           # reachability checks in the lab
	systemd                # systemd-analyze verify/security for the unit
	procps                 # ps, pgrep, RSS and CPU figures
	qemu-user              # qemu-aarch64/qemu-arm run the cross builds
	python3-pymodbus       # independent Modbus RTU slave
	python3-serial-asyncio # pymodbus serial transport
	mbpoll                 # independent Modbus RTU master
	etcd-server            # make bench: the raft anchor (a 3-member etcd)
	etcd-client            # etcdctl: its writer and watchers
	prometheus             # promtool check metrics on edged's GET /metrics
	lintian                # test/deb: checks the .deb packages
	zsh                    # test/deb: the packaged zsh completion loads
)

# Commands (or python modules) that must exist once the packages are in.
checks=(
	"ip" "nft" "socat" "avahi-daemon" "avahi-browse" "dbus-daemon" "ping"
	"systemd-analyze" "ps" "pgrep" "qemu-aarch64" "qemu-arm" "mbpoll" "etcd" "etcdctl" "promtool"
	"lintian" "zsh" "dpkg-deb" "unshare" "nsenter"
)
pymods=(pymodbus serial_asyncio)

log() { printf 'deps: %s\n' "$*" >&2; }

is_root() { [[ $(id -u) == 0 ]]; }

problem() {
	if is_root; then
		log "error: $*"
		exit 1
	fi
	log "warning: $*"
}

installed() {
	[[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# apt_get runs apt-get, waiting for another apt/dpkg (an unattended upgrade,
# a parallel install) to let go of its locks.
apt_get() {
	local i out
	for i in $(seq 1 60); do
		if out=$(DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300 "$@" 2>&1); then
			return 0
		fi
		if ! grep -qiE 'could not get lock|unable to lock|is another process using it' <<<"$out"; then
			printf '%s\n' "$out" >&2
			return 1
		fi
		log "apt is busy, waiting ($i)"
		sleep 5
	done
	printf '%s\n' "$out" >&2
	return 1
}

# --- Debian packages ---
missing=()
for p in "${debs[@]}"; do
	installed "$p" || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
	if is_root && command -v apt-get >/dev/null; then
		log "installing: ${missing[*]}"
		apt_get update || problem "apt-get update failed"
		apt_get install -y --no-install-recommends "${missing[@]}" || problem "apt-get install failed"
		# The package starts a system etcd where systemd runs; the benchmark
		# runs its own in the lab's namespaces and wants none left behind.
		if [[ " ${missing[*]} " == *" etcd-server "* && -d /run/systemd/system ]]; then
			systemctl disable --now etcd.service >/dev/null 2>&1 || true
		fi
		# Likewise the Prometheus server: only its promtool is wanted.
		if [[ " ${missing[*]} " == *" prometheus "* && -d /run/systemd/system ]]; then
			systemctl disable --now prometheus.service >/dev/null 2>&1 || true
		fi
	else
		log "warning: missing Debian packages (as root: apt-get install ${missing[*]})"
	fi
fi

# --- Go tools, into $(go env GOPATH)/bin, which the Makefile puts on PATH ---
gobin="$(go env GOPATH)/bin"
go_tool() { # go_tool NAME MODULE PACKAGE VERSION
	local name=$1 mod=$2 pkg=$3 version=$4 have=""
	if [[ -x $gobin/$name ]]; then
		have=$(go version -m "$gobin/$name" 2>/dev/null | awk -v m="$mod" '$1 == "mod" && $2 == m {print $3}')
	fi
	if [[ $have == "$version" ]]; then
		return 0
	fi
	log "installing $pkg@$version into $gobin${have:+ (had $have)}"
	GOBIN=$gobin GOFLAGS= go install "$pkg@$version" || problem "go install $pkg@$version failed"
}
go_tool staticcheck honnef.co/go/tools honnef.co/go/tools/cmd/staticcheck "$STATICCHECK_VERSION"
go_tool serf github.com/hashicorp/serf github.com/hashicorp/serf/cmd/serf "$SERF_VERSION"

# --- what must be there now ---
absent=()
for c in "${checks[@]}"; do
	PATH=$PATH:/usr/sbin:/sbin command -v "$c" >/dev/null || absent+=("$c")
done
for m in "${pymods[@]}"; do
	/usr/bin/python3 -c "import $m" 2>/dev/null || absent+=("python3:$m")
done
for t in staticcheck serf; do
	[[ -x $gobin/$t ]] || absent+=("$gobin/$t")
done
if ((${#absent[@]} > 0)); then
	problem "still missing: ${absent[*]}"
else
	log "ok"
fi
