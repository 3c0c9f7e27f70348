"""The image panel: the latest results at full size, with what made them and a click-to-copy seed."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRect, QSize, Qt, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices, QGuiApplication, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QDialog, QDockWidget, QLabel, QMenu, QScrollArea, QSizePolicy, QVBoxLayout, QWidget,
)

from nodeforge.core.metadata import GenerationInfo
from nodeforge.ui.run.runner import RunImage

KEEP = 12


class ClickLabel(QLabel):
    clicked = Signal()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        self.clicked.emit()


class ImageView(QWidget):
    """Draws its image at the panel's width, keeping the aspect ratio (height follows width).

    Right-click: copy the image, open its folder, or load the workflow saved in it.
    """

    openWorkflow = Signal(str)

    def __init__(self, image: QImage, path: str | None = None) -> None:  # noqa: D107
        super().__init__()
        self.image = image
        self.path = path
        self.setToolTip("Double-click: view at full size. Right-click: copy, open folder, load its workflow")
        self.viewer: ImageViewer | None = None
        policy = QSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)
        self.setMinimumSize(64, 64)

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802
        return max(32, round(width * self.image.height() / max(1, self.image.width())))

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(256, self.heightForWidth(256))

    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#111214"))
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        size = self.image.size().scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        x = (self.width() - size.width()) // 2
        y = (self.height() - size.height()) // 2
        painter.drawImage(QRect(x, y, size.width(), size.height()), self.image)
        painter.end()

    def open_viewer(self) -> "ImageViewer":
        self.viewer = ImageViewer(self.image, Path(self.path).name if self.path else "Image", self.window())
        self.viewer.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.viewer.show()
        return self.viewer

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        self.open_viewer()

    def contextMenuEvent(self, event) -> None:  # noqa: N802
        menu = QMenu(self)
        menu.addAction("View at Full Size", self.open_viewer)
        menu.addAction("Copy Image", lambda: QGuiApplication.clipboard().setImage(self.image))
        if self.path:
            menu.addAction("Copy Path", lambda: QGuiApplication.clipboard().setText(self.path))
            menu.addAction("Open Containing Folder", lambda: QDesktopServices.openUrl(
                QUrl.fromLocalFile(str(Path(self.path).parent))))
            menu.addAction("Load Workflow From Image", lambda: self.openWorkflow.emit(self.path))
        menu.exec(event.globalPos())


class ImageViewer(QDialog):
    """An image at 100% (scroll to see it all) or fitted to the window; F toggles, Esc closes."""

    def __init__(self, image: QImage, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.image = image
        self.fit = image.width() > 1400 or image.height() > 900
        self.label = QLabel()
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.scroll = QScrollArea()
        self.scroll.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.scroll.setWidget(self.label)
        self.scroll.setStyleSheet("background: #111214;")
        self.info = QLabel()
        self.info.setObjectName("panelCaption")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 4)
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.info)
        self.resize(min(1400, max(480, image.width() + 40)), min(900, max(360, image.height() + 70)))
        self._show()

    def _show(self) -> None:
        if self.fit:
            area = self.scroll.viewport().size()
            pixmap = QPixmap.fromImage(self.image).scaled(area, Qt.AspectRatioMode.KeepAspectRatio,
                                                          Qt.TransformationMode.SmoothTransformation)
        else:
            pixmap = QPixmap.fromImage(self.image)
        self.label.setPixmap(pixmap)
        self.label.resize(pixmap.size())
        self.info.setText(f"  {self.image.width()}×{self.image.height()} · "
                          f"{'fitted' if self.fit else '100%'} (F toggles)")

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self.fit:
            self._show()

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_F:
            self.fit = not self.fit
            self._show()
            return
        super().keyPressEvent(event)


class ImagePanel(QDockWidget):
    seedCopied = Signal(str)
    openWorkflow = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Images", parent)
        self.setObjectName("imagePanel")
        self.records: list[RunImage] = []
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        # A scroll bar that comes and goes changes the width, hence every image's height: keep it.
        scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.body = QWidget()
        self.layout_ = QVBoxLayout(self.body)
        self.layout_.setContentsMargins(8, 8, 8, 8)
        self.layout_.setSpacing(6)
        self.empty = QLabel("Run the graph (Ctrl+Enter) to see images here.")
        self.empty.setObjectName("panelCaption")
        self.empty.setWordWrap(True)
        self.layout_.addWidget(self.empty)
        self.layout_.addStretch(1)
        scroll.setWidget(self.body)
        self.setWidget(scroll)
        self.setMinimumWidth(280)

    def add_images(self, records: list[RunImage]) -> None:
        if not records:
            return
        self.records = (list(records) + self.records)[:KEEP]
        self._render()

    def refresh(self) -> None:
        """Redraw the listed images (a batch moved their files into its folder)."""
        self._render()

    def clear(self) -> None:
        self.records = []
        self._render()

    def _render(self) -> None:
        while self.layout_.count():
            item = self.layout_.takeAt(0)
            if item.widget() is not None and item.widget() is not self.empty:
                item.widget().deleteLater()
        self.empty.setVisible(not self.records)
        self.layout_.addWidget(self.empty)
        for record in self.records:
            view = ImageView(record.image, record.path)
            view.openWorkflow.connect(self.openWorkflow)
            self.layout_.addWidget(view)
            self.layout_.addWidget(self._caption(record))
        self.layout_.addStretch(1)

    def _caption(self, record: RunImage) -> QWidget:
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 10)
        lay.setSpacing(2)
        info = record.info
        img = record.image
        head = f"{img.width()}×{img.height()}"
        if record.path:
            head += f" · {record.path}"
        top = QLabel(head)
        top.setObjectName("panelCaption")
        top.setWordWrap(True)
        top.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(top)
        if info.seed is not None:
            seed = ClickLabel(f"seed {info.seed}  (click to copy)")
            seed.setObjectName("seedLabel")
            seed.setCursor(Qt.CursorShape.PointingHandCursor)
            seed.setToolTip("Copy the seed to the clipboard")
            seed.clicked.connect(lambda s=str(info.seed): self.copy_seed(s))
            lay.addWidget(seed)
        rest = settings_line(info)
        if rest:
            label = QLabel(" · ".join(rest))
            label.setObjectName("panelCaption")
            label.setWordWrap(True)
            lay.addWidget(label)
        for title, text in record.prompts:
            label = QLabel(f"<b>{_esc(title)}</b>: {_esc(text)}")
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            lay.addWidget(label)
        return box

    def copy_seed(self, seed: str) -> None:
        QGuiApplication.clipboard().setText(seed)
        self.seedCopied.emit(seed)


def settings_line(info: GenerationInfo) -> list[str]:
    """The sampler's other params, the model and the LoRAs, as "name: value" items."""
    rest = [f"{k}: {v}" for k, v in info.params.items() if k != info.seed_param]
    if info.model:
        rest.append(f"model: {info.model}")
    rest += [f"LoRA {lora.name}: {lora.strength:g}" if lora.strength is not None else f"LoRA {lora.name}"
             for lora in info.loras]
    return rest


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
