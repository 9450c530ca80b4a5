// Package deb tests the Debian packages that `make deb` builds
// (packaging/build-deb.sh): their version, files, modes and control
// scripts for amd64, arm64 and armhf, lintian's verdict, and the real
// dpkg installing, upgrading, removing and purging the amd64 package in a
// throwaway copy of this machine's root (an overlayfs in a private mount
// namespace), once more under a real systemd as PID 1. The tests need
// root, dpkg-deb, lintian and zsh (make deps); the machine is left as it
// was.
package deb
