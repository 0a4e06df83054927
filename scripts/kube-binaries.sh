#!/usr/bin/env bash
# Build (once) and cache the kube-apiserver, etcd and kubectl binaries the real-Kubernetes tests run.
#
#   scripts/kube-binaries.sh            # build if needed, then print the paths
#
# The binaries are built from Go modules (nothing else is downloaded) and kept in
#   ${GATECTL_KUBE_CACHE:-$HOME/.cache/gatectl/kube}/<k8s-version>/{kube-apiserver,etcd,kubectl}
# A run that finds them there returns at once. Stdout: the kube-apiserver path,
# the etcd path, the kubectl path, then (last line) the directory. Progress goes to stderr, one
# line per step; the go tool's output goes to build.log in that directory and
# its tail is printed if a step fails.
#
# Environment: GATECTL_KUBE_VERSION (default below), GATECTL_ETCD_VERSION,
# GATECTL_KUBE_CACHE. The first build takes several minutes and needs the Go
# module proxy; it uses the default module and build caches. kubectl comes from
# the same wrapper module and version as kube-apiserver (k8s.io/kubernetes/cmd/kubectl),
# so the CLI the tests drive is the server's own version, not whatever is on PATH.
#
# Why a wrapper module: k8s.io/kubernetes `replace`s its staging modules
# (k8s.io/api, apimachinery, apiserver, client-go, ...) with local directories,
# so `go install k8s.io/kubernetes/cmd/kube-apiserver@vX` is refused. A throw-away
# module that requires k8s.io/kubernetes vX and replaces each staging module with
# its published v0.<minor>.<patch> builds the same code. etcd's server module
# has the same kind of replaces, so it is built the same way.
set -euo pipefail

KUBE_VERSION="${GATECTL_KUBE_VERSION:-v1.37.2}"
ETCD_VERSION="${GATECTL_ETCD_VERSION:-v3.6.16}"
CACHE_ROOT="${GATECTL_KUBE_CACHE:-$HOME/.cache/gatectl/kube}"
DIR="$CACHE_ROOT/$KUBE_VERSION"
APISERVER="$DIR/kube-apiserver"
ETCD="$DIR/etcd"
KUBECTL="$DIR/kubectl"
# Each binary's version is kept next to it: another GATECTL_ETCD_VERSION rebuilds etcd only.
APISERVER_STAMP="$DIR/kube-apiserver.version"
ETCD_STAMP="$DIR/etcd.version"
KUBECTL_STAMP="$DIR/kubectl.version"

say() { printf 'kube: %s\n' "$*" >&2; }
die() { printf 'kube: error: %s\n' "$*" >&2; exit 1; }

# have BINARY STAMP VERSION: the binary is there, built from that version.
have() {
    [[ -x "$1" && -f "$2" ]] && [[ "$(<"$2")" == "$3" ]]
}

cached() {
    have "$APISERVER" "$APISERVER_STAMP" "$KUBE_VERSION" && have "$ETCD" "$ETCD_STAMP" "$ETCD_VERSION" &&
        have "$KUBECTL" "$KUBECTL_STAMP" "$KUBE_VERSION"
}

report() {
    printf '%s\n%s\n%s\n%s\n' "$APISERVER" "$ETCD" "$KUBECTL" "$DIR"
}

# The fast path: no go, no lock, no network.
if cached; then
    report
    exit 0
fi

