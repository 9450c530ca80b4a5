# edge: build, test and demo. `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GO        ?= go
GOPATH_BIN := $(shell $(GO) env GOPATH 2>/dev/null)/bin
# Tools from `make deps` (staticcheck, the stock serf agent) live here.
export PATH := $(GOPATH_BIN):$(PATH)

VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X edge/daemon/api.Version=$(VERSION)
GOBUILD   := $(GO) build -trimpath -ldflags "$(LDFLAGS)"

BIN       := bin
DIST      := dist
HOST_CMDS := ./cmd/edged ./cmd/edgectl ./cmd/edgelab
ARM_CMDS  := ./cmd/edged ./cmd/edgectl

# Fuzz time per target: short in make test, longer in make fuzz.
FUZZTIME  ?= 10s
DEMO_NODES ?= 5

# Portable packages whose unit tests also run under qemu-user on ARM.
ARM_TEST_PKGS ?= ./internal/... ./hardware/ ./hardware/serial/ ./hardware/line/ ./hardware/modbus/ ./hardware/sim/ ./daemon/ ./discovery/

.PHONY: help build cross deb size deps test test-arm fuzz lint demo bench check clean

help: ## list the targets
	@echo "usage: make TARGET   (VERSION=$(VERSION))"
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "} {printf "  %-8s %s\n", $$1, $$2}'

build: ## build bin/edged, bin/edgectl, bin/edgelab for this host (static, like the ARM builds)
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GOBUILD) -o $(BIN)/ $(HOST_CMDS)

cross: ## static ARM builds: bin/linux_arm64/, bin/linux_armv7/
	@mkdir -p $(BIN)/linux_arm64 $(BIN)/linux_armv7
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GOBUILD) -o $(BIN)/linux_arm64/ $(ARM_CMDS)
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GOBUILD) -o $(BIN)/linux_armv7/ $(ARM_CMDS)

deb: cross build ## .deb packages for amd64, arm64, armhf in dist/
	bash packaging/build-deb.sh --bin $(BIN) --out $(DIST) --version $(VERSION)

deps: ## install Debian packages and Go tools the tests need (as root)
	bash .ci/deps.sh

test: deps build ## the whole suite with -race (root for namespaces), then short fuzz runs
	EDGE_BIN=$(CURDIR)/$(BIN) $(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) --no-print-directory test-arm
	FUZZTIME=$(FUZZTIME) bash test/fuzz.sh

test-arm: ## unit tests of the portable packages under qemu-aarch64 and qemu-arm
	@command -v qemu-aarch64 >/dev/null || { echo "qemu-aarch64 not found: run make deps" >&2; exit 1; }
	CGO_ENABLED=0 GOARCH=arm64 $(GO) test -count=1 -exec qemu-aarch64 $$($(GO) list -e -f '{{if not .Error}}{{.ImportPath}}{{end}}' $(ARM_TEST_PKGS) 2>/dev/null)
	CGO_ENABLED=0 GOARCH=arm GOARM=7 $(GO) test -count=1 -exec qemu-arm $$($(GO) list -e -f '{{if not .Error}}{{.ImportPath}}{{end}}' $(ARM_TEST_PKGS) 2>/dev/null)
	$(MAKE) --no-print-directory size

# DESIGN.md: the stripped arm64 edged stays within 15 MB (15728640 bytes).
size: cross ## the size of each build of edged; fails when arm64's passes 15 MB
	@for f in $(BIN)/edged $(BIN)/linux_arm64/edged $(BIN)/linux_armv7/edged; do \
		[ -f "$$f" ] && stat -c '%s %n' "$$f"; done | awk '{printf "size %-26s %9d bytes %5.1f MB\n", $$2, $$1, $$1 / 1048576}'
	@s=$$(stat -c %s $(BIN)/linux_arm64/edged); [ "$$s" -le 15728640 ] || \
		{ echo "size: $(BIN)/linux_arm64/edged is $$s bytes, over the 15 MB of DESIGN.md" >&2; exit 1; }

fuzz: FUZZTIME = 2m
fuzz: ## fuzz every Fuzz target for 2m each (make fuzz FUZZTIME=10m for longer)
	FUZZTIME=$(FUZZTIME) bash test/fuzz.sh

lint: ## go vet + staticcheck
	$(GO) vet ./...
	@command -v staticcheck >/dev/null || { echo "staticcheck not found: run make deps" >&2; exit 1; }
	staticcheck ./...

# edgelab up writes to a file, not a pipe: node processes may keep its stdout
# open. The first path ending in .sock in its output is node1's socket.
demo: build ## as root: 5-node lab in network namespaces, then edgectl status
	@[ "$$(id -u)" = 0 ] || { echo "make demo: needs root (network namespaces)" >&2; exit 1; }
	-$(BIN)/edgelab down
	$(BIN)/edgelab up -n $(DEMO_NODES) > $(BIN)/demo-up.txt
	@cat $(BIN)/demo-up.txt
	@sock=$$(awk '{for (i = 1; i <= NF; i++) if ($$i ~ /\.sock$$/) {s = $$i; sub(/^.*=/, "", s); print s; exit}}' $(BIN)/demo-up.txt); \
	[ -n "$$sock" ] || { echo "make demo: no socket path in the edgelab up output" >&2; exit 1; }; \
	for i in $$(seq 50); do $(BIN)/edgectl --socket "$$sock" status --json | grep -q '"quorum": true' && break; sleep 0.2; done; \
	echo; echo "+ $(BIN)/edgectl --socket $$sock status"; \
	$(BIN)/edgectl --socket "$$sock" status; \
	echo; echo "The lab is still running. Try: $(BIN)/edgelab status, $(BIN)/edgelab kill NODE"; \
	echo "Tear it down with: $(BIN)/edgelab down"

bench: deps build ## as root: benchmarks in test/bench (one iteration each)
	@if find test/bench -name '*_test.go' 2>/dev/null | grep -q .; then \
		echo "EDGE_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./test/bench/..."; \
		EDGE_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./test/bench/...; \
	else \
		echo "make bench: no benchmarks in test/bench yet"; \
	fi

check: lint build cross test ## lint, build, cross, test

clean: ## remove bin/ and dist/
	rm -rf $(BIN) $(DIST)
