#!/usr/bin/env bash
# Copy Swagger UI from the swagger-ui-dist npm package into api/static/vendor/swagger-ui/, so the
# API docs at /schema work offline and under the app's CSP (script-src 'self', no CDN).
# The copies are committed; run this only to upgrade (change VERSION, run, commit).
# `npm pack` fetches the one tarball without touching package.json or node_modules.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=5.32.0
dest=api/static/vendor/swagger-ui
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "swagger-ui-dist@$VERSION" >/dev/null && tar -xzf swagger-ui-dist-*.tgz)
mkdir -p "$dest"
# The bundle carries its own dependencies; the standalone preset and the HTML are not used
# (the page and its start-up script are served by api/docs.py).
for f in swagger-ui-bundle.js swagger-ui.css LICENSE; do
  cp "$tmp/package/$f" "$dest/$f"
done
echo "swagger-ui-dist $VERSION (Apache-2.0), copied by scripts/vendor_swagger_ui.sh" > "$dest/VERSION"
echo "vendored swagger-ui-dist $VERSION into $dest"
