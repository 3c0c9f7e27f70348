"""The mask editor: paint and erase a mask on a Load Image node's picture (brush size, feather,
invert, clear, undo). OK stores it in the node's painted-mask param as PNG data
(`nodeforge/core/painted_mask.py`), so it is saved with the workflow and the node's MASK output uses it.

The mask is an image of the picture's size whose alpha is the mask (255 = repaint). The left button
paints (or erases in Erase mode), the right button always erases; the wheel changes the brush size.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QImage, QKeySequence, QPainter, QPen, QRadialGradient, QShortcut
from PySide6.QtWidgets import (QButtonGroup, QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QPushButton,
                               QSlider, QSpinBox, QVBoxLayout, QWidget)

from nodeforge.core import painted_mask
from nodeforge.core.spec import NodeSpec
from nodeforge.core.types import FileKind

OVERLAY = QColor(255, 40, 60)
OVERLAY_OPACITY = 0.55
MAX_UNDO = 30


def node_picture(params: dict[str, Any], spec: NodeSpec | None,
                 resolve: Callable[[FileKind, str], Path]) -> tuple[QImage, str]:
    """The picture an image node's file param names, and if it cannot be shown, why."""
    picture_param = next((p for p in spec.params if p.file is FileKind.IMAGE), None) if spec else None
    path = str(params.get(picture_param.name, "")) if picture_param is not None else ""
    if not path:
        return QImage(), "choose a picture first"
    try:
        picture = QImage(str(resolve(FileKind.IMAGE, path)))
    except LookupError as exc:
        return QImage(), str(exc)
    return picture, "" if not picture.isNull() else f"cannot read {path} as an image"


def mask_to_value(mask: QImage) -> str:
    """The param value for a mask image (alpha = mask): greyscale PNG data, or '' when nothing is painted."""
    grey = _alpha_as_grey(mask)
    if coverage(mask) == 0:
        return ""
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    grey.save(buffer, "PNG")
    return painted_mask.encode(bytes(data))


def value_to_mask(value: str, size: QSize) -> QImage:
    """A mask image of `size` from a param value ('' or damaged data: an empty mask)."""
    mask = QImage(size, QImage.Format.Format_ARGB32_Premultiplied)
    mask.fill(Qt.GlobalColor.transparent)
    if not value or painted_mask.check(value) is not None:
        return mask
    grey = QImage.fromData(painted_mask.decode(value)).convertToFormat(QImage.Format.Format_Grayscale8)
    if grey.isNull():
        return mask
    if grey.size() != size:
        grey = grey.scaled(size, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation)
    mask.fill(QColor(255, 255, 255))
    mask.setAlphaChannel(grey)
    return mask


def _alpha_as_grey(image: QImage, invert: bool = False) -> QImage:
    alpha = image.convertToFormat(QImage.Format.Format_Alpha8)
    if invert:
        alpha.invertPixels(QImage.InvertMode.InvertRgba)
    return QImage(alpha.constBits(), alpha.width(), alpha.height(), alpha.bytesPerLine(),
                  QImage.Format.Format_Grayscale8).copy()


def transparency_mask(picture: QImage) -> QImage:
    """The mask LoadImage takes from the picture when none is painted: its transparent pixels."""
    mask = QImage(picture.size(), QImage.Format.Format_ARGB32_Premultiplied)
    mask.fill(Qt.GlobalColor.transparent)
    if picture.hasAlphaChannel():
        mask.fill(QColor(255, 255, 255))
        mask.setAlphaChannel(_alpha_as_grey(picture, invert=True))
    return mask


def with_mask(picture: QImage, value: str) -> QImage:
    """The picture with its painted mask over it in red (the node's preview); the picture when none."""
    if not value:
        return picture
    shown = picture.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
    painter = QPainter(shown)
    painter.setOpacity(OVERLAY_OPACITY)
    painter.drawImage(0, 0, tinted(value_to_mask(value, picture.size())))
    painter.end()
    return shown


def tinted(mask: QImage) -> QImage:
    """The mask in the overlay colour (its alpha kept)."""
    overlay = QImage(mask.size(), QImage.Format.Format_ARGB32_Premultiplied)
    overlay.fill(OVERLAY)
    painter = QPainter(overlay)
    painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_DestinationIn)
    painter.drawImage(0, 0, mask)
    painter.end()
    return overlay


