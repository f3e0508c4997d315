# Pouch — P2P distribution for container images and large files.
GO      ?= go
BIN     := bin
CMDS    := supernode dfdaemon dfget pouch dfbench
TIMEOUT ?= 14m
# What --version prints and the image's tag; override for a release: make image VERSION=v0.3.0.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
CREATED ?= $(shell git log -1 --format=%cI 2>/dev/null)
LDFLAGS := -X github.com/pouch-p2p/pouch/internal/version.version=$(VERSION) -X github.com/pouch-p2p/pouch/internal/version.commit=$(COMMIT)
# make image: the platforms to build (several make a multi-platform index); make image-push:
# where to (IMAGE_REPO=host:port/pouch), IMAGE_INSECURE=1 for a plain-HTTP registry.
PLATFORMS ?= linux/$(shell $(GO) env GOARCH)
IMAGE_REPO ?=
IMAGE_INSECURE ?=
IMAGE_ARGS = --version $(VERSION) --revision $(COMMIT) $(if $(CREATED),--created $(CREATED)) \
	$(addprefix --platform ,$(PLATFORMS)) --work-dir ../out/image --out ../out/image/oci
# The Kubernetes binaries of test-k8s live outside the repository, so a second run reuses them.
K8S_CACHE ?= /var/cache/pouch-k8s

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-12s %s\n", $$1, $$2}'

# dfget is linked statically, as every binary of the image is: it starts for every download, and
# the dynamic loader (which net's cgo resolver brings in) adds 0.6 ms to each start.
build: ## build every binary into bin/
	@mkdir -p $(BIN)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ $(addprefix ./cmd/,$(filter-out dfget,$(filter $(notdir $(wildcard cmd/*)),$(CMDS))))
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/dfget

test: ## vet, unit tests with the race detector, then end-to-end tests with real processes (the short fault tests among them; artifacts such as the status page's screenshot in out/test); then deploy/'s
	$(GO) vet ./...
	$(GO) test -race -short -count=1 ./...
	@mkdir -p out/test
	$(GO) test -count=1 -timeout $(TIMEOUT) -artifacts -outputdir $(CURDIR)/out/test ./...
	cd deploy && $(GO) vet ./... && $(GO) test -count=1 -timeout $(TIMEOUT) ./...

docs: ## rewrite docs/configuration.md's generated sections from the binaries' flags
	POUCH_UPDATE_DOCS=1 $(GO) test -count=1 -p 1 -run '^TestConfigurationReference$$' ./cmd/...

image: ## the OCI image (static binaries, CA certificates) for PLATFORMS, as an OCI layout in out/image/oci
	cd deploy && $(GO) run ./cmd/image $(IMAGE_ARGS)

image-push: ## make image, then push it as IMAGE_REPO:VERSION (IMAGE_INSECURE=1: plain-HTTP registry)
	@test -n "$(IMAGE_REPO)" || { echo "set IMAGE_REPO=host:port/pouch"; exit 1; }
	cd deploy && $(GO) run ./cmd/image $(IMAGE_ARGS) --push $(IMAGE_REPO) $(if $(IMAGE_INSECURE),--insecure)

test-faults: ## the long fault tests with real processes (bursts of 20 with peers killed, supernode kills and restarts): every TestFault* in e2e, build tag faults
	$(GO) test -tags faults -run '^TestFault' -count=1 -v -timeout 60m ./e2e/

test-k8s: image ## a real single-node Kubernetes on loopback (root; its binaries built once, cached outside the repo)
	cd deploy/k8s/k8stest && $(GO) vet ./...
	@mkdir -p out/k8s
	bin=$$(POUCH_K8S_CACHE=$(K8S_CACHE) deploy/k8s/build-kube.sh) && cd deploy/k8s/k8stest && \
		POUCH_K8S_BIN=$$bin POUCH_IMAGE_LAYOUT=$(CURDIR)/out/image/oci $(GO) test -count=1 -v -timeout 20m -artifacts -outputdir $(CURDIR)/out/k8s ./...

demo: build ## a local cluster on loopback: origin, supernode, three dfdaemons, a download on each node
	$(BIN)/dfbench demo

bench: build ## a quick dfbench run (N = 8, 64 MiB) and the Go benchmarks of the data path
	$(BIN)/dfbench run --nodes 8 --size 64MiB --upload-rate 20MB --download-rate 20MB --baseline --origin-rate 20MB --out out/bench
	$(GO) test -run '^$$' -bench . -benchtime 2x ./piece/ ./internal/peer/

lint: ## gofmt and go vet (both modules)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags faults ./e2e/
	cd deploy && $(GO) vet ./...

clean: ## remove build and bench output
	rm -rf $(BIN) out

.PHONY: help build docs test test-faults test-k8s image image-push demo bench lint clean
