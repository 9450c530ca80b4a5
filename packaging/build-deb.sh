#!/usr/bin/env bash
# Builds the edge .deb packages (amd64, arm64, armhf) from the static
# builds of `make build cross`, with dpkg-deb alone (no debhelper):
#
#   packaging/build-deb.sh [--bin DIR] [--out DIR] [--version VERSION] [ARCH...]
#   packaging/build-deb.sh --debian-version VERSION
#
# --bin holds edged and edgectl for this host (amd64 package) and the ARM
# builds in linux_arm64/ (arm64) and linux_armv7/ (armhf); default bin/.
# --out receives edge_<version>_<arch>.deb; default dist/. VERSION is the
# git describe output the binaries carry (make passes its own); the package
# version is made from it (--debian-version prints just that):
#
#   v1.2.0              -> 1.2.0-1
#   v1.2.0-rc1          -> 1.2.0~rc1-1     (sorts before 1.2.0)
#   v1.2.0-3-gabc1234   -> 1.2.0+git20261121.182105.abc1234-1
#   0c95286 (no tag)    -> 0.0~git20261121.182105.0c95286-1
#   any of them -dirty  -> the same with +dirty before the revision
#
# The date is the commit's (SOURCE_DATE_EPOCH, else HEAD's commit time, in
# UTC), so versions grow with the history. Environment: DEB_MAINTAINER
# (Maintainer field), DEB_REVISION (default 1), SOURCE_DATE_EPOCH.
set -euo pipefail
umask 022

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

die() {
	echo "build-deb.sh: $*" >&2
	exit 1
}

# commit_epoch prints SOURCE_DATE_EPOCH, else the commit time of HEAD.
commit_epoch() {
	if [[ -n ${SOURCE_DATE_EPOCH:-} ]]; then
		[[ $SOURCE_DATE_EPOCH =~ ^[0-9]+$ ]] || die "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH: not a number of seconds"
		echo "$SOURCE_DATE_EPOCH"
		return
	fi
	git -C "$root" log -1 --format=%ct 2>/dev/null ||
		die "no SOURCE_DATE_EPOCH and no git history to date the version"
}

# commit_stamp prints the commit time as YYYYMMDD.HHMMSS in UTC.
commit_stamp() {
	local e
	e=$(commit_epoch) || exit 1
	TZ=UTC date -d "@$e" +%Y%m%d.%H%M%S
}

# debian_version VERSION prints the package version for a git describe
# output (see the top of this file).
debian_version() {
	local v=$1 dirty="" up stamp
	local upchars='^[0-9][0-9A-Za-z.+~]*$'
	if [[ $v == *-dirty ]]; then
		dirty=+dirty
		v=${v%-dirty}
	fi
	if [[ $v =~ ^v?([0-9][0-9A-Za-z.~-]*)-([0-9]+)-g([0-9a-f]{4,40})$ ]]; then
		local tag=${BASH_REMATCH[1]} hash=${BASH_REMATCH[3]}
		up=${tag//-/\~}
		[[ $up =~ $upchars ]] || die "VERSION $1: tag $tag cannot become a Debian version"
		stamp=$(commit_stamp) || exit 1
		up="$up+git$stamp.$hash"
	elif [[ $v =~ ^[0-9a-f]{7,40}$ ]]; then
		stamp=$(commit_stamp) || exit 1
		up="0.0~git$stamp.$v"
	elif [[ $v =~ ^v?([0-9][0-9A-Za-z.~-]*)$ ]]; then
		up=${BASH_REMATCH[1]//-/\~}
		[[ $up =~ $upchars ]] || die "VERSION $1: cannot become a Debian version"
	else
		die "VERSION $1: neither a git describe output (v1.2.0, v1.2.0-3-gabc1234, abc1234) nor a version; set VERSION=1.2.0"
	fi
	echo "$up$dirty-${DEB_REVISION:-1}"
}

bin=$root/bin
out=$root/dist
version=""
arches=()
while (($# > 0)); do
	case $1 in
	--bin) bin=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--version) version=$2; shift 2 ;;
	--debian-version)
		[[ $# == 2 ]] || die "usage: build-deb.sh --debian-version VERSION"
		debian_version "$2"
		exit 0
		;;
	-h | --help) sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
	-*) die "unknown option $1 (see --help)" ;;
	*) arches+=("$1"); shift ;;
	esac
