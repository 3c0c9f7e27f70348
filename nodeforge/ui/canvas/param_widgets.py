"""Inline editors for node params, built from each Param's declaration.

An editor shows a value (`set_value`, which never emits) and reports user edits through
`on_edit(value, merge_key)`. Edits that belong together (one slider drag, one typing session
in a prompt) share a merge key so they become one undo step.
"""
from __future__ import annotations

import itertools
import random
from typing import Any, Callable

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QActionGroup, QValidator
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QGridLayout, QHBoxLayout, QLabel, QLineEdit,
    QMenu, QPlainTextEdit, QSizePolicy, QSlider, QToolButton, QWidget,
)

from nodeforge.core.spec import Param
from nodeforge.core.types import FileKind, ParamKind, ParamRole
from nodeforge.ui.canvas.help_text import param_help

EditCallback = Callable[[Any, Any], None]
_sessions = itertools.count(1)
INT_LIMIT = 2 ** 63 - 1
SLIDER_STEPS = 1000


class ParamEditor(QWidget):
    """Base: a row widget for one param. `clamped` says, in words, that a typed value was out
    of the param's range and what it became (typing 0 into steps must not silently be 1)."""

    clamped = Signal(str)

    def __init__(self, param: Param, on_edit: EditCallback, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.param = param
        self.on_edit = on_edit
        self._setting = False
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, False)

    def set_value(self, value: Any) -> None:
        self._setting = True
        try:
            self._show(value)
        finally:
            self._setting = False

    def _show(self, value: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _row(self, spacing: int | None = None) -> QHBoxLayout:
        """The editor's own layout: one row without margins."""
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        if spacing is not None:
            layout.setSpacing(spacing)
        return layout

    def _emit(self, value: Any, merge_key: Any = None) -> None:
        if not self._setting:
            self.on_edit(value, merge_key)


class BigIntSpinBox(QAbstractSpinBox):
    """A spin box over Python ints: exact for 64-bit seeds, where QSpinBox stops at 2**31 and a
    double spin box rounds above 2**53."""

    valueChanged = Signal(object)     # a Python int: Signal(int) would overflow above 2**31
    clamped = Signal(object, object)  # what was typed, what it became

    def __init__(self, minimum: int, maximum: int, step: int = 1) -> None:
        super().__init__()
        self._min, self._max, self._step = int(minimum), int(maximum), max(1, int(step))
        self._value = max(self._min, min(self._max, 0))
        self.lineEdit().setText(str(self._value))
        self.editingFinished.connect(self._commit_text)

    def value(self) -> int:
        return self._value

    def minimum(self) -> int:
        return self._min

    def maximum(self) -> int:
        return self._max

    def setValue(self, value: int) -> None:  # noqa: N802 - Qt's name
        value = max(self._min, min(self._max, int(value)))
        changed = value != self._value
        self._value = value
        if self.lineEdit().text() != str(value):
            self.lineEdit().setText(str(value))
        if changed:
            self.valueChanged.emit(value)

    def stepBy(self, steps: int) -> None:  # noqa: N802
        self.setValue(self._value + steps * self._step)

    def stepEnabled(self):  # noqa: N802
        flags = QAbstractSpinBox.StepEnabledFlag.StepNone
        if self._value < self._max:
            flags |= QAbstractSpinBox.StepEnabledFlag.StepUpEnabled
        if self._value > self._min:
            flags |= QAbstractSpinBox.StepEnabledFlag.StepDownEnabled
        return flags

    def validate(self, text: str, pos: int):  # noqa: D102
        stripped = text.strip()
        if stripped in ("", "-", "+"):
            return QValidator.State.Intermediate
        try:
            number = int(stripped)
        except ValueError:
            return QValidator.State.Invalid
        if self._min <= number <= self._max:
            return QValidator.State.Acceptable
        return QValidator.State.Intermediate

    def fixup(self, text: str) -> str:
        return str(self._value)

    def _commit_text(self) -> None:
        try:
            typed = int(self.lineEdit().text().strip())
        except ValueError:
            self.lineEdit().setText(str(self._value))
            return
        self.setValue(typed)
        if typed != self._value:
            self.clamped.emit(typed, self._value)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(90, super().sizeHint().height())


class ClampingDoubleSpinBox(QDoubleSpinBox):
    """A double spin box that takes an out-of-range number, clamps it and says so (`clamped`),
    where QDoubleSpinBox refuses the key or silently puts the previous value back."""

    clamped = Signal(float, float)

    def _number(self, text: str) -> float | None:
        text = text.strip()
        if self.prefix() and text.startswith(self.prefix()):
            text = text[len(self.prefix()):]
        if self.suffix() and text.endswith(self.suffix()):
            text = text[:-len(self.suffix())]
        value, ok = self.locale().toDouble(text.strip())
        if ok:
            return float(value)
        try:
            return float(text.strip())
        except ValueError:
            return None

    def validate(self, text: str, pos: int):  # noqa: D102 - Qt's
        result = super().validate(text, pos)
        state = result[0] if isinstance(result, tuple) else result
        if state == QValidator.State.Invalid and self._number(text) is not None:
            return QValidator.State.Intermediate, text, pos   # out of range: clamped on Enter
        return result

    def fixup(self, text: str) -> str:
        typed = self._number(text)
        if typed is None:
            return text
        bound = min(self.maximum(), max(self.minimum(), typed))
        if bound != typed:
            self.clamped.emit(typed, bound)
        return self.textFromValue(bound)


def clamp_message(param: Param, typed: Any, became: Any) -> str:
    name = param.name.replace("_", " ")
    side = "minimum" if typed < became else "maximum"
    return f"{name}: {_number_text(typed)} is {'below' if side == 'minimum' else 'above'} the {side}, " \
           f"so it is {_number_text(became)}"


def _number_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


SEED_MODES = (("fixed", "Keep the seed after each run"), ("increment", "Increment after each run"),
              ("randomize", "Randomize after each run"))


class IntEditor(ParamEditor):
    seedModeChosen = Signal(str)

    def __init__(self, param: Param, on_edit: EditCallback, parent: QWidget | None = None) -> None:
        super().__init__(param, on_edit, parent)
        layout = self._row(3)
        self.spin = BigIntSpinBox(int(param.min) if param.min is not None else -INT_LIMIT,
                                  int(param.max) if param.max is not None else INT_LIMIT,
                                  int(param.step or param.multiple_of or 1))
        self.spin.valueChanged.connect(lambda v: self._emit(int(v), ("spin", id(self))))
        self.spin.clamped.connect(lambda typed, became: self.clamped.emit(clamp_message(param, typed, became)))
        layout.addWidget(self.spin, 1)
        self.dice: QToolButton | None = None
        self._mode_actions: dict[str, Any] = {}
        if param.role is ParamRole.SEED:
            from nodeforge.ui.theme import icon

            self.dice = QToolButton()
            self.dice.setIcon(icon("dice"))
            self.dice.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
            self.dice.setFixedWidth(38)
            self.dice.clicked.connect(self._randomize)
            menu = QMenu(self.dice)
            menu.addAction("New Random Seed Now", self._randomize)
            menu.addSeparator()
            group = QActionGroup(menu)
            for mode, text in SEED_MODES:
                action = menu.addAction(text, lambda m=mode: self.seedModeChosen.emit(m))
                action.setCheckable(True)
                group.addAction(action)
                self._mode_actions[mode] = action
            self.dice.setMenu(menu)
            self.show_seed_mode(None)
            layout.addWidget(self.dice)

    def show_seed_mode(self, mode: str | None) -> None:
        mode = mode or "fixed"
        if self.dice is None or mode not in self._mode_actions:
            return
        self._mode_actions[mode].setChecked(True)
        text = dict(SEED_MODES)[mode]
        self.dice.setToolTip(f"Click: new random seed. After each run: {mode} (menu to change)")
        self.dice.setProperty("seedMode", mode)
        self.dice.setText(text)
        self.dice.style().unpolish(self.dice)
        self.dice.style().polish(self.dice)

    def _randomize(self) -> None:
        self.spin.setValue(random.randint(max(0, self.spin.minimum()), min(self.spin.maximum(), 2 ** 32 - 1)))

    def _show(self, value: Any) -> None:
        try:
            self.spin.setValue(int(value))
        except (TypeError, ValueError):
            pass


class FloatEditor(ParamEditor):
    """A spin box, plus a slider when the param has a range. A drag merges into one undo step."""

    def __init__(self, param: Param, on_edit: EditCallback, parent: QWidget | None = None) -> None:
        super().__init__(param, on_edit, parent)
        layout = self._row(4)
        step = param.step or 0.01
        decimals = max(1, min(4, len(f"{step:.6f}".rstrip("0").split(".")[1])))
        self.spin = ClampingDoubleSpinBox()
        self.spin.clamped.connect(lambda typed, became: self.clamped.emit(clamp_message(param, typed, became)))
        self.spin.setDecimals(decimals)
        self.spin.setRange(param.min if param.min is not None else -1e9, param.max if param.max is not None else 1e9)
        self.spin.setSingleStep(step)
        self.spin.setKeyboardTracking(False)
        self.spin.valueChanged.connect(self._spin_changed)
        self.slider: QSlider | None = None
        self._session: Any = None
        if param.min is not None and param.max is not None and param.max > param.min:
            self.slider = QSlider(Qt.Orientation.Horizontal)
            self.slider.setRange(0, SLIDER_STEPS)
            self.slider.setMinimumWidth(60)
            self.slider.sliderPressed.connect(self._begin_drag)
            self.slider.sliderReleased.connect(self._end_drag)
            self.slider.valueChanged.connect(self._slider_changed)
            layout.addWidget(self.slider, 3)
            self.spin.setMaximumWidth(72)
        layout.addWidget(self.spin, 2)

    def _to_slider(self, value: float) -> int:
        lo, hi = self.param.min, self.param.max
        return round((value - lo) / (hi - lo) * SLIDER_STEPS)

    def _from_slider(self, pos: int) -> float:
        lo, hi = self.param.min, self.param.max
        value = lo + (hi - lo) * pos / SLIDER_STEPS
        step = self.param.step
        if step:
            value = lo + round((value - lo) / step) * step
        return round(min(hi, max(lo, value)), 6)

    def _begin_drag(self) -> None:
        self._session = ("slider", id(self), next(_sessions))

    def _end_drag(self) -> None:
        self._session = None

    def _slider_changed(self, pos: int) -> None:
        if self._setting:
            return
        value = self._from_slider(pos)
        self._setting = True
        self.spin.setValue(value)
        self._setting = False
        self._emit(value, self._session or ("slider", id(self), next(_sessions)))

    def _spin_changed(self, value: float) -> None:
        if self._setting:
            return
        if self.slider is not None:
            self._setting = True
            self.slider.setValue(self._to_slider(value))
            self._setting = False
        self._emit(round(float(value), 6), ("spin", id(self)))

    def _show(self, value: Any) -> None:
        try:
            value = float(value)
        except (TypeError, ValueError):
            return
        self.spin.setValue(value)
        if self.slider is not None:
            self.slider.setValue(self._to_slider(value))


class _PromptEdit(QPlainTextEdit):
    """Typing between focus-in and focus-out is one undo step."""

    def __init__(self, owner: "TextEditor") -> None:
        super().__init__()
        self.owner = owner

    def focusInEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.owner.session = ("text", id(self.owner), next(_sessions))
        super().focusInEvent(event)


class TextEditor(ParamEditor):
    def __init__(self, param: Param, on_edit: EditCallback, parent: QWidget | None = None) -> None:
        super().__init__(param, on_edit, parent)
        layout = self._row(3)
        self.session: Any = ("text", id(self), next(_sessions))
        if param.multiline:
            self.edit = _PromptEdit(self)
            self.edit.setPlaceholderText(param.description or param.name)
            self.edit.setFixedHeight(PROMPT_HEIGHT)
            self.edit.setTabChangesFocus(True)
            self.edit.textChanged.connect(lambda: self._emit(self.edit.toPlainText(), self.session))
            layout.addWidget(self.edit)
        else:
            self.edit = QLineEdit()
            self.edit.setPlaceholderText(param.description or "")
            self.edit.editingFinished.connect(lambda: self._emit(self.edit.text()))
            layout.addWidget(self.edit, 1)
            if param.file is not None:
                browse = QToolButton()
                browse.setText("…")
                browse.setToolTip("Choose a file")
                browse.clicked.connect(self._browse)
                layout.addWidget(browse)

    def _browse(self) -> None:
        pattern = "Images (*.png *.jpg *.jpeg *.webp *.bmp);;All files (*)" if self.param.file is FileKind.IMAGE \
            else "All files (*)"
        path, _ = QFileDialog.getOpenFileName(self, f"Choose {self.param.name}", self.edit.text(), pattern)
        if path:
            self.edit.setText(path)
            self._emit(path)

    def _show(self, value: Any) -> None:
        text = "" if value is None else str(value)
        if isinstance(self.edit, QPlainTextEdit):
            if self.edit.toPlainText() != text:
                self.edit.setPlainText(text)
        elif self.edit.text() != text:
            self.edit.setText(text)


class BoolEditor(ParamEditor):
    def __init__(self, param: Param, on_edit: EditCallback, parent: QWidget | None = None) -> None:
        super().__init__(param, on_edit, parent)
        layout = self._row()
        self.box = QCheckBox()
        self.box.toggled.connect(lambda on: self._emit(bool(on)))
        layout.addWidget(self.box)
        layout.addStretch(1)

    def _show(self, value: Any) -> None:
        self.box.setChecked(bool(value))


class MaskEditor(ParamEditor):
    """A painted mask (ParamRole.PAINTED_MASK): what is painted, and a button that opens the mask
    editor (the node asks the window, which knows the picture)."""

    editRequested = Signal()

    def __init__(self, param: Param, on_edit: EditCallback, parent: QWidget | None = None) -> None:
        super().__init__(param, on_edit, parent)
        layout = self._row(3)
        self.state = QLabel("none")
        layout.addWidget(self.state, 1)
        self.button = QToolButton()
        self.button.setText("Edit Mask…")
        self.button.setToolTip("Paint where to repaint on the picture (saved with the workflow)")
        self.button.clicked.connect(self.editRequested.emit)
        layout.addWidget(self.button)

    def _show(self, value: Any) -> None:
        from nodeforge.core import painted_mask

        self.state.setText(painted_mask.summary("" if value is None else str(value)))


class _ChoiceCombo(QComboBox):
    """Refreshes dynamic choices (model names) each time it opens."""

    def __init__(self, editor: "ChoiceEditor") -> None:
        super().__init__()
        self.editor = editor

    def showPopup(self) -> None:  # noqa: N802 - Qt's name
        self.editor.refresh()
        super().showPopup()


class ChoiceEditor(ParamEditor):
    def __init__(self, param: Param, on_edit: EditCallback, parent: QWidget | None = None) -> None:
        super().__init__(param, on_edit, parent)
        layout = self._row(3)
        self.combo = _ChoiceCombo(self)
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(8)
        self.combo.currentTextChanged.connect(lambda text: self._emit(text) if text else None)
        layout.addWidget(self.combo, 1)
        self._value: str = str(param.default or "")
        if param.file is not None:
            browse = QToolButton()
            browse.setText("…")
            browse.setToolTip(f"Choose a {param.file.value} file")
            browse.clicked.connect(self._browse)
            layout.addWidget(browse)
        self.refresh()

    def choices(self) -> list[str]:
        try:
            return list(self.param.choice_list())
        except Exception:  # a provider that fails must not break the editor
            return []

    def refresh(self) -> None:
        options = self.choices()
        if self._value and self._value not in options:
            options.append(self._value)
        current = [self.combo.itemText(i) for i in range(self.combo.count())]
        if current != options:
            was = self._setting
            self._setting = True
            self.combo.clear()
            self.combo.addItems(options)
            self.combo.setCurrentText(self._value)
            self._setting = was
        if not options:
            self.combo.setPlaceholderText(f"no {self.param.file.value if self.param.file else 'choices'} found")

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, f"Choose {self.param.name}")
        if path:
            self._emit(path)

    def _show(self, value: Any) -> None:
        self._value = "" if value is None else str(value)
        self.refresh()
        self.combo.setCurrentText(self._value)


