"""The Missing models dialog: each model an imported file names but this machine lacks gets a
list of the user's own models of that kind; the choices are remembered for the next import.

The document shows it after reading another tool's file (ComfyUI, A1111) when a model is
missing and the user has models of that kind. Choosing one replaces the name on every node that
uses it; "Remember" stores the pair (QSettings "modelMap") and later imports map it at once.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel,
                               QVBoxLayout, QWidget)

LEAVE = "(leave it missing)"
SETTINGS_KEY = "modelMap"


class MissingModelsDialog(QDialog):
    def __init__(self, missing: dict[tuple[str, str], list[tuple[str, str]]], choices: dict[str, list[str]],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from nodeforge.core.models import KIND_NAMES
        from nodeforge.core.types import FileKind

        self.setWindowTitle("Missing models")
        layout = QVBoxLayout(self)
        intro = QLabel("This file names models that are not in your model folders. Pick one of yours "
                       "for each, or leave it missing (the node shows where to put the file).")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QFormLayout()
        self.combos: dict[tuple[str, str], QComboBox] = {}
        for (kind, name), places in missing.items():
            combo = QComboBox()
            combo.addItem(LEAVE)
            combo.addItems(choices.get(kind, []))
            combo.setEnabled(bool(choices.get(kind)))
            if not choices.get(kind):
                combo.setToolTip(f"you have no {KIND_NAMES[FileKind(kind)]} in your model folders")
            nodes = ", ".join(sorted({nid for nid, _ in places}))
            label = QLabel(f"{KIND_NAMES[FileKind(kind)]} <b>{name}</b> (node{'s' if len(places) > 1 else ''} {nodes})")
            label.setToolTip(name)
            form.addRow(label, combo)
            self.combos[(kind, name)] = combo
        layout.addLayout(form)
        self.remember = QCheckBox("Remember these for the next import")
        self.remember.setChecked(True)
        layout.addWidget(self.remember)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def choose(self, kind: str, name: str, replacement: str) -> None:
        self.combos[(kind, name)].setCurrentText(replacement)

    def chosen(self) -> dict[tuple[str, str], str]:
        """(kind, missing name) -> the user's model chosen for it (only those not left missing)."""
        return {key: combo.currentText() for key, combo in self.combos.items() if combo.currentText() != LEAVE}


def remembered(settings: Any) -> dict[str, str]:
    value = settings.value(SETTINGS_KEY, {})
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def remember(settings: Any, chosen: dict[tuple[str, str], str]) -> None:
    mapping = remembered(settings)
    mapping.update({name: replacement for (_, name), replacement in chosen.items()})
    settings.setValue(SETTINGS_KEY, mapping)


def apply_choices(imported: Any, chosen: dict[tuple[str, str], str]) -> None:
    """Put each chosen model on the nodes that named the missing one; drop its warning."""
    for key, replacement in chosen.items():
        for nid, param in imported.missing_models.get(key, []):
            imported.workflow.nodes[nid].params[param] = replacement
            imported.workflow.origins.pop((nid, param), None)     # the user's choice
            line = imported.missing_line_at.pop((nid, param), None)
            if line in imported.warnings:
                imported.warnings.remove(line)
            if line in imported.missing:
                imported.missing.remove(line)
        imported.missing_models.pop(key, None)
