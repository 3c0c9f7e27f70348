#!/usr/bin/env bash
# Build the desktop bundle (dist/NodeForge) and the Linux tarball, then smoke-check both.
#
#   packaging/build.sh            # uses the active Python environment (NodeForge installed in it)
#
# Needs: the project installed in the active environment (`pip install .`), and PyInstaller
# (installed here, at the pinned version, if missing). A release is built by packaging/release.sh,
# which makes that environment fresh from the pins and then runs this. Writes dist/NodeForge/
# (the one-folder bundle), dist/nodeforge-VERSION-linux-ARCH.tar.gz (bundle + install.sh + uninstall.sh) and prints the
# time, sizes, the newest glibc symbol the bundle needs, and the smoke check's result.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
python -c "import PyInstaller" 2>/dev/null || python -m pip install -q -c packaging/constraints.txt pyinstaller
python -c "import nodeforge, torch, diffusers" || { echo "install NodeForge first: pip install ." >&2; exit 1; }
# What the spec will copy besides code (packaging/bundle_data.py's rule), before the long part.
python packaging/bundle_data.py

rm -rf build/pyinstaller dist/NodeForge
python -m PyInstaller --noconfirm --log-level WARN --workpath build/pyinstaller --distpath dist \
    packaging/nodeforge.spec
built=$(date +%s)
echo "bundle built in $((built - start)) s: $(du -sh dist/NodeForge | cut -f1)"

version=$(python -c "import nodeforge; print(nodeforge.__version__)")
arch=$(uname -m)
tarball="dist/nodeforge-${version}-linux-${arch}.tar.gz"
stage=$(mktemp -d)
mkdir -p "$stage/nodeforge-${version}"
cp -a dist/NodeForge "$stage/nodeforge-${version}/NodeForge"
cp packaging/install.sh packaging/uninstall.sh packaging/nodeforge.desktop packaging/nodeforge-mime.xml \
   packaging/nodeforge.svg packaging/nodeforge-256.png packaging/nodeforge-48.png LICENSE THIRD-PARTY.md \
   "$stage/nodeforge-${version}/"
tar -C "$stage" -czf "$tarball" "nodeforge-${version}"
rm -rf "$stage"
echo "tarball: $tarball $(du -h "$tarball" | cut -f1) in $(( $(date +%s) - built )) s"

# The newest glibc symbol version any bundled binary asks for: the oldest glibc it runs on.
glibc=$(find dist/NodeForge -type f \( -name "*.so*" -o -name nodeforge \) -exec objdump -T {} + 2>/dev/null \
        | grep -o "GLIBC_[0-9.]*" | sort -uV | tail -1)
echo "needs glibc >= ${glibc#GLIBC_} (built on $(ldd --version | head -1))"

packaging/smoke.sh dist/NodeForge/nodeforge
echo "build + smoke check: $(( $(date +%s) - start )) s"
