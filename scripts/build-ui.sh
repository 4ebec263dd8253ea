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
# The lockfile holds this platform's optional packages only (rollup's and
# esbuild's native parts), which some npm versions' `npm ci` rejects as out
# of sync; `npm install --no-save` then installs the same locked versions.
if ! npm ci --no-audit --no-fund --loglevel=error 2>/dev/null; then
    npm install --no-save --no-audit --no-fund --loglevel=error
fi
npm run build --silent
echo "build-ui: built $(pwd)/dist" >&2