def coverage(mask: QImage) -> float:
    """How much of the picture is to be repainted, 0 to 1 (half-painted pixels count half)."""
    alpha = mask.convertToFormat(QImage.Format.Format_Alpha8)
    line = alpha.width()
    data = bytes(alpha.constBits())
    total = sum(sum(data[y * alpha.bytesPerLine():y * alpha.bytesPerLine() + line]) for y in range(alpha.height()))
    return total / (255 * max(1, alpha.width() * alpha.height()))


class MaskCanvas(QWidget):
    """The picture, scaled to fit, with the mask over it in red; the mouse paints and erases."""

    changed = Signal()

    def __init__(self, picture: QImage, mask: QImage, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.picture = picture
        self.mask = mask
        self.brush_size = 32          # picture pixels across
        self.feather = 0.3            # share of the radius that fades out
        self.erasing = False
        self.undo_stack: list[QImage] = []
        self._last: QPointF | None = None
        self._stroke_erases = False
        self._hover: QPointF | None = None
        self.setMouseTracking(True)
        self.setMinimumSize(320, 320)
        self.setCursor(Qt.CursorShape.CrossCursor)

    # -- geometry -----------------------------------------------------------------------------------
    def image_rect(self) -> QRectF:
        """Where the picture is drawn in the widget (fitted, centred, aspect kept)."""
        size = QSize(self.picture.size())
        size.scale(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        return QRectF((self.width() - size.width()) / 2, (self.height() - size.height()) / 2,
                      size.width(), size.height())

    def scale(self) -> float:
        return self.image_rect().width() / max(1, self.picture.width())

    def to_image(self, pos: QPointF) -> QPointF:
        rect = self.image_rect()
        return (QPointF(pos) - rect.topLeft()) / self.scale()

    def to_widget(self, point: QPointF) -> QPointF:
        return self.image_rect().topLeft() + QPointF(point) * self.scale()

    # -- painting the mask --------------------------------------------------------------------------
    def dab(self, center: QPointF, erase: bool) -> None:
        """One round brush mark at `center` (picture pixels), soft over the feathered rim."""
        radius = max(0.5, self.brush_size / 2)
        gradient = QRadialGradient(center, radius)
        solid = QColor(255, 255, 255, 255)
        gradient.setColorAt(0.0, solid)
        gradient.setColorAt(min(0.999, max(0.0, 1.0 - self.feather)), solid)
        gradient.setColorAt(1.0, QColor(255, 255, 255, 0))
        painter = QPainter(self.mask)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QBrush(gradient))
        if erase:
            painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_DestinationOut)
        painter.drawEllipse(center, radius, radius)
        painter.end()

    def stroke_to(self, point: QPointF) -> None:
        """Dabs from the last point to `point`, a quarter radius apart, so a fast drag stays a line."""
        start = self._last if self._last is not None else point
        step = max(1.0, self.brush_size / 8)
        delta = point - start
        count = max(1, int((delta.x() ** 2 + delta.y() ** 2) ** 0.5 / step))
        for i in range(1, count + 1):
            self.dab(start + delta * (i / count), self._stroke_erases)
        self._last = point
        self.update()

    def push_undo(self) -> None:
        self.undo_stack.append(self.mask.copy())
        del self.undo_stack[:-MAX_UNDO]

    def undo(self) -> None:
        if self.undo_stack:
            self.mask = self.undo_stack.pop()
            self.update()
            self.changed.emit()

    def invert(self) -> None:
        self.push_undo()
        grey = _alpha_as_grey(self.mask, invert=True)
        self.mask.fill(QColor(255, 255, 255))
        self.mask.setAlphaChannel(grey)
        self.update()
        self.changed.emit()

    def clear(self) -> None:
        self.push_undo()
        self.mask.fill(Qt.GlobalColor.transparent)
        self.update()
        self.changed.emit()

    # -- events -------------------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.button() not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            return
        self.push_undo()
        self._stroke_erases = self.erasing or event.button() == Qt.MouseButton.RightButton
        self._last = None
        self.stroke_to(self.to_image(event.position()))

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        self._hover = event.position()
        if self._last is not None and event.buttons() & (Qt.MouseButton.LeftButton | Qt.MouseButton.RightButton):
            self.stroke_to(self.to_image(event.position()))
        else:
            self.update()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._last is not None:
            self._last = None
            self.changed.emit()

    def wheelEvent(self, event) -> None:  # noqa: N802
        step = 1 if event.angleDelta().y() > 0 else -1
        self.brush_size = max(1, min(512, round(self.brush_size * (1.15 if step > 0 else 1 / 1.15))))
        self.changed.emit()
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#15161a"))
        rect = self.image_rect()
        painter.fillRect(rect, QBrush(QColor("#5a5d66"), Qt.BrushStyle.Dense4Pattern))  # transparent: chequered
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(rect, self.picture)
        painter.setOpacity(OVERLAY_OPACITY)
        painter.drawImage(rect, tinted(self.mask))
        painter.setOpacity(1.0)
        if self._hover is not None and self.underMouse():
            radius = self.brush_size / 2 * self.scale()
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(QPen(QColor(255, 255, 255, 200), 1.2))
            painter.drawEllipse(self._hover, radius, radius)
            if self.feather > 0:
                painter.setPen(QPen(QColor(255, 255, 255, 90), 1, Qt.PenStyle.DashLine))
                painter.drawEllipse(self._hover, radius * (1 - self.feather), radius * (1 - self.feather))


