# Pouch — P2P distribution for container images and large files.
GO      ?= go
BIN     := bin
CMDS    := supernode dfdaemon dfget pouch dfbench
TIMEOUT ?= 14m
# The Kubernetes binaries of test-k8s live outside the repository, so a second run reuses them.
K8S_CACHE ?= /var/cache/pouch-k8s

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-12s %s\n", $$1, $$2}'

build: ## build every binary into bin/
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(addprefix ./cmd/,$(filter $(notdir $(wildcard cmd/*)),$(CMDS)))

test: ## vet, unit tests with the race detector, then end-to-end tests with real processes (the short fault tests among them)
	$(GO) vet ./...
	$(GO) test -race -short -count=1 ./...
	$(GO) test -count=1 -timeout $(TIMEOUT) ./...

test-faults: ## the long fault tests with real processes (bursts of 20 with peers killed, repeated supernode restarts)
	POUCH_FAULTS=long $(GO) test -count=1 -v -run '^TestFault' -timeout 60m ./e2e/

test-k8s: ## a real single-node Kubernetes on loopback (root; its binaries built once, cached outside the repo)
	cd deploy/k8s/k8stest && $(GO) vet ./...
	@mkdir -p out/k8s
	bin=$$(POUCH_K8S_CACHE=$(K8S_CACHE) deploy/k8s/build-kube.sh) && cd deploy/k8s/k8stest && \
		POUCH_K8S_BIN=$$bin $(GO) test -count=1 -v -timeout 20m -artifacts -outputdir $(CURDIR)/out/k8s ./...

demo: build ## a local cluster on loopback: origin, supernode, three dfdaemons, a download on each node
	$(BIN)/dfbench demo

bench: build ## a quick dfbench run (N = 8, 64 MiB) and the Go benchmarks of the data path
	$(BIN)/dfbench run --nodes 8 --size 64MiB --upload-rate 20MB --download-rate 20MB --baseline --origin-rate 20MB --out out/bench
	$(GO) test -run '^$$' -bench . -benchtime 2x ./piece/ ./internal/peer/

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

clean: ## remove build and bench output
	rm -rf $(BIN) out

.PHONY: help build test test-faults test-k8s demo bench lint clean
