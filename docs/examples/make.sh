#!/usr/bin/env bash
# Regenerates the example protocol: the demo council's meeting, locked by
# the secretary, signed off by the chair and the justerare, and exported as
# HTML, Markdown and PDF/A. Uses a throw-away SQLite database, so the hash,
# the times and the signing key are new on every run.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=docs/examples
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export PROTOKOLL_DATABASE_URL="sqlite:$tmp/demo.db"
export RUST_LOG=warn
cargo build -q -p protokoll-server
bin="${CARGO_TARGET_DIR:-target}/debug/protokoll"

meeting=$("$bin" demo | sed -n 's/^demo meeting: .* (\([0-9a-f-]*\))$/\1/p')
hash=$("$bin" meeting lock "$meeting" --as sekreterare | cut -f2)
"$bin" meeting signoff "$meeting" --as ordforande --hash "$hash" >/dev/null
"$bin" meeting signoff "$meeting" --as justerare --hash "$hash" >/dev/null
for format in html md pdf; do
  "$bin" meeting export "$meeting" --format "$format" -o "$out/protokoll.$format"
done
"$bin" meeting verify "$out/protokoll.pdf" >/dev/null
echo "protocol $hash: $out/protokoll.{html,md,pdf}"