class MaskEditorDialog(QDialog):
    """Paint the mask of a picture. `value()` is the param value to store once accepted."""

    def __init__(self, picture: QImage, value: str, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Mask: {title}")
        # Unpainted, it starts from the mask the node gives now (the picture's transparent pixels).
        start = value_to_mask(value, picture.size()) if value else transparency_mask(picture)
        self.canvas = MaskCanvas(picture, start, self)
        self.setStyleSheet("QPushButton:checked { background: #3d6b9a; color: white; }")
        layout = QVBoxLayout(self)
        layout.addLayout(self._tools())
        layout.addWidget(self.canvas, 1)
        self.status = QLabel()
        layout.addWidget(self.status)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        QShortcut(QKeySequence.StandardKey.Undo, self, self.canvas.undo)
        self.canvas.changed.connect(self._show_state)
        self.resize(760, 720)
        self._show_state()

    def _tools(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.paint_button, self.erase_button = QPushButton("Paint"), QPushButton("Erase")
        group = QButtonGroup(self)
        for button in (self.paint_button, self.erase_button):
            button.setCheckable(True)
            group.addButton(button)
            row.addWidget(button)
        self.paint_button.setChecked(True)
        self.paint_button.setToolTip("Left button paints where to repaint (the right button always erases)")
        self.erase_button.toggled.connect(lambda on: setattr(self.canvas, "erasing", on))
        self.size_spin = self._number(row, "Brush", 1, 512, self.canvas.brush_size, " px")
        self.size_spin.valueChanged.connect(lambda v: setattr(self.canvas, "brush_size", v))
        self.feather_slider = QSlider(Qt.Orientation.Horizontal)
        self.feather_slider.setRange(0, 100)
        self.feather_slider.setValue(round(self.canvas.feather * 100))
        self.feather_slider.setToolTip("Feather: how much of the brush's edge fades out (0: hard edge)")
        self.feather_slider.valueChanged.connect(lambda v: setattr(self.canvas, "feather", v / 100))
        row.addWidget(QLabel("Feather"))
        row.addWidget(self.feather_slider)
        for text, slot, tip in (("Invert", self.canvas.invert, "Repaint what is kept and keep what is repainted"),
                                ("Clear", self.canvas.clear, "Remove the whole mask"),
                                ("Undo", self.canvas.undo, "Undo the last stroke (Ctrl+Z)")):
            button = QPushButton(text)
            button.setToolTip(tip)
            button.clicked.connect(slot)
            row.addWidget(button)
            setattr(self, f"{text.lower()}_button", button)
        return row

    @staticmethod
    def _number(row: QHBoxLayout, label: str, low: int, high: int, value: int, suffix: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(low, high)
        spin.setValue(value)
        spin.setSuffix(suffix)
        row.addWidget(QLabel(label))
        row.addWidget(spin)
        return spin

    def _show_state(self) -> None:
        if self.size_spin.value() != self.canvas.brush_size:
            self.size_spin.setValue(self.canvas.brush_size)
        share = coverage(self.canvas.mask)
        self.status.setText(f"{self.canvas.picture.width()}x{self.canvas.picture.height()} - "
                            f"{share:.0%} to repaint. Left: paint, right: erase, wheel: brush size.")

    def value(self) -> str:
        return mask_to_value(self.canvas.mask)
