#!/usr/bin/env bash
# Smoke check of a built NodeForge command (the bundle's, the installed launcher, or a wheel's):
#
#   packaging/smoke.sh dist/NodeForge/nodeforge
#
# Runs every example workflow the command ships with (each must validate, run and write a PNG; run
# from a checkout, every workflows/*.json must be among them) and prints "examples: N of M", then
# lists the nodes, imports a ComfyUI API prompt exported from an example, trains a LoRA for 3 steps
# on the demo model, and keeps the editor open offscreen for 8 seconds. Exits non-zero if any
# example failed (after trying them all, with each one's last error line) or at the first other
# failure; prints one line per check.
set -euo pipefail
nf="$(realpath "${1:?usage: smoke.sh PATH/TO/nodeforge}")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export QT_QPA_PLATFORM=offscreen
fail() { echo "SMOKE FAIL: $*" >&2; exit 1; }
ok() { echo "ok   $*"; }

"$nf" --version > "$work/version" || fail "--version"
ok "--version: $(head -1 "$work/version")"
"$nf" nodes > "$work/nodes" || fail "nodes"
grep -q "UNetDenoise" "$work/nodes" || fail "nodes does not list UNetDenoise"
ok "nodes: $(grep -c . "$work/nodes") lines"

# The examples the command itself ships (the bundle's copy, not a checkout's).
examples=$(python3 - "$nf" <<'PY'
import pathlib, sys
exe = pathlib.Path(sys.argv[1]).resolve()
roots = [exe.parent / "_internal" / "nodeforge" / "builtin" / "workflows"]
try:   # a pip-installed command: its package's copy
    import nodeforge.paths
    roots.append(nodeforge.paths.builtin_dir("workflows"))
except ImportError:
    pass
for root in roots:
    if root.is_dir():
        print("\n".join(str(p) for p in sorted(root.glob("*.json"))))
        break
PY
)
[ -n "$examples" ] || fail "no example workflows found beside $nf"
# Every example of the checkout this script sits in must be shipped (a bundle that lost one fails).
checkout="$(dirname "$(realpath "$0")")/../workflows"
if [ -d "$checkout" ]; then
    for wf in "$checkout"/*.json; do
        echo "$examples" | grep -q "/$(basename "$wf")$" || fail "example $(basename "$wf") is not shipped with $nf"
    done
fi
# Run them all (a broken bundle shows how many fail and why), then fail if any did.
total=0 count=0 failed=""
for wf in $examples; do
    name=$(basename "$wf" .json)
    total=$((total + 1))
    if ! "$nf" validate "$wf" > "$work/validate-$name.log" 2>&1; then
        echo "FAIL validate $name: $(grep -v '^\s*$' "$work/validate-$name.log" | tail -1)" >&2
        failed="$failed $name"; continue
    fi
    if ! (cd "$work" && "$nf" run "$wf" --out "$work/out-$name" -q --debug > "$work/run-$name.log" 2>&1); then
        # The command's one line, and the innermost cause from the --debug traceback.
        echo "FAIL run $name: $(grep -m1 '^error:' "$work/run-$name.log" || tail -1 "$work/run-$name.log")" >&2
        echo "     cause: $(grep -m1 -E '^[A-Za-z_.]*(Error|Exception): ' "$work/run-$name.log" || true)" >&2
        failed="$failed $name"; continue
    fi
    pngs=$(find "$work/out-$name" -name "*.png" | wc -l)
    if [ "$pngs" -lt 1 ]; then
        echo "FAIL run $name wrote no PNG" >&2
        failed="$failed $name"; continue
    fi
    ok "run $name: $pngs PNG"
    count=$((count + 1))
done
echo "examples: $count of $total ran and wrote a PNG"
[ "$count" -eq "$total" ] || fail "examples that failed:$failed"

"$nf" export "$(echo "$examples" | grep txt2img.json)" --to comfyui-api -o "$work/api.json" > /dev/null \
    || fail "export to ComfyUI API"
(cd "$work" && "$nf" run "$work/api.json" --out "$work/out-api" -q > "$work/api.log" 2>&1) \
    || { cat "$work/api.log" >&2; fail "run the ComfyUI API prompt"; }
ok "ComfyUI API prompt exported and run"

python3 - "$work/train" <<'PY'
import sys, zlib, struct, pathlib
# Four 64x64 solid-colour PNGs with captions, written without third-party packages.
out = pathlib.Path(sys.argv[1]); out.mkdir()
def png(rgb):
    raw = b"".join(b"\0" + bytes(rgb) * 64 for _ in range(64))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)) \
        + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
for i, (rgb, word) in enumerate([((220, 30, 30), "red"), ((30, 30, 220), "blue"), ((30, 200, 30), "green"),
                                 ((230, 220, 30), "yellow")]):
    (out / f"{i}.png").write_bytes(png(rgb))
    (out / f"{i}.txt").write_text(f"a {word} background")
PY
"$nf" train-lora "$work/train" --base nodeforge-shapes --out "$work/smoke-lora.safetensors" --steps 3 \
    --batch 2 --threads 2 > "$work/train.log" 2>&1 || { tail -5 "$work/train.log" >&2; fail "train-lora"; }
[ -s "$work/smoke-lora.safetensors" ] || fail "train-lora wrote no file"
ok "train-lora: 3 steps, $(du -h "$work/smoke-lora.safetensors" | cut -f1)"

set +e
timeout 8 "$nf" gui > "$work/gui.log" 2>&1
rc=$?
set -e
[ "$rc" -eq 124 ] || { tail -5 "$work/gui.log" >&2; fail "the editor exited with $rc before 8 s"; }
ok "editor stayed up 8 s offscreen"
echo "smoke check passed: $count of $total examples"
