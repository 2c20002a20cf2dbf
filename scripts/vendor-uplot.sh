#!/usr/bin/env bash
# Refresh the chart library the web pages use (gatewayd/webui/static/vendor/uplot) from the npm registry.
# Run at development time only: the files are committed, so an offline box, the wheel and the .deb carry
# them and nothing is fetched at install or run time. Usage: scripts/vendor-uplot.sh [VERSION]
set -euo pipefail
version="${1:-1.6.32}"
dest="$(cd "$(dirname "$0")/.." && pwd)/gatewayd/webui/static/vendor/uplot"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "uplot@$version" >/dev/null && tar xzf "uplot-$version.tgz")
mkdir -p "$dest"
cp "$work/package/dist/uPlot.iife.min.js" "$work/package/dist/uPlot.min.css" "$work/package/LICENSE" "$dest/"
echo "$version" >"$dest/VERSION"
echo "uPlot $version vendored into $dest"
