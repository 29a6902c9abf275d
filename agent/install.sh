#!/bin/sh
# wanwatch agent, the one-line install; your edge serves this at /install.sh:
#   curl -fsSL https://EDGE/install.sh | sudo sh -s -- TOKEN [--uplink ID=IFACE ...]
# Checks Node, downloads the agent from the same edge, checks its SHA-256, and hands over to
# `wanwatch agent install --enroll TOKEN`, which redeems the token and sets up the service (and
# undoes its own steps if one fails). WANWATCH_PREFIX installs under another folder (tests).
set -eu

EDGE="${WANWATCH_EDGE:-@EDGE@}"
BUNDLE_SHA256="@SHA256@"
VERSION="@VERSION@"

die() {
  printf 'wanwatch install: %s\n' "$*" >&2
  exit 1
}

# All of it inside one function called on the last line: a download cut short runs nothing.
main() {
  [ $# -ge 1 ] || die "usage: curl -fsSL $EDGE/install.sh | sudo sh -s -- TOKEN [--uplink ID=IFACE ...] (wanwatch site enroll prints the line)"
  TOKEN=$1
  shift
  # Never echoed back: whatever was pasted here by mistake may be a secret.
  case $TOKEN in
    wwe1.*) ;;
    *) die "the first argument is not an enrolment token (one starts with wwe1.): copy the whole line \`wanwatch site enroll\` printed" ;;
  esac
  if [ -z "${WANWATCH_PREFIX:-}" ] && [ "$(id -u)" != 0 ]; then
    die "run it as root: curl -fsSL $EDGE/install.sh | sudo sh -s -- TOKEN ..."
  fi

  NODE=$(command -v node || command -v nodejs || true)
  [ -n "$NODE" ] || die "Node.js 18.19 or newer is needed and this host has none: sudo apt-get install -y nodejs (Debian 12, Ubuntu 24.04 and Raspberry Pi OS ship one), then run the line again"
  "$NODE" -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 18 || (a === 18 && b >= 19) ? 0 : 1)' ||
    die "Node.js $("$NODE" --version) is too old: wanwatch needs 18.19 or newer (sudo apt-get install -y nodejs on Debian 12 or newer), then run the line again"

  TMP=$(mktemp -d)
  trap 'rm -rf "$TMP"' EXIT
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -o "$TMP/wanwatch.mjs" "$EDGE/agent/wanwatch.mjs" || die "cannot download the agent from $EDGE/agent/wanwatch.mjs"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O "$TMP/wanwatch.mjs" "$EDGE/agent/wanwatch.mjs" || die "cannot download the agent from $EDGE/agent/wanwatch.mjs"
  else
    # Node's own fetch (a minimal Debian has neither curl nor wget; this script came through a pipe).
    "$NODE" --no-warnings -e 'fetch(process.argv[1]).then(async (r) => { if (!r.ok) process.exit(1); require("fs").writeFileSync(process.argv[2], Buffer.from(await r.arrayBuffer())); }, () => process.exit(1))' \
      "$EDGE/agent/wanwatch.mjs" "$TMP/wanwatch.mjs" || die "cannot download the agent from $EDGE/agent/wanwatch.mjs"
  fi
  GOT=$("$NODE" -e 'process.stdout.write(require("crypto").createHash("sha256").update(require("fs").readFileSync(process.argv[1])).digest("hex"))' "$TMP/wanwatch.mjs")
  [ "$GOT" = "$BUNDLE_SHA256" ] ||
    die "the downloaded agent's SHA-256 is $GOT, not $BUNDLE_SHA256 as this script expects: nothing installed (a proxy in the way, or the edge redeployed meanwhile: run the line again)"
  echo "wanwatch install: agent $VERSION downloaded from $EDGE, SHA-256 verified"

  if [ -n "${WANWATCH_PREFIX:-}" ]; then set -- --prefix "$WANWATCH_PREFIX" "$@"; fi
  # `agent install` copies the bundle from here to PREFIX/lib/wanwatch and links PREFIX/bin/wanwatch.
  status=0
  "$NODE" "$TMP/wanwatch.mjs" agent install --enroll "$TOKEN" --edge "$EDGE" "$@" || status=$?
  exit $status
}

main "$@"
