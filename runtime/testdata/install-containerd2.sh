#!/bin/sh
# Installs containerd 2.3.4 (containerd, ctr, containerd-shim-runc-v2) into
# /opt/containerd2/bin for the runtime integration tests. Idempotent: does
# nothing when the three binaries are already there. Needs Go and the Go
# module proxy. Set POUCH_CONTAINERD2 to use another directory.
set -eu

dir="${POUCH_CONTAINERD2:-/opt/containerd2/bin}"
version=v2.3.4

if [ -x "$dir/containerd" ] && [ -x "$dir/ctr" ] && [ -x "$dir/containerd-shim-runc-v2" ]; then
	echo "containerd 2 already installed in $dir"
	exit 0
fi

mkdir -p "$dir"
GOBIN="$dir" CGO_ENABLED=0 go install -tags 'no_btrfs no_devmapper no_zfs' \
	"github.com/containerd/containerd/v2/cmd/containerd@$version" \
	"github.com/containerd/containerd/v2/cmd/ctr@$version" \
	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$version"
echo "containerd 2 installed in $dir"
