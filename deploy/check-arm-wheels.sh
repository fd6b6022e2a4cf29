#!/usr/bin/env bash
# Check that every runtime dependency of edge-agent (pyproject.toml, resolved with their own dependencies)
# installs from binary wheels on an ARM gateway, without a compiler: downloads, for CPython 3.11, the wheels
# pip would pick for 64-bit ARM (aarch64: Raspberry Pi OS 64-bit, most industrial ARM gateways) and for
# 32-bit ARMv7 (Raspberry Pi OS 32-bit), and prints what it found. Needs network access to the index.
#
#   deploy/check-arm-wheels.sh [--index-url URL]   (pip options are passed through, e.g. a piwheels index)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
mapfile -t deps < <("$PYTHON" -c 'import tomllib; print(*tomllib.load(open("pyproject.toml","rb"))["project"]["dependencies"], sep="\n")')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
check() {  # check NAME PLATFORM...
  local name=$1; shift
  local args=() p
  for p in "$@"; do args+=(--platform "$p"); done
  echo "== $name (CPython 3.11, ${*})"
  if "$PYTHON" -m pip download -q -d "$work/$name" --only-binary=:all: --python-version 3.11 \
       --implementation cp --abi cp311 --abi abi3 --abi none "${args[@]}" --platform any \
       "${PIP_EXTRA[@]}" "${deps[@]}" 2> "$work/$name.err"; then
    ls "$work/$name" | sed 's/^/   /'
  else
    grep -v '^WARNING' "$work/$name.err" | sed 's/^/   /'
    # which direct dependencies have no wheel for this platform
    for d in "${deps[@]}"; do
      "$PYTHON" -m pip download -q -d "$work/$name-one" --no-deps --only-binary=:all: --python-version 3.11 \
        --implementation cp --abi cp311 --abi abi3 --abi none "${args[@]}" --platform any "${PIP_EXTRA[@]}" \
        "$d" >/dev/null 2>&1 || echo "   no wheel: $d"
    done
    status=1
  fi
}
PIP_EXTRA=("$@")
check aarch64 manylinux2014_aarch64 manylinux_2_17_aarch64 manylinux_2_28_aarch64 manylinux_2_36_aarch64
check armv7l manylinux2014_armv7l manylinux_2_17_armv7l manylinux_2_31_armv7l manylinux_2_36_armv7l linux_armv7l
exit $status
