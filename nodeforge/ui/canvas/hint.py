"""A one-line hint over the top of the canvas (first start: how to run the graph it opened).

It goes when the user runs, opens another graph or closes it; it takes no part in the scene, so
it never moves with the graph or shows in a saved file.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QWidget

from nodeforge.ui import theme


class CanvasHint(QWidget):
    """A child of the view, not of its viewport: the viewport's children scroll with the canvas."""

    def __init__(self, view: QWidget) -> None:
        super().__init__(view)
        self.setObjectName("canvasHint")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(f"#canvasHint {{ background: rgba(30, 34, 42, 230); border: 1px solid {theme.SELECTED};"
                           f" border-radius: 14px; }} #canvasHint QLabel {{ color: #e8eaf0; }}"
                           f" #canvasHint QToolButton {{ border: none; color: #aab; padding: 0 4px; }}")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(14, 5, 6, 5)
        layout.setSpacing(8)
        self.label = QLabel()
        self.label.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.label)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setToolTip("Hide this hint")
        self.close_button.clicked.connect(self.hide)
        layout.addWidget(self.close_button)
        view.installEventFilter(self)
        self.hide()

    def show_text(self, html: str) -> None:
        self.label.setText(html)
        self.adjustSize()
        self._place()
        self.show()
        self.raise_()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""

    def _place(self) -> None:
        area = self.parentWidget().viewport().geometry()
        self.move(area.x() + max(8, (area.width() - self.width()) // 2), area.y() + 12)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Resize and self.isVisible():
            self._place()
        return False
