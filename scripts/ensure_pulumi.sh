#!/usr/bin/env bash
# Makes the Pulumi CLI and its Python language host available, and prints the
# directory to put on PATH as the last (and only) line of stdout:
#
#     PULUMI_BIN=$(scripts/ensure_pulumi.sh) && export PATH="$PULUMI_BIN:$PATH"
#
# Everything else (progress, build output, errors) goes to stderr.
#
# The version comes from one place: tools/pulumi/VERSION. It must equal the
# pulumi/pkg/v3 and sdk/v3 requires in tools/pulumi/go.mod and, when
# pyproject.toml pins the Python SDK (`pulumi==X`), that pin; this script
# refuses to go on if they disagree.
#
# Order of preference:
#   1. a `pulumi` already on PATH whose `pulumi version` is exactly the pinned
#      version and that has `pulumi-language-python` beside it (an official
#      install); any other version is ignored, so every machine runs the same
#      engine as the pinned SDK. Set KMS_IAC_PULUMI_IGNORE_PATH=1 to skip this.
#   2. the cache, ${KMS_IAC_PULUMI_CACHE:-${XDG_CACHE_HOME:-~/.cache}/kms-iac/pulumi}/<version>/bin,
#      when it holds all the binaries and was built from the current
#      tools/pulumi sources (a stamp of their hash): this is instant.
#   3. otherwise a build from the Go module proxy with `go` (Go >= the go line
#      of tools/pulumi/go.mod), via the tools/pulumi module: the CLI from
#      github.com/pulumi/pulumi/pkg/v3/cmd/pulumi, the Python language host from
#      tools/pulumi/cmd/pulumi-language-python (see its header for why it is
#      ours), and two Python scripts copied from the sdk/v3 module:
#      pulumi-language-python-exec (runs the program) and
#      pulumi-resource-pulumi-python (runs dynamic providers); and the YAML
#      language host pulumi-language-yaml (runs Pulumi YAML programs, e.g. ones
#      using components/ as a component package) from
#      github.com/pulumi/pulumi-yaml, pinned in tools/pulumi-yaml/go.mod with
#      pkg/v3 and sdk/v3 raised to the same version as the CLI.
#      A cold build downloads ~0.5 GB of modules and takes several minutes.
set -euo pipefail
exec 3>&1 1>&2 # fd 3 is the real stdout; everything else goes to stderr

SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$SELF")/.."
ROOT=$PWD
TOOLS="$ROOT/tools/pulumi"
YAML_TOOLS="$ROOT/tools/pulumi-yaml"

say() { echo "ensure_pulumi: $*" >&2; }
die() { say "error: $*"; exit 1; }

