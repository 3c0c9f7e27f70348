#!/usr/bin/env bash
# The release step: build the desktop bundle from a fresh virtual environment and smoke-check it.
#
#   packaging/release.sh            # pinned: installs exactly packaging/constraints.txt's versions
#   packaging/release.sh --repin    # newest versions pyproject.toml allows; if the bundle passes
#                                   # the smoke check, rewrites packaging/constraints.txt with them
#
# Steps: a new venv (RELEASE_VENV, default build/release-venv, deleted first), `pip install
# torch==TORCH_VERSION` (default 2.13.0; TORCH_PIP_ARGS adds pip options, e.g. the index of the CPU
# wheels), `pip install .` and PyInstaller under the constraints, then packaging/build.sh, which
# builds dist/NodeForge and the tarball and ends with packaging/smoke.sh (every shipped example
# must run). A release is what this prints "release check passed" for; nothing else is shipped.
# The build is CPU-heavy: it runs under `nice`; set RELEASE_LOCK=/path/to/lockfile to wait for
# a shared lock first (flock) on a machine others use.
set -euo pipefail
cd "$(dirname "$0")/.."
repin=0
case "${1:-}" in
    --repin) repin=1 ;;
    "") ;;
    *) echo "usage: packaging/release.sh [--repin]" >&2; exit 2 ;;
esac
venv="${RELEASE_VENV:-build/release-venv}"
python="${PYTHON:-python3}"
torch_version="${TORCH_VERSION:-2.13.0}"
constraints=packaging/constraints.txt
start=$(date +%s)

rm -rf "$venv"
"$python" -m venv "$venv"
# shellcheck disable=SC1091
source "$venv/bin/activate"
pin=()
[ "$repin" -eq 1 ] || pin=(-c "$constraints")
# shellcheck disable=SC2086
python -m pip install -q ${TORCH_PIP_ARGS:-} "torch==$torch_version"
python -m pip install -q "${pin[@]}" . pyinstaller pyinstaller-hooks-contrib
python -m pip check
echo "fresh venv $venv: $(python -c 'import sys; print(sys.version.split()[0])'), installed in $(( $(date +%s) - start )) s"
python -m pip list --format=freeze 2>/dev/null | grep -iE "^(torch|transformers|diffusers|kernels|peft|pyinstaller)=" \
    | tr '\n' ' '; echo

run=(nice -n 10 packaging/build.sh)
[ -z "${RELEASE_LOCK:-}" ] || run=(flock "$RELEASE_LOCK" "${run[@]}")
"${run[@]}"

if [ "$repin" -eq 1 ]; then
    # The versions this bundle was built and smoke-checked with (local labels such as +cpu dropped:
    # `torch==2.13.0` accepts the CPU and the CUDA wheels of that release).
    {
        echo "# Versions the last passing release build used (packaging/release.sh --repin wrote this;"
        echo "# packaging/README.md says why they are pinned). Edit by re-running --repin, not by hand."
        echo "# python $(python -c 'import sys; print("%d.%d" % sys.version_info[:2])') $(uname -s) $(uname -m)"
        python -m pip list --format=freeze --exclude nodeforge --exclude pip 2>/dev/null | sed -e 's/+[A-Za-z0-9.]*$//'
    } > "$constraints"
    echo "pins written to $constraints: $(grep -vc '^#' "$constraints") packages"
fi
echo "release check passed in $(( $(date +%s) - start )) s: dist/nodeforge-$(python -c "import nodeforge; print(nodeforge.__version__)")-linux-$(uname -m).tar.gz"