done
((${#arches[@]} > 0)) || arches=(amd64 arm64 armhf)
if [[ -z $version ]]; then
	version=$(git -C "$root" describe --tags --always --dirty 2>/dev/null) ||
		die "no --version and no git describe"
fi
debver=$(debian_version "$version")
epoch=$(commit_epoch)
export SOURCE_DATE_EPOCH=$epoch
maintainer=${DEB_MAINTAINER:-edge maintainers <edge@example.com>}
for t in dpkg-deb gzip md5sum; do
	command -v "$t" >/dev/null || die "$t not found (Debian package dpkg or coreutils)"
done

# The host's edgectl writes the completions and the manual pages; they are
# the same for every architecture.
host_ctl=$bin/edgectl
[[ -x $host_ctl ]] || die "$host_ctl: missing (make build)"
"$host_ctl" version >/dev/null 2>&1 || die "$host_ctl does not run on this machine (make build builds it for the host)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- generated once: completions, manual pages, copyright, changelog ---
gen=$work/gen
mkdir -p "$gen"
"$host_ctl" completion bash >"$gen/edgectl.bash"
# zsh loads a completion from its fpath only with a #compdef line, and
# runs the file as the completion function at the first Tab: the bash
# completion (through bashcompinit) that `edgectl completion zsh` prints
# is defined then, and answers that first Tab too.
{
	echo "#compdef edgectl"
	"$host_ctl" completion zsh
	echo "_bash_complete -F _edgectl"
} >"$gen/edgectl.zsh"

# man_text escapes text for a no-fill block of a manual page.
man_text() {
	expand | sed -e 's/\\/\\e/g' -e 's/^\([.'"'"']\)/\\\&\1/' -e 's/-/\\-/g'
}
mandate=$(TZ=UTC date -d "@$epoch" +%Y-%m-%d)
{
	cat <<EOF
.TH EDGED 8 "$mandate" "edge $version" "System Administration"
.SH NAME
edged \\- edge site daemon: discovery, gossip cluster, site config, hardware drivers
.SH SYNOPSIS
.B edged
.RB [ \\-\\-config
.IR file ]
.RB [ \\-\\-version ]
.SH DESCRIPTION
.B edged
runs on every device of a site as the systemd service
.BR edged.service ,
as user edged. It finds the other nodes of its site with mDNS, joins their
encrypted gossip cluster, replicates the site config with raft over mutual
TLS and drives the hardware of its own node. Operators talk to it with
.BR edgectl (1)
over the local socket /run/edged/edged.sock.
.SH OPTIONS
.nf
EOF
	"$bin/edged" -help 2>&1 | sed '1s/^Usage of .*/Usage of edged:/' | man_text
	cat <<'EOF'
.fi
.SH FILES
.TP
/etc/edged/edged.yaml
the node config (an example: /usr/share/doc/edge/examples/edged.yaml)
.TP
/etc/edged/gossip.key
the site's gossip key, root:edged 0640
.TP
/var/lib/edged
the raft replica, the serf snapshot and the change journal
.TP
/usr/share/edge/profiles
device profiles to copy and adapt
.SH EXIT STATUS
0 on a clean stop; 78 when the config is refused (systemd does not restart
it then).
.SH SEE ALSO
.BR edgectl (1),
.BR systemctl (1),
/usr/share/doc/edge/README.md and /usr/share/doc/edge/docs/
EOF
} >"$gen/edged.8"

{
	cat <<EOF
.TH EDGECTL 1 "$mandate" "edge $version" "User Commands"
.SH NAME
edgectl \\- operate an edge site through the local edged
.SH SYNOPSIS
.B edgectl
.RB [ \\-\\-socket
.IR path ]
.I command
.RI [ options ]
.SH DESCRIPTION
.B edgectl
talks to the
.BR edged (8)
of this node over its socket (default /run/edged/edged.sock; members of
group edged may use it without root).
.PP
.nf
EOF
	"$host_ctl" --help 2>&1 | man_text
	echo ".fi"
	echo ".SH COMMANDS"
	"$host_ctl" --help 2>&1 | awk '/^commands:/ {f = 1; next} f && /^  [a-z]/ {print $1} f && /^$/ {exit}' |
		while read -r cmd; do
			help=$("$host_ctl" "$cmd" --help 2>&1) || continue
			echo ".SS $cmd"
			echo ".nf"
			printf '%s\n' "$help" | sed "1s/^Usage of $cmd:\$/edgectl $cmd [options]/" | man_text
			echo ".fi"
		done
	cat <<'EOF'
.SH EXIT STATUS
0 success; 1 an error, explained in one line on standard error; 2 bad usage.
.SH SEE ALSO
.BR edged (8),
/usr/share/doc/edge/docs/operations.md
EOF
} >"$gen/edgectl.1"

# The statically linked Go modules, each with the licence its source
# declares (looked up in the module cache; "unknown" when it is not there).
licence_of() {
	local dir=$1 f
	for f in "$dir"/LICENSE* "$dir"/LICENCE* "$dir"/COPYING*; do
		[[ -f $f ]] || continue
		if grep -q 'Mozilla Public License' "$f"; then echo MPL-2.0
		elif grep -q 'Apache License' "$f"; then echo Apache-2.0
		elif grep -q 'Permission is hereby granted, free of charge' "$f"; then echo MIT
		elif grep -q 'Permission to use, copy, modify, and/or distribute' "$f"; then echo ISC
		elif grep -qi 'Neither the name' "$f"; then echo BSD-3-Clause
		elif grep -qi 'Redistributions in binary form' "$f"; then echo BSD-2-Clause
		else echo "see its $(basename "$f")"
		fi
		return
	done
	echo unknown
}
modcache=$(go env GOMODCACHE 2>/dev/null || true)
modules=$(go version -m "$bin/edged" "$bin/edgectl" 2>/dev/null | awk '$1 == "dep" {print $2, $3}' | sort -u) ||
	die "go version -m $bin/edged: cannot list its modules"
[[ -n $modules ]] || die "go version -m $bin/edged: no modules listed"
while read -r mod ver; do
	# The module cache writes capitals as !lowercase.
	esc=$(sed 's/[A-Z]/!\L&/g' <<<"$mod")
	printf '  %s %s: %s\n' "$mod" "$ver" "$(licence_of "$modcache/$esc@$ver")"
done <<<"$modules" >"$gen/modules"
awk -v mods="$gen/modules" -v year="$(TZ=UTC date -d "@$epoch" +%Y)" '
	/^@MODULES@$/ {while ((getline l < mods) > 0) print " " l; next}
	{gsub(/@YEAR@/, year); print}' "$here/copyright.in" >"$gen/copyright"

# fill FILE NAME=VALUE...: FILE with each @NAME@ replaced by its VALUE.
fill() {
	local text kv
	text=$(<"$1")
	shift
	for kv in "$@"; do
		text=${text//@${kv%%=*}@/${kv#*=}}
	done
	printf '%s\n' "$text"
}
fill "$here/changelog.in" VERSION="$debver" GITVERSION="$version" MAINTAINER="$maintainer" \
	DATE="$(LC_ALL=C TZ=UTC date -R -d "@$epoch")" >"$gen/changelog.Debian"

# --- one package per architecture ---
mkdir -p "$out"
for arch in "${arches[@]}"; do
	case $arch in
	amd64) src=$bin want="x86-64" ;;
	arm64) src=$bin/linux_arm64 want="ARM aarch64" ;;
	armhf) src=$bin/linux_armv7 want="ARM, EABI5" ;;
	*) die "unknown architecture $arch (amd64, arm64, armhf)" ;;
	esac
	for b in edged edgectl; do
		[[ -f $src/$b ]] || die "$src/$b: missing (make build cross)"
		if command -v file >/dev/null; then
			info=$(file -b "$src/$b")
			[[ $info == *"$want"* ]] || die "$src/$b is not a $arch program: $info"
			[[ $info == *"statically linked"* ]] || die "$src/$b is not statically linked: $info"
		fi
	done
	s=$work/$arch
	doc=$s/usr/share/doc/edge
	install -d "$s/DEBIAN" "$s/usr/bin" "$s/lib/systemd/system" "$s/usr/lib/sysusers.d" \
		"$doc/docs" "$doc/examples" "$s/usr/share/edge/profiles" \
		"$s/usr/share/bash-completion/completions" "$s/usr/share/zsh/vendor-completions" \
		"$s/usr/share/man/man1" "$s/usr/share/man/man8" "$s/usr/share/lintian/overrides"
	install -m 0755 "$src/edged" "$src/edgectl" "$s/usr/bin/"
	install -m 0644 "$root/systemd/edged.service" "$s/lib/systemd/system/edged.service"
	install -m 0644 "$root/systemd/edged.sysusers" "$s/usr/lib/sysusers.d/edged.conf"
	install -m 0644 "$gen/copyright" "$doc/copyright"
	gzip -9n <"$gen/changelog.Debian" >"$doc/changelog.Debian.gz"
	install -m 0644 "$root/README.md" "$doc/"
	install -m 0644 "$root"/docs/*.md "$doc/docs/"
	install -m 0644 "$root/examples/edged.yaml" "$root/examples/site.yaml" "$doc/examples/"
	install -m 0644 "$root"/examples/profiles/*.yaml "$s/usr/share/edge/profiles/"
	install -m 0644 "$gen/edgectl.bash" "$s/usr/share/bash-completion/completions/edgectl"
	install -m 0644 "$gen/edgectl.zsh" "$s/usr/share/zsh/vendor-completions/_edgectl"
	gzip -9n <"$gen/edgectl.1" >"$s/usr/share/man/man1/edgectl.1.gz"
	gzip -9n <"$gen/edged.8" >"$s/usr/share/man/man8/edged.8.gz"
	install -m 0644 "$here/lintian-overrides" "$s/usr/share/lintian/overrides/edge"
	chmod 0644 "$doc/changelog.Debian.gz" "$s"/usr/share/man/man*/*.gz

	install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$s/DEBIAN/"
	(cd "$s" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$s/DEBIAN/md5sums"
	chmod 0644 "$s/DEBIAN/md5sums"
	size=$(du -sk --apparent-size --exclude=DEBIAN "$s" | cut -f1)
	fill "$here/control.in" VERSION="$debver" ARCH="$arch" MAINTAINER="$maintainer" SIZE="$size" >"$s/DEBIAN/control"
	chmod 0644 "$s/DEBIAN/control"

	find "$s" -exec touch -h -d "@$epoch" {} +
	deb=$out/edge_${debver}_$arch.deb
	dpkg-deb --root-owner-group -Zxz --build "$s" "$deb" >/dev/null
	echo "$deb"
done
