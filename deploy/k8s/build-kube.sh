#!/usr/bin/env bash
# Builds the Kubernetes node binaries (kube-apiserver, kube-controller-manager, kube-scheduler,
# kubelet) from the Go module proxy into a cache outside the repository, only when the cache lacks
# one of them: a cold build takes about 11 minutes on two cores, a warm run returns at once.
#
#   POUCH_K8S_CACHE   cache root (default /var/cache/pouch-k8s); binaries land in $POUCH_K8S_CACHE/<version>/
#
# The version is the one deploy/k8s/kubebin/go.mod requires; that module replaces each of
# kubernetes' staging modules (listed with "=> ./staging" in its go.mod) with the matching
# v0.x release, which is what lets `go build` take kubernetes' commands from the proxy.
# Prints the directory holding the binaries on its last line.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mod="$here/kubebin"
version="$(cd "$mod" && go list -m -f '{{.Version}}' k8s.io/kubernetes)"
out="${POUCH_K8S_CACHE:-/var/cache/pouch-k8s}/$version"
cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet)

missing=()
for c in "${cmds[@]}"; do
  [ -x "$out/$c" ] || missing+=("$c")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "kubernetes $version: cached in $out" >&2
  echo "$out"
  exit 0
fi

minor="${version#v1.}"
minor="${minor%%.*}"
vpkg=k8s.io/component-base/version
# The same stamps kubernetes' own release build sets, so `kubelet --version` and the node's
# kubeletVersion say what was built instead of v0.0.0-master.
ldflags="-s -w -X $vpkg.gitVersion=$version -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor"
ldflags+=" -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"

mkdir -p "$out"
tmp="$(mktemp -d "$out/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
echo "kubernetes $version: building ${missing[*]} into $out (cold: about 11 minutes)" >&2
pkgs=()
for c in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
(cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}")
# Rename into place one by one: a build that dies half way never leaves a truncated binary that
# the next run would take for a cached one.
for c in "${missing[@]}"; do mv -f "$tmp/$c" "$out/$c"; done
echo "kubernetes $version: built in $(( $(date +%s) - start ))s" >&2
echo "$out"
