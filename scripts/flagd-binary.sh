#!/usr/bin/env bash
# Build (once) and cache flagd's evaluation engine, which the OpenFeature tests check
# gatectl's flag files with.
#
#   scripts/flagd-binary.sh            # build if needed, then print the path
#
# What is built: tests/e2e/flagdeval, a 60-line command around flagd's own evaluator
# (github.com/open-feature/flagd/core/pkg/evaluator, the code flagd's evaluation API
# runs for ResolveString), from Go modules through the Go module proxy, pinned by that
# module's go.mod/go.sum. It is kept in
#   ${GATECTL_FLAGD_CACHE:-$HOME/.cache/gatectl/flagd}/<flagd core version>/flagd-eval
# and rebuilt when the module's sources change. Stdout: the binary's path, then (last
# line) the directory. Progress goes to stderr; the go tool's output goes to build.log
# there, and its tail is printed if the build fails.
#
# Why not the flagd daemon itself (github.com/open-feature/flagd/flagd): the module
# proxy this project reaches does not serve every module flagd needs. As of flagd
# v0.16.0, `go build` of it fails on
#   github.com/open-feature/open-feature-operator/api@v0.2.47: reading
#   .../open-feature-operator/api/@v/v0.2.47.zip: 403 Forbidden
# (the Kubernetes sync flagd links in; every version of that module answers 403), and
# flagd/core v0.15.6, the version flagd v0.16.0 pins, answers 403 too. The evaluator
# package imports neither, and core v0.15.8's evaluator is v0.15.6's, unchanged.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MODULE="$ROOT/tests/e2e/flagdeval"
CACHE_ROOT="${GATECTL_FLAGD_CACHE:-$HOME/.cache/gatectl/flagd}"

say() { printf 'flagd: %s\n' "$*" >&2; }
die() { printf 'flagd: error: %s\n' "$*" >&2; exit 1; }

[[ -f "$MODULE/go.mod" ]] || die "no Go module at $MODULE"
CORE_VERSION="$(sed -n 's/^\(require\)\{0,1\}[[:space:]]*github.com\/open-feature\/flagd\/core \(v[^ ]*\).*/\2/p' "$MODULE/go.mod" | head -n 1)"
[[ -n "$CORE_VERSION" ]] || die "$MODULE/go.mod requires no github.com/open-feature/flagd/core"
DIR="$CACHE_ROOT/$CORE_VERSION"
BINARY="$DIR/flagd-eval"
STAMP="$DIR/flagd-eval.sources"
SOURCES="$(cat "$MODULE/go.mod" "$MODULE/go.sum" "$MODULE/main.go" | sha256sum | cut -d' ' -f1)"

cached() {
    [[ -x "$BINARY" && -f "$STAMP" ]] && [[ "$(<"$STAMP")" == "$SOURCES" ]]
}

report() {
    printf '%s\n%s\n' "$BINARY" "$DIR"
}

# The fast path: no go, no lock, no network.
if cached; then
    report
    exit 0
fi

command -v go >/dev/null 2>&1 || die "the go tool is not on PATH (Go 1.25+ builds flagd core $CORE_VERSION)"
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

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gatectl-flagd-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
: >"$LOG"

# go.sum pins every module; the checksum database is asked about none of them.
export GOFLAGS="-mod=readonly -buildvcs=false"
export GONOSUMDB="github.com/open-feature/flagd"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export CGO_ENABLED=0

start=$SECONDS
say "building flagd-eval (flagd core $CORE_VERSION; first run only, minutes; log: $LOG)"
printf '### go build -trimpath -o flagd-eval . (in %s)\n' "$MODULE" >>"$LOG"
if ! (cd "$MODULE" && go build -trimpath -ldflags "-s -w" -o "$WORK/flagd-eval" .) >>"$LOG" 2>&1; then
    printf 'flagd: error: go build failed; the end of %s:\n' "$LOG" >&2
    tail -n 25 "$LOG" | sed 's/^/    /' >&2
    exit 1
fi
mv -f "$WORK/flagd-eval" "$BINARY"
printf '%s\n' "$SOURCES" >"$STAMP"
say "built in $((SECONDS - start))s: $DIR"
report
