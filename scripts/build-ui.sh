#!/bin/sh
# Builds the web UI into ui/dist, which `cargo build` then embeds into the
# perfpilot binary. Needs Node.js 18+ and npm (installed when missing); the
# binary itself needs neither.
set -eu
cd "$(dirname "$0")/../ui"
if ! command -v npm >/dev/null 2>&1; then
    echo "build-ui: installing Node.js and npm (apt)" >&2
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm
fi
npm ci --no-audit --no-fund --loglevel=error
npm run build --silent
echo "build-ui: built $(pwd)/dist" >&2
