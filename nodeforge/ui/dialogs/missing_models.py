"""The Missing models dialog: each model an imported file names but this machine lacks gets a
list of the user's own models of that kind; the choices are remembered for the next import.

The document shows it after reading another tool's file (ComfyUI, A1111) when a model is
missing and the user has models of that kind. Choosing one replaces the name on every node that
uses it; "Remember" stores the pairs (QSettings "modelMap") and later imports map them at once.
A kind with two or more missing models also gets an "Every missing KIND" row (the editor's
`--model-map 'KIND:*=NAME'`): choosing there sets each row of that kind. A VAE may be given a
checkpoint, whose own VAE is then used (`nodeforge.core.models.BORROWS`).
"""
from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel,
                               QVBoxLayout, QWidget)

LEAVE = "(leave it missing)"
SETTINGS_KEY = "modelMap"


def choices_for(kinds: Any, model_paths: Any) -> dict[str, list[tuple[str, str]]]:
    """For each kind, the user's models as (label, name to store): its own kind's, then for a kind
    that may name another (a VAE: a checkpoint) that kind's, labelled with what is used."""
    from nodeforge.core.models import BORROWS, KIND_NAMES
    from nodeforge.core.types import FileKind
    from nodeforge.interop.model_names import local_models

    out: dict[str, list[tuple[str, str]]] = {}
    for kind in dict.fromkeys(kinds):
        items = [(name, name) for name in local_models(kind, model_paths)]
        lender = BORROWS.get(FileKind(kind))
        if lender is not None:
            what = f"the {KIND_NAMES[FileKind(kind)]} inside the {KIND_NAMES[lender]}"
            items += [(f"{name} ({what})", name) for name in local_models(lender, model_paths)
                      if name not in {n for _, n in items}]
        out[kind] = items
    return out


class MissingModelsDialog(QDialog):
    def __init__(self, missing: dict[tuple[str, str], list[tuple[str, str]]],
                 choices: dict[str, list[str] | list[tuple[str, str]]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Missing models")
        layout = QVBoxLayout(self)
        intro = QLabel("This file names models that are not in your model folders. Pick one of yours "
                       "for each, or leave it missing (the node shows where to put the file).")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QFormLayout()
        self.choices = {kind: [item if isinstance(item, tuple) else (item, item) for item in items]
                        for kind, items in choices.items()}
        self.kind_combos: dict[str, QComboBox] = {}
        self.combos: dict[tuple[str, str], QComboBox] = {}
        for kind in dict.fromkeys(k for k, _ in missing):
            if sum(k == kind for k, _ in missing) > 1 and self.choices.get(kind):
                self._add_kind_row(form, kind)
        for (kind, name), places in missing.items():
            self._add_row(form, kind, name, places)
        layout.addLayout(form)
        self.remember = QCheckBox("Remember these for the next import")
        self.remember.setChecked(True)
        layout.addWidget(self.remember)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _combo(self, kind: str) -> QComboBox:
        from nodeforge.core.models import KIND_NAMES
        from nodeforge.core.types import FileKind

        combo = QComboBox()
        combo.addItem(LEAVE, None)
        for label, name in self.choices.get(kind, []):
            combo.addItem(label, name)
        combo.setEnabled(bool(self.choices.get(kind)))
        if not self.choices.get(kind):
            combo.setToolTip(f"you have no {KIND_NAMES[FileKind(kind)]} in your model folders")
        return combo

    def _add_kind_row(self, form: QFormLayout, kind: str) -> None:
        """The "Every missing KIND" row: its choice is put on each row of that kind (each can still be changed)."""
        from nodeforge.core.models import KIND_NAMES
        from nodeforge.core.types import FileKind

        combo = self._combo(kind)
        combo.setToolTip(f"use one of your models for every missing {KIND_NAMES[FileKind(kind)]} "
                         f"(as --model-map '{kind}:*=NAME')")
        combo.currentIndexChanged.connect(lambda index, k=kind: self._set_kind(k, index))
        form.addRow(QLabel(f"<b>Every missing {KIND_NAMES[FileKind(kind)]}</b>"), combo)
        self.kind_combos[kind] = combo

    def _add_row(self, form: QFormLayout, kind: str, name: str, places: list[tuple[str, str]]) -> None:
        from nodeforge.core.models import KIND_NAMES
        from nodeforge.core.types import FileKind

        combo = self._combo(kind)
        nodes = ", ".join(sorted({nid for nid, _ in places}))
        label = QLabel(f"{KIND_NAMES[FileKind(kind)]} <b>{name}</b> (node{'s' if len(places) > 1 else ''} {nodes})")
        label.setToolTip(name)
        form.addRow(label, combo)
        self.combos[(kind, name)] = combo

    def _set_kind(self, kind: str, index: int) -> None:
        for (row_kind, _), combo in self.combos.items():
            if row_kind == kind:
                combo.setCurrentIndex(index)

    def choose(self, kind: str, name: str, replacement: str) -> None:
        """Pick `replacement` (a stored name, or LEAVE) for one missing model, as the user would."""
        _pick(self.combos[(kind, name)], replacement)

    def choose_for_kind(self, kind: str, replacement: str) -> None:
        """Pick `replacement` in the "Every missing KIND" row."""
        _pick(self.kind_combos[kind], replacement)

    def chosen(self) -> dict[tuple[str, str], str]:
        """(kind, missing name) -> the user's model chosen for it (only those not left missing)."""
        return {key: combo.currentData() for key, combo in self.combos.items() if combo.currentData() is not None}


def _pick(combo: QComboBox, replacement: str) -> None:
    index = 0 if replacement == LEAVE else combo.findData(replacement)
    if index < 0:
        raise ValueError(f"{replacement!r} is not offered here")
    combo.setCurrentIndex(index)


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
