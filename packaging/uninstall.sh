#!/usr/bin/env bash
# Remove what install.sh put in place (the app, the launcher, the desktop entry, icons, MIME
# type). Your workflows, models, settings and outputs are left alone.
set -euo pipefail
data="${XDG_DATA_HOME:-$HOME/.local/share}"
rm -rf "$HOME/.local/opt/nodeforge"
if [ -L "$HOME/.local/bin/nodeforge" ]; then rm -f "$HOME/.local/bin/nodeforge"; fi
rm -f "$data/applications/nodeforge.desktop" "$data/mime/packages/nodeforge.xml" \
      "$data/icons/hicolor/256x256/apps/nodeforge.png" "$data/icons/hicolor/48x48/apps/nodeforge.png" \
      "$data/icons/hicolor/scalable/apps/nodeforge.svg"
command -v update-mime-database > /dev/null && update-mime-database "$data/mime" > /dev/null 2>&1 || true
command -v update-desktop-database > /dev/null && update-desktop-database "$data/applications" > /dev/null 2>&1 || true
echo "NodeForge removed"
