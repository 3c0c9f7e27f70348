"""The Images panel, a gallery: this session's results (or a folder's) as thumbnails; the selected
one at the panel's width with what made it and a click-to-copy seed; compare, open, reveal, copy,
drag out and load an image's workflow."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRect, QSize, Qt, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices, QGuiApplication, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QComboBox, QDialog, QDockWidget, QFileDialog, QHBoxLayout, QLabel, QMenu, QPushButton, QScrollArea,
    QSizePolicy, QSplitter, QVBoxLayout, QWidget,
)

from nodeforge.core.metadata import GenerationInfo
from nodeforge.ui.dialogs.compare_dialog import CompareDialog
from nodeforge.ui.dialogs.held import hold
from nodeforge.ui.panels.gallery import (FOLDER, GalleryGrid, folder_records, full_image, has_workflow, label,
                                         parameters_text, slimmed)
from nodeforge.ui.run.runner import RunImage

KEEP = 100             # this session's results the panel lists (the newest)
KEEP_WHOLE = 12        # of which the newest hold their whole picture; older saved ones a thumbnail
SESSION = "This session"
OPEN_FOLDER = "Open folder…"


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
    """This session's results (or a folder's PNGs) as a thumbnail grid, the selected one below at the
    panel's width with what made it. Right-click a thumbnail: open, reveal, copy, compare, load its
    workflow; select two and Compare; drag thumbnails out to copy their files."""

    seedCopied = Signal(str)
    openWorkflow = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Images", parent)
        self.setObjectName("imagePanel")
        self.records: list[RunImage] = []          # this session's results, newest first
        self.folder: Path | None = None             # a folder shown instead of them
        self.compare_dialog: CompareDialog | None = None
        container = QWidget()
        outer = QVBoxLayout(container)
        outer.setContentsMargins(4, 4, 4, 4)
        outer.addLayout(self._bar())
        self.grid = GalleryGrid()
        self.grid.currentRowChanged.connect(lambda _row: self._show_current())
        self.grid.itemSelectionChanged.connect(self._selection_changed)
        self.grid.itemDoubleClicked.connect(lambda item: self.view_full(self.grid.record_at(self.grid.row(item))))
        self.grid.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.grid.customContextMenuRequested.connect(self._grid_menu)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(self.grid)
        splitter.addWidget(self._detail_area())
        splitter.setSizes([240, 640])
        outer.addWidget(splitter, 1)
        self.setWidget(container)
        self.setMinimumWidth(280)
        self._render()

    def _bar(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.source = QComboBox()
        self.source.addItems([SESSION, OPEN_FOLDER])
        self.source.setToolTip("Show this session's results, or the PNGs of a folder (a batch's, the output folder)")
        self.source.activated.connect(self._source_chosen)
        row.addWidget(self.source, 1)
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip("Compare the two selected images (Ctrl+click to select two)")
        self.compare_button.setEnabled(False)
        self.compare_button.clicked.connect(self.compare_selected)
        row.addWidget(self.compare_button)
        return row

    def _detail_area(self) -> QScrollArea:
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        # A scroll bar that comes and goes changes the width, hence the image's height: keep it.
        scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.body = QWidget()
        self.layout_ = QVBoxLayout(self.body)
        self.layout_.setContentsMargins(4, 4, 4, 4)
        self.layout_.setSpacing(6)
        self.empty = QLabel("Run the graph (Ctrl+Enter) to see images here.")
        self.empty.setObjectName("panelCaption")
        self.empty.setWordWrap(True)
        self.layout_.addWidget(self.empty)
        self.layout_.addStretch(1)
        scroll.setWidget(self.body)
        return scroll

    # -- what is shown ------------------------------------------------------------------------------
    def add_images(self, records: list[RunImage]) -> None:
        if not records:
            return
        merged = (list(records) + self.records)[:KEEP]
        self.records = [record if index < KEEP_WHOLE else slimmed(record) for index, record in enumerate(merged)]
        self.folder = None          # new results: back to this session's
        self._render()

    def refresh(self) -> None:
        """Redraw the listed images (a batch moved their files into its folder)."""
        self._render()

    def clear(self) -> None:
        self.records = []
        self._render()

    def show_folder(self, folder: str | Path) -> int:
        """Show the PNGs of `folder` (and its sub-folders) instead of this session's; returns how many."""
        self.folder = Path(folder)
        self._render()
        return len(self.grid.records)

    def show_session(self) -> None:
        self.folder = None
        self._render()

    def shown(self) -> list[RunImage]:
        return self.grid.records

    def _source_chosen(self, index: int) -> None:
        text = self.source.itemText(index)
        if text == SESSION:
            self.show_session()
        elif text == OPEN_FOLDER:
            start = str(self.folder or (Path(self.records[0].path).parent if self.records and self.records[0].path
                                        else Path.home()))
            folder = QFileDialog.getExistingDirectory(self, "Show the images of a folder", start)
            if folder:
                self.show_folder(folder)
            else:
                self._render()      # back to what was shown
        else:
            self.show_folder(self.source.itemData(index))

    def _render(self) -> None:
        records = folder_records(self.folder) if self.folder is not None else self.records
        self.grid.set_records(records)
        self._sync_source()
        if records:
            self.grid.setCurrentRow(0)
        self._show_current()
        self._selection_changed()

    def _sync_source(self) -> None:
        """The source list: this session, the folder shown (if any), then "Open folder…" last."""
        while self.source.count() > 2:
            self.source.removeItem(1)
        if self.folder is None:
            self.source.setCurrentIndex(0)
            return
        self.source.insertItem(1, f"Folder: {self.folder.name or self.folder}", str(self.folder))
        self.source.setItemData(1, str(self.folder), Qt.ItemDataRole.ToolTipRole)
        self.source.setCurrentIndex(1)

    def _show_current(self) -> None:
        while self.layout_.count():
            widget = self.layout_.takeAt(0).widget()
            if widget is not None and widget is not self.empty:
                widget.setParent(None)     # gone from findChild at once, deleted later
                widget.deleteLater()
        record = self.grid.record_at(self.grid.currentRow())
        self.empty.setText("No PNG images in this folder." if self.folder is not None
                           else "Run the graph (Ctrl+Enter) to see images here.")
        self.empty.setVisible(record is None)
        self.layout_.addWidget(self.empty)
        if record is not None:
            image = full_image(record)
            view = ImageView(image, record.path)
            view.openWorkflow.connect(self.openWorkflow)
            self.layout_.addWidget(view)
            self.layout_.addWidget(self._caption(record, image))
        self.layout_.addStretch(1)

    def _selection_changed(self) -> None:
        self.compare_button.setEnabled(len(self.grid.selectedItems()) == 2)

    def _caption(self, record: RunImage, img: QImage) -> QWidget:
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 10)
        lay.setSpacing(2)
        info = record.info
        head = f"{img.width()}×{img.height()}"
        if record.path:
            head += f" · {record.path}"
        head += same_note(record)
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
        made = parameters_text(record.path) if record.node_id == FOLDER else ""
        if made:    # a folder's image: what its PNG says made it
            label = QLabel(_esc(made).replace("\n", "<br>"))
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            lay.addWidget(label)
        return box

    # -- what a thumbnail offers ----------------------------------------------------------------------
    def _grid_menu(self, pos) -> None:  # noqa: ANN001 - QPoint
        item = self.grid.itemAt(pos)
        if item is None:
            return
        if not item.isSelected():
            self.grid.setCurrentItem(item)
        self.grid_menu(self.grid.record_at(self.grid.row(item))).exec(self.grid.viewport().mapToGlobal(pos))

    def grid_menu(self, record: RunImage) -> QMenu:
        """The right-click menu of a thumbnail (built apart from showing it, for tests and scripts)."""
        menu = QMenu(self)
        menu.addAction("View at Full Size", lambda: self.view_full(record))
        saved = bool(record.path) and Path(record.path).is_file()
        for text, slot in (("Open", self.open_external), ("Reveal in Folder", self.reveal)):
            menu.addAction(text, lambda slot=slot: slot(record)).setEnabled(saved)
        menu.addAction("Copy Image", lambda: QGuiApplication.clipboard().setImage(full_image(record)))
        menu.addAction("Copy Path", lambda: QGuiApplication.clipboard().setText(record.path or "")).setEnabled(saved)
        load = menu.addAction("Load This Image's Workflow", lambda: self.openWorkflow.emit(record.path))
        load.setEnabled(saved and has_workflow(record.path))
        if not load.isEnabled():
            load.setToolTip("this image carries no workflow")
        menu.addSeparator()
        menu.addAction("Compare Selected", self.compare_selected).setEnabled(len(self.grid.selectedItems()) == 2)
        for action in menu.actions():
            action.setObjectName(action.text())
        return menu

    def view_full(self, record: RunImage | None) -> "ImageViewer | None":
        if record is None:
            return None
        viewer = ImageViewer(full_image(record), Path(record.path).name if record.path else "Image", self.window())
        viewer.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        viewer.show()
        return viewer

    def open_external(self, record: RunImage) -> None:
        """Open the file in the system's image viewer."""
        QDesktopServices.openUrl(QUrl.fromLocalFile(record.path))

    def reveal(self, record: RunImage) -> None:
        """Open the folder that holds the file in the file manager."""
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(record.path).parent)))

    def compare_selected(self) -> "CompareDialog | None":
        chosen = self.grid.selected_records()
        return self.compare(*chosen) if len(chosen) == 2 else None

    def compare(self, first: RunImage, second: RunImage) -> CompareDialog:
        """The two images in the Compare dialog (the newer one on the left)."""
        names = tuple(Path(r.path).name if r.path else label(r) for r in (first, second))
        if self.compare_dialog is not None:
            self.compare_dialog.close()
        dialog = CompareDialog(full_image(first), full_image(second), names, self.window())
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        hold(self, "compare_dialog", dialog)
        dialog.show()
        return dialog

    def copy_seed(self, seed: str) -> None:
        QGuiApplication.clipboard().setText(seed)
        self.seedCopied.emit(seed)


def same_note(record: RunImage) -> str:
    """" · the same image as X" for a re-run that drew the pixels of an earlier image (issue 31)."""
    if not record.same_as:
        return ""
    name = Path(record.same_as).name
    return f" · the same image as {name} (not saved again)" if not record.saved_again else \
        f" · the same image as {name}"


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
