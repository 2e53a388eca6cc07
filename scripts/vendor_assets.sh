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

# Uppy (MIT): the core queue and XHR upload only (no UI plugin, so no styles to inject),
# bundled into one ES module with every dependency; the licences of all bundled packages
# are gathered into LICENSE.
dest=api/static/vendor/uppy
mkdir -p "$dest"
node_modules/.bin/esbuild scripts/uppy_entry.mjs --bundle --format=esm --minify \
    --target=es2020 --legal-comments=none --metafile=node_modules/.uppy-meta.json \
    --outfile="$dest/uppy.min.mjs" --log-level=warning
node -e '
const fs = require("fs"), path = require("path");
const meta = JSON.parse(fs.readFileSync("node_modules/.uppy-meta.json"));
const dirs = new Set();
for (const input of Object.keys(meta.inputs)) {
  const m = input.match(/^(node_modules\/(?:@[^/]+\/)?[^/]+)\//);
  if (m) dirs.add(m[1]);
}
let out = "Licences of the packages bundled into uppy.min.mjs.\n";
for (const dir of [...dirs].sort()) {
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json")));
  const file = fs.readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
  out += `\n==== ${pkg.name} ${pkg.version} (${pkg.license}) ====\n`;
  out += file ? fs.readFileSync(path.join(dir, file), "utf8") : `${pkg.license} (no licence file shipped)\n`;
}
fs.writeFileSync(process.argv[1], out);
' "$dest/LICENSE"
uppy=$(node -p "require('./node_modules/@uppy/core/package.json').version")
xhr=$(node -p "require('./node_modules/@uppy/xhr-upload/package.json').version")
echo "@uppy/core $uppy + @uppy/xhr-upload $xhr (MIT), bundled by scripts/vendor_assets.sh" > "$dest/VERSION"
echo "vendored Uppy $uppy into $dest"

# axe-core (MPL-2.0), for the browser tests' accessibility check only: never served.
dest=tests/browser/vendor/axe-core
mkdir -p "$dest"
cp node_modules/axe-core/axe.min.js node_modules/axe-core/LICENSE "$dest/"
axe=$(node -p "require('./node_modules/axe-core/package.json').version")
echo "axe-core $axe (MPL-2.0), copied by scripts/vendor_assets.sh" > "$dest/VERSION"
echo "vendored axe-core $axe into $dest"
