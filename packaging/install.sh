#!/usr/bin/env bash
# Install NodeForge for this user, no Python or root needed:
#   ./install.sh            (from the unpacked nodeforge-VERSION folder)
# Puts the app in ~/.local/opt/nodeforge, a `nodeforge` launcher in ~/.local/bin, the desktop
# entry, icons and the NodeForge workflow MIME type in your XDG folders. ./uninstall.sh undoes it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data="${XDG_DATA_HOME:-$HOME/.local/share}"
opt="$HOME/.local/opt/nodeforge"
bin="$HOME/.local/bin"
[ -x "$here/NodeForge/nodeforge" ] || { echo "install.sh: run it from the unpacked folder (NodeForge/ not found)" >&2; exit 1; }

rm -rf "$opt"
mkdir -p "$opt" "$bin" "$data/applications" "$data/mime/packages" \
         "$data/icons/hicolor/256x256/apps" "$data/icons/hicolor/48x48/apps" "$data/icons/hicolor/scalable/apps"
cp -a "$here/NodeForge/." "$opt/"
cp "$here/uninstall.sh" "$opt/uninstall.sh"
ln -sfn "$opt/nodeforge" "$bin/nodeforge"
# The desktop entry runs the launcher by its full path, so it works before ~/.local/bin is on PATH.
sed -e "s|^Exec=nodeforge |Exec=$bin/nodeforge |" -e "s|^TryExec=nodeforge|TryExec=$bin/nodeforge|" \
    "$here/nodeforge.desktop" > "$data/applications/nodeforge.desktop"
cp "$here/nodeforge-mime.xml" "$data/mime/packages/nodeforge.xml"
cp "$here/nodeforge-256.png" "$data/icons/hicolor/256x256/apps/nodeforge.png"
cp "$here/nodeforge-48.png" "$data/icons/hicolor/48x48/apps/nodeforge.png"
cp "$here/nodeforge.svg" "$data/icons/hicolor/scalable/apps/nodeforge.svg"
command -v update-mime-database > /dev/null && update-mime-database "$data/mime" > /dev/null 2>&1 || true
command -v update-desktop-database > /dev/null && update-desktop-database "$data/applications" > /dev/null 2>&1 || true
command -v gtk-update-icon-cache > /dev/null && gtk-update-icon-cache -q -t "$data/icons/hicolor" 2>/dev/null || true
echo "NodeForge installed in $opt; command: $bin/nodeforge"
case ":$PATH:" in *":$bin:"*) ;; *) echo "add $bin to your PATH to type 'nodeforge' in a terminal";; esac