command -v go >/dev/null 2>&1 || die "the go tool is not on PATH (Go 1.26+ is needed to build kube-apiserver $KUBE_VERSION)"
[[ "$KUBE_VERSION" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "GATECTL_KUBE_VERSION must look like v1.37.2, got '$KUBE_VERSION'"
KUBE_MINOR="${BASH_REMATCH[1]}"
KUBE_PATCH="${BASH_REMATCH[2]}"
STAGING_VERSION="v0.$KUBE_MINOR.$KUBE_PATCH"

mkdir -p "$DIR"
LOG="$DIR/build.log"

# One builder at a time (parallel test sessions); the others wait, then reuse.
exec 9>"$DIR/.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
fi
if cached; then
    report
    exit 0
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gatectl-kube-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
: >"$LOG"

export GOFLAGS="-mod=mod -buildvcs=false"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export CGO_ENABLED=0

# run STEP-DESCRIPTION CMD...: the command's output to the log; its tail on failure.
run() {
    local what="$1"
    shift
    printf '\n### %s\n### %s\n' "$what" "$*" >>"$LOG"
    if ! "$@" >>"$LOG" 2>&1; then
        printf 'kube: error: %s failed; the end of %s:\n' "$what" "$LOG" >&2
        tail -n 25 "$LOG" | sed 's/^/    /' >&2
        exit 1
    fi
}

start=$SECONDS

# wrapper_module: $WORK/kube, a module requiring k8s.io/kubernetes with its staging modules
# replaced by their published versions (made once per run, for kube-apiserver and kubectl).
wrapper_module() {
    [[ -f "$WORK/kube/go.mod" ]] && return 0
    say "downloading k8s.io/kubernetes $KUBE_VERSION"
    run "go mod download k8s.io/kubernetes@$KUBE_VERSION" \
        bash -c "cd '$WORK' && GOFLAGS= go mod download -json 'k8s.io/kubernetes@$KUBE_VERSION' >kubernetes.json; rc=\$?; cat kubernetes.json; exit \$rc"
    KUBE_GOMOD="$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' "$WORK/kubernetes.json")"
    [[ -f "$KUBE_GOMOD" ]] || die "no go.mod for k8s.io/kubernetes $KUBE_VERSION in the module cache (see $LOG)"

    # The staging modules: replaced by ./staging/... and required at v0.0.0.
    mapfile -t STAGING < <(
        awk '
            $2 == "=>" && $3 ~ /^\.\/staging\// { replaced[$1] = 1 }
            /^replace[[:space:]]+[^( ]/ && $3 == "=>" && $4 ~ /^\.\/staging\// { replaced[$2] = 1 }
            $2 == "v0.0.0" { required[$1] = 1 }
            $1 == "require" && $3 == "v0.0.0" { required[$2] = 1 }
            END { for (m in replaced) if (m in required) print m }
        ' "$KUBE_GOMOD" | sort
    )
    ((${#STAGING[@]} > 0)) || die "found no staging modules in $KUBE_GOMOD"

    mkdir -p "$WORK/kube"
    {
        printf 'module gatectl.local/kubebuild\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$KUBE_VERSION"
        for module in "${STAGING[@]}"; do
            printf '\t%s => %s %s\n' "$module" "$module" "$STAGING_VERSION"
        done
        printf ')\n'
    } >"$WORK/kube/go.mod"
    cat "$WORK/kube/go.mod" >>"$LOG"
    say "wrapper module: ${#STAGING[@]} staging modules at $STAGING_VERSION"
}

# build_kube NAME BINARY STAMP: k8s.io/kubernetes/cmd/NAME from the wrapper module, stamped.
build_kube() {
    local name="$1" binary="$2" stamp="$3"
    say "building $name $KUBE_VERSION (first run only, minutes; log: $LOG)"
    wrapper_module
    say "resolving modules for $name"
    run "go get $name's modules" \
        bash -c "cd '$WORK/kube' && go get 'k8s.io/kubernetes/cmd/$name@$KUBE_VERSION'"
    say "compiling $name"
    local build_date ldflags pkg
    build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    ldflags="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$KUBE_MINOR"
        ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
    done
    run "go build $name" \
        bash -c "cd '$WORK/kube' && go build -trimpath -ldflags '$ldflags' -o '$WORK/$name' 'k8s.io/kubernetes/cmd/$name'"
    local check=(--version)
    [[ "$name" == kubectl ]] && check=(version --client)
    "$WORK/$name" "${check[@]}" >>"$LOG" 2>&1 || die "the built $name does not run (see $LOG)"
    mv -f "$WORK/$name" "$binary"
    printf '%s\n' "$KUBE_VERSION" >"$stamp"
}

if ! have "$APISERVER" "$APISERVER_STAMP" "$KUBE_VERSION"; then
    build_kube kube-apiserver "$APISERVER" "$APISERVER_STAMP"
fi

if ! have "$KUBECTL" "$KUBECTL_STAMP" "$KUBE_VERSION"; then
    build_kube kubectl "$KUBECTL" "$KUBECTL_STAMP"
fi

if ! have "$ETCD" "$ETCD_STAMP" "$ETCD_VERSION"; then
    say "building etcd $ETCD_VERSION (first run only; log: $LOG)"
    mkdir -p "$WORK/etcd"
    printf 'module gatectl.local/etcdbuild\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' \
        "$ETCD_VERSION" >"$WORK/etcd/go.mod"
    run "go get etcd's modules" \
        bash -c "cd '$WORK/etcd' && go get 'go.etcd.io/etcd/server/v3@$ETCD_VERSION'"
    say "compiling etcd"
    run "go build etcd" \
        bash -c "cd '$WORK/etcd' && go build -trimpath -ldflags '-s -w' -o '$WORK/etcd-bin' go.etcd.io/etcd/server/v3"
    "$WORK/etcd-bin" --version >>"$LOG" 2>&1 || die "the built etcd does not run (see $LOG)"
    mv -f "$WORK/etcd-bin" "$ETCD"
    printf '%s\n' "$ETCD_VERSION" >"$ETCD_STAMP"
fi

say "built in $((SECONDS - start))s: $DIR"
report