def make_editor(param: Param, on_edit: EditCallback) -> ParamEditor:
    if param.kind is ParamKind.INT:
        return IntEditor(param, on_edit)
    if param.kind is ParamKind.FLOAT:
        return FloatEditor(param, on_edit)
    if param.kind is ParamKind.BOOL:
        return BoolEditor(param, on_edit)
    if param.kind is ParamKind.CHOICE:
        return ChoiceEditor(param, on_edit)
    if param.role is ParamRole.PAINTED_MASK:
        return MaskEditor(param, on_edit)
    return TextEditor(param, on_edit)


EDITOR_HEIGHT = 22
PROMPT_HEIGHT = 84
LABEL_HEIGHT = 16
MARGINS = (2, 6)      # top, bottom
SPACING = 4


class ParamPanel(QWidget):
    """The params of one node in a two-column grid: a label and its editor per row.

    Rows have fixed heights, so a node can be laid out (and drawn as text) before its widgets
    exist: see `row_layout` and `estimate_height`.
    """

    clamped = Signal(str, str)     # param name, what happened in words

    @staticmethod
    def row_layout(params: tuple[Param, ...]) -> list[tuple[float, float, Param]]:
        """(top, height, param) of each param's row, relative to the panel."""
        rows = []
        y = MARGINS[0]
        for param in params:
            h = LABEL_HEIGHT + SPACING + PROMPT_HEIGHT if param.multiline else EDITOR_HEIGHT
            rows.append((y, h, param))
            y += h + SPACING
        return rows

    @staticmethod
    def estimate_height(params: tuple[Param, ...]) -> float:
        rows = ParamPanel.row_layout(params)
        if not rows:
            return 0.0
        top, h, _ = rows[-1]
        return top + h + MARGINS[1]

    def __init__(self, params: tuple[Param, ...], on_edit: Callable[[str, Any, Any], None],
                 width: int) -> None:
        super().__init__()
        self.setObjectName("nodeBody")
        self.setAttribute(Qt.WidgetAttribute.WA_TranslucentBackground, True)
        grid = QGridLayout(self)
        grid.setContentsMargins(8, MARGINS[0], 8, MARGINS[1])
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(SPACING)
        self.editors: dict[str, ParamEditor] = {}
        row = 0
        for param in params:
            editor = make_editor(param, lambda value, key, name=param.name: on_edit(name, value, key))
            editor.setToolTip(param_help(param))
            editor.clamped.connect(lambda text, name=param.name: self.clamped.emit(name, text))
            label = QLabel(param.name.replace("_", " "))
            label.setToolTip(param_help(param))
            if param.multiline:
                label.setFixedHeight(LABEL_HEIGHT)
                editor.setFixedHeight(PROMPT_HEIGHT)
                grid.addWidget(label, row, 0, 1, 2)
                row += 1
                grid.addWidget(editor, row, 0, 1, 2)
            else:
                editor.setFixedHeight(EDITOR_HEIGHT)
                label.setFixedHeight(EDITOR_HEIGHT)
                label.setAlignment(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft)
                grid.addWidget(label, row, 0)
                grid.addWidget(editor, row, 1)
            row += 1
            self.editors[param.name] = editor
        grid.setColumnStretch(1, 1)
        self.setFixedWidth(width)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.adjustSize()

    @property
    def seed_editor(self) -> "IntEditor | None":
        """The editor of the node's seed (the param declared with role SEED), with its seed control."""
        editor = next((e for e in self.editors.values() if e.param.role is ParamRole.SEED), None)
        return editor if getattr(editor, "dice", None) is not None else None