[ -f "$TOOLS/VERSION" ] || die "missing $TOOLS/VERSION"
VERSION=$(tr -d ' \t\r\n' < "$TOOLS/VERSION")
[[ "$VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "tools/pulumi/VERSION is not X.Y.Z: '$VERSION'"

# --- the pin must agree everywhere -------------------------------------------
for dir in "$TOOLS" "$YAML_TOOLS"; do
  for mod in github.com/pulumi/pulumi/pkg/v3 github.com/pulumi/pulumi/sdk/v3; do
    grep -Eq "^[[:space:]]*(require[[:space:]]+)?$mod v$VERSION([[:space:]]|\$)" "$dir/go.mod" \
      || die "${dir#"$ROOT"/}/go.mod does not require $mod v$VERSION (VERSION says $VERSION); fix with:
  cd ${dir#"$ROOT"/} && go get github.com/pulumi/pulumi/pkg/v3@v$VERSION github.com/pulumi/pulumi/sdk/v3@v$VERSION && go mod tidy"
  done
done
py_pin=$(grep -Eo '"pulumi[[:space:]]*==[[:space:]]*[^",;[:space:]]+' "$ROOT/pyproject.toml" | head -n1 | sed -E 's/.*==[[:space:]]*//' || true)
if [ -n "$py_pin" ] && [ "$py_pin" != "$VERSION" ]; then
  die "pyproject.toml pins pulumi==$py_pin but tools/pulumi/VERSION says $VERSION; they must match"
fi

# --- 1. a matching pulumi already on PATH ------------------------------------
if [ "${KMS_IAC_PULUMI_IGNORE_PATH:-0}" != 1 ] && command -v pulumi >/dev/null 2>&1; then
  path_bin=$(dirname "$(command -v pulumi)")
  path_ver=$(PULUMI_SKIP_UPDATE_CHECK=true pulumi version 2>/dev/null | tr -d ' \r\n' || true)
  if [ "$path_ver" = "v$VERSION" ] && [ -x "$path_bin/pulumi-language-python" ] && [ -x "$path_bin/pulumi-language-yaml" ]; then
    say "using pulumi $path_ver from PATH ($path_bin)"
    echo "$path_bin" >&3
    exit 0
  fi
  say "ignoring pulumi on PATH ($path_bin, version '${path_ver:-unknown}'): need v$VERSION with pulumi-language-python and pulumi-language-yaml beside it"
fi

# --- 2. the cache ------------------------------------------------------------
CACHE_ROOT=${KMS_IAC_PULUMI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kms-iac/pulumi}
DEST="$CACHE_ROOT/$VERSION"
BIN="$DEST/bin"
WANT_FILES=(pulumi pulumi-language-python pulumi-language-python-exec pulumi-resource-pulumi-python pulumi-language-yaml)

# What the binaries are built from; a change rebuilds them. (Build flags below
# are covered because this script is part of the hash.)
stamp=$( { echo "$VERSION"; cat "$TOOLS/go.mod" "$TOOLS/go.sum" "$YAML_TOOLS/go.mod" "$YAML_TOOLS/go.sum" "$SELF";
           find "$TOOLS/cmd" -type f -name '*.go' -print0 | sort -z | xargs -0 cat; } | sha256sum | cut -c1-32)

cache_ok() {
  local f
  for f in "${WANT_FILES[@]}"; do [ -x "$BIN/$f" ] || return 1; done
  [ -f "$DEST/.stamp" ] && [ "$(cat "$DEST/.stamp")" = "$stamp" ]
}

if cache_ok; then
  echo "$BIN" >&3
  exit 0
fi

# --- 3. build ----------------------------------------------------------------
command -v go >/dev/null 2>&1 || die "pulumi v$VERSION is not cached in $BIN and 'go' is not installed to build it"
mkdir -p "$CACHE_ROOT"

# One builder at a time; a second caller waits, then finds the cache filled.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE_ROOT/.lock"
  flock 9
  if cache_ok; then echo "$BIN" >&3; exit 0; fi
fi

say "building pulumi v$VERSION and its Python language host into $BIN (first run only; a cold build takes several minutes)"
start=$(date +%s)
TMP=$(mktemp -d "$CACHE_ROOT/.build-$VERSION.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/bin"

export GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false"
LDFLAGS="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$VERSION"
cd "$TOOLS"

say "[1/4] go build github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
go build -trimpath -ldflags "$LDFLAGS" -o "$TMP/bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi

say "[2/4] go build ./cmd/pulumi-language-python"
go build -trimpath -ldflags "$LDFLAGS" -o "$TMP/bin/pulumi-language-python" ./cmd/pulumi-language-python

say "[3/4] copying the Python helper scripts from github.com/pulumi/pulumi/sdk/v3@v$VERSION"
SDK_DIR=$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
[ -n "$SDK_DIR" ] && [ -d "$SDK_DIR/python" ] || die "cannot find the sdk/v3 module in the module cache"
install -m 0755 "$SDK_DIR/python/cmd/pulumi-language-python-exec" "$TMP/bin/pulumi-language-python-exec"
install -m 0755 "$SDK_DIR/python/dist/pulumi-resource-pulumi-python" "$TMP/bin/pulumi-resource-pulumi-python"

YAML_VERSION=$(cd "$YAML_TOOLS" && go list -m -f '{{.Version}}' github.com/pulumi/pulumi-yaml)
say "[4/4] go build github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml ($YAML_VERSION, tools/pulumi-yaml)"
(cd "$YAML_TOOLS" && go build -trimpath \
   -ldflags "-s -w -X github.com/pulumi/pulumi-yaml/pkg/version.Version=$YAML_VERSION" \
   -o "$TMP/bin/pulumi-language-yaml" github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml)

got=$(PULUMI_SKIP_UPDATE_CHECK=true "$TMP/bin/pulumi" version | tr -d ' \r\n')
[ "$got" = "v$VERSION" ] || die "built pulumi reports version '$got', expected v$VERSION"

echo "$stamp" > "$TMP/.stamp"
chmod 0755 "$TMP"
rm -rf "$DEST.old"
[ -e "$DEST" ] && mv "$DEST" "$DEST.old"
mv "$TMP" "$DEST"
rm -rf "$DEST.old"
trap - EXIT

say "built pulumi v$VERSION in $(( $(date +%s) - start ))s ($(du -sh "$BIN" | cut -f1) in $BIN)"
echo "$BIN" >&3
