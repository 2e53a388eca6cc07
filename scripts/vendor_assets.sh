#!/usr/bin/env bash
# Copy the front-end assets the web UI needs from npm packages into api/static/vendor/.
# The copies are committed, so neither `make run` nor CI needs npm; run this only to
# upgrade a package (edit package.json, run it, commit the changed files).
# The page's CSP is `script-src 'self'` and the machine may be offline: nothing may come from a CDN.
set -euo pipefail
cd "$(dirname "$0")/.."

npm install --no-audit --no-fund --ignore-scripts --silent

inter=node_modules/@fontsource-variable/inter
dest=api/static/vendor/inter
mkdir -p "$dest"
# Latin and Latin Extended cover the filenames and tags a European studio writes; the
# variable-weight files give every weight the CSS uses from two downloads.
cp "$inter/files/inter-latin-wght-normal.woff2" "$dest/"
cp "$inter/files/inter-latin-ext-wght-normal.woff2" "$dest/"
cp "$inter/LICENSE" "$dest/LICENSE"
version=$(node -p "require('./$inter/package.json').version")
echo "@fontsource-variable/inter $version (OFL-1.1), copied by scripts/vendor_assets.sh" > "$dest/VERSION"
echo "vendored Inter $version into $dest"
