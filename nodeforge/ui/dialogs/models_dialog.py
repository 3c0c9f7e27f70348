"""The Models menu's dialog: what is installed, by kind, with where each file is and its size;
buttons to open the models folder and to rescan (which also refreshes every model list on the canvas).

It reads `ModelPaths.installed` for each of `MODEL_KINDS` (nodeforge/core/models.py), so a kind
added there shows here without a change.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHeaderView, QLabel, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

from nodeforge.core.models import KIND_NAMES, MODEL_KINDS, SUBFOLDERS, InstalledModel, ModelPaths


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"  # pragma: no cover - the loop returns


def plural(kind_name: str) -> str:
    return kind_name + ("es" if kind_name.endswith("x") else "s")


def open_models_folder(paths: ModelPaths) -> Path | None:
    """Create the user's models folder with a sub-folder per kind and open it in the file manager."""
    folder = paths.make_user_folders()
    if folder is not None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
    return folder


class ModelsDialog(QDialog):
    """Installed models by kind. `on_rescan` is called after a rescan (the window refreshes its lists)."""

    def __init__(self, paths: ModelPaths, on_rescan: Callable[[], None] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Installed models")
        self.paths = paths
        self.on_rescan = on_rescan
        layout = QVBoxLayout(self)
        where = paths.user_folder
        self.intro = QLabel(f"Put models in <b>{where}</b>, one sub-folder per kind "
                            f"({', '.join(SUBFOLDERS[k] + '/' for k in MODEL_KINDS)}), or add folders to "
                            "NODEFORGE_MODELS; then Rescan." if where else "No user models folder.")
        self.intro.setWordWrap(True)
        self.intro.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.intro)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Model", "Size", "Where"])
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.header().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        layout.addWidget(self.tree, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.open_button = buttons.addButton("Open Models Folder", QDialogButtonBox.ButtonRole.ActionRole)
        self.rescan_button = buttons.addButton("Rescan", QDialogButtonBox.ButtonRole.ActionRole)
        self.open_button.clicked.connect(lambda: open_models_folder(self.paths))
        self.rescan_button.clicked.connect(self.rescan)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(760, 520)
        self.fill()

    def fill(self) -> None:
        self.tree.clear()
        for kind in MODEL_KINDS:
            models = self.paths.installed(kind)
            title = plural(KIND_NAMES[kind])
            title = title[0].upper() + title[1:]
            top = QTreeWidgetItem([f"{title} ({len(models)})", "", f"{SUBFOLDERS[kind]}/"])
            top.setData(0, Qt.ItemDataRole.UserRole, kind.value)
            font = top.font(0)
            font.setBold(True)
            top.setFont(0, font)
            for model in models:
                top.addChild(self._row(model))
            if not models:
                empty = QTreeWidgetItem([f"none: put {KIND_NAMES[kind]} files in {SUBFOLDERS[kind]}/", "", ""])
                empty.setDisabled(True)
                top.addChild(empty)
            self.tree.addTopLevelItem(top)
            top.setExpanded(True)

    @staticmethod
    def _row(model: InstalledModel) -> QTreeWidgetItem:
        where = "bundled with NodeForge" if model.bundled else str(model.path.parent)
        item = QTreeWidgetItem([model.name, human_size(model.size), where])
        item.setToolTip(0, str(model.path))
        item.setToolTip(2, str(model.path))
        item.setData(0, Qt.ItemDataRole.UserRole, str(model.path))
        return item

    def kinds_shown(self) -> dict[str, list[str]]:
        """{kind: [model names]} as listed now (what a user reads, for tests and scripts)."""
        shown = {}
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            names = [top.child(j).text(0) for j in range(top.childCount()) if not top.child(j).isDisabled()]
            shown[top.data(0, Qt.ItemDataRole.UserRole)] = names
        return shown

    def rescan(self) -> None:
        """Read the folders again; the window's rescan also refreshes the lists on the canvas."""
        if self.on_rescan is not None:
            self.on_rescan()
        else:
            self.fill()
