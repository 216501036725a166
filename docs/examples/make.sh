#!/usr/bin/env bash
# Regenerates the example protocol: the demo council's meeting (the data
# `protokoll --demo` creates, as in the README's run command), locked by the
# secretary and signed off by the chair and the justerare with the CLI, each
# acting as that user (`--as`), then exported as HTML, Markdown, PDF/A and
# the canonical JSON. Alongside them: the protocol's status (with the
# server's signed record and signature) and the public key that signature
# verifies with, so that the example can be checked offline (see README.md
# here).
#
# The database and the signing key are throw-away: the hash, the times and
# the key are new on every run, and no server holds these files afterwards.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=docs/examples
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export PROTOKOLL_DATABASE_URL="sqlite:$tmp/demo.db"
export PROTOKOLL_SIGNING_KEY_FILE="$tmp/signing-key.pem"
export RUST_LOG=warn
cargo build -q --locked --workspace --all-targets
bin="${CARGO_TARGET_DIR:-target}/debug/protokoll"

meeting=$("$bin" demo | sed -n 's/^demo meeting: .* (\([0-9a-f-]*\))$/\1/p')
test -n "$meeting"
hash=$("$bin" meeting lock "$meeting" --as sekreterare | cut -f2)
"$bin" meeting signoff "$meeting" --as ordforande --hash "$hash" >/dev/null
"$bin" meeting signoff "$meeting" --as justerare --hash "$hash" >/dev/null
for format in html md pdf json; do
  "$bin" meeting export "$meeting" --format "$format" -o "$out/protokoll.$format"
done
"$bin" meeting status "$meeting" >"$out/status.json"
# The public half as SubjectPublicKeyInfo PEM (what the server publishes at
# /.well-known/protokoll-signing-key). The key file is PKCS#8 v2, which
# carries the public key at its end; OpenSSL 3.0 does not read v2 files.
python3 - "$PROTOKOLL_SIGNING_KEY_FILE" "$out/signing-key.pub.pem" <<'EOF'
import base64, sys, textwrap
der = base64.b64decode("".join(l for l in open(sys.argv[1]) if not l.startswith("-----")))
spki = bytes.fromhex("302a300506032b6570032100") + der[-32:]
b64 = "\n".join(textwrap.wrap(base64.b64encode(spki).decode(), 64))
open(sys.argv[2], "w").write(f"-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
EOF

# The checks docs/examples/README.md describes, run once here.
"$bin" meeting verify "$out/protokoll.pdf" >/dev/null
test "$(sha256sum "$out/protokoll.json" | cut -d' ' -f1)" = "$hash"
python3 - "$out" <<'EOF'
import base64, json, sys
out = sys.argv[1]
status = json.load(open(f"{out}/status.json"))
sig = status["locked"]["signature"]
open(f"{out}/.record", "w").write(sig["record"])
open(f"{out}/.signature", "wb").write(base64.b64decode(sig["signature"]))
EOF
openssl pkeyutl -verify -pubin -inkey "$out/signing-key.pub.pem" -rawin \
  -in "$out/.record" -sigfile "$out/.signature" >/dev/null
rm -f "$out/.record" "$out/.signature"
echo "protocol $hash: $out/protokoll.{html,md,pdf,json}, status.json, signing-key.pub.pem"
