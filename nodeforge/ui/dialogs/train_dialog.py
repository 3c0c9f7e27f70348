"""Run > Train LoRA…: train a LoRA, DoRA, DreamBooth LoRA or embedding on a folder of images, from the editor.

Left: the image folder as thumbnails with their captions (the .txt beside each image), edited in
place and saved back as they are typed. Right: the base model (the checkpoints the editor lists),
the method and its settings (DreamBooth: the instance and class prompts and the prior
preservation), and a fixed sample prompt and seed. Start runs the command line's own
trainer in a separate process (`train_job.TrainJob`), so the canvas stays usable; the progress bar,
a live loss curve and a sample image every N steps follow its output. Cancel stops it after the
step under way with its checkpoint written in the run's work folder, and Resume continues from
there. The finished file goes into the user's models folder (loras/ or embeddings/) and the
window's model lists are rescanned, so it is listed without a restart.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QImageReader, QPainter, QPen, QPixmap, QPolygonF
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDialog, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QGridLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QMessageBox,
                               QProgressBar, QPushButton, QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout,
                               QWidget)

from nodeforge.core.files import atomic_write_bytes
from nodeforge.core.models import SUBFOLDERS, FileKind, ModelPaths, user_data_dir
from nodeforge.training.common import IMAGE_SUFFIXES, TrainingInputError, read_caption
from nodeforge.ui.dialogs.train_job import METHODS, TrainJob, TrainSettings, build_argv, has_checkpoint

THUMB = 64
NAME = re.compile(r"^[\w][\w.-]*$")


def base_resolution(base: Path) -> int:
    """The pixel size a diffusers folder was made for (UNet sample size x the VAE's factor); 512 otherwise."""
    try:
        unet = json.loads((base / "unet" / "config.json").read_text(encoding="utf-8"))
        vae = json.loads((base / "vae" / "config.json").read_text(encoding="utf-8"))
        size = int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)
        return size if 8 <= size <= 4096 else 512
    except (OSError, ValueError, KeyError, TypeError):
        return 512


class LossCurve(QWidget):
    """The training loss as it comes: each step's loss (dim) and its running average (bright)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.points: list[tuple[int, float]] = []
        self.total = 1
        self.setMinimumSize(280, 120)

    def clear(self, total: int = 1) -> None:
        self.points, self.total = [], max(1, total)
        self.update()

    def add(self, step: int, loss: float, total: int) -> None:
        self.total = max(1, total)
        if loss == loss and abs(loss) != float("inf"):   # not NaN nor infinite
            self.points.append((step, loss))
        self.update()

    def smoothed(self) -> list[float]:
        out, value = [], None
        for _, loss in self.points:
            value = loss if value is None else 0.9 * value + 0.1 * loss
            out.append(value)
        return out

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor("#1e2024"))
        p.setPen(QColor("#9aa0a8"))
        if not self.points:
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "loss: starts with the first step")
            return
        losses = [loss for _, loss in self.points]
        low, high = min(losses), max(losses)
        span = (high - low) or 1.0
        left, top, w, h = 8, 22, self.width() - 16, self.height() - 30

        def at(step: int, loss: float) -> QPointF:
            return QPointF(left + w * step / self.total, top + h * (1 - (loss - low) / span))

        p.drawText(8, 15, f"loss {losses[-1]:.4f} at step {self.points[-1][0]}")
        p.drawText(QRectF(0, 0, self.width() - 8, 20), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                   f"{low:.3g} – {high:.3g}")
        p.setPen(QPen(QColor(110, 140, 180, 110), 1))
        p.drawPolyline(QPolygonF([at(s, v) for s, v in self.points]))
        p.setPen(QPen(QColor("#f0a040"), 2))
        p.drawPolyline(QPolygonF([at(s, v) for (s, _), v in zip(self.points, self.smoothed())]))


class CaptionTable(QTableWidget):
    """The folder's images as thumbnails with their captions; an edited caption is saved to its .txt."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, 2, parent)
        self.images: list[Path] = []
        self.setHorizontalHeaderLabels(["Image", "Caption (saved to the .txt beside the image)"])
        self.setIconSize(QSize(THUMB, THUMB))
        self.verticalHeader().setDefaultSectionSize(THUMB + 6)
        self.verticalHeader().hide()
        self.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Fixed)
        self.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.setColumnWidth(0, THUMB + 12)
        self.setWordWrap(True)
        self.set_editable(True)
        self.itemChanged.connect(self._changed)
        self.error: Callable[[str], None] = lambda text: None

    def load(self, folder: Path) -> tuple[int, int]:
        """Show the folder's images; (images, images without a caption)."""
        self.blockSignals(True)
        self.setRowCount(0)
        self.images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()) \
            if folder.is_dir() else []
        missing = 0
        for row, path in enumerate(self.images):
            self.insertRow(row)
            thumb = QTableWidgetItem(_thumbnail(path), "")
            thumb.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
            thumb.setToolTip(path.name)
            try:
                caption = read_caption(path)
                item = QTableWidgetItem(caption or "")
                missing += caption is None
            except TrainingInputError as exc:
                item = QTableWidgetItem(f"(unreadable: {exc})")
                item.setFlags(Qt.ItemFlag.ItemIsEnabled)
            item.setToolTip(f"{path.with_suffix('.txt').name}: double-click or type to edit")
            self.setItem(row, 0, thumb)
            self.setItem(row, 1, item)
        self.blockSignals(False)
        return len(self.images), missing

    def set_editable(self, on: bool) -> None:
        triggers = QAbstractItemView.EditTrigger
        self.setEditTriggers(triggers.DoubleClicked | triggers.EditKeyPressed | triggers.AnyKeyPressed if on
                             else triggers.NoEditTriggers)

    def caption(self, row: int) -> str:
        return self.item(row, 1).text()

    def set_caption(self, row: int, text: str) -> None:
        self.item(row, 1).setText(text)

    def _changed(self, item: QTableWidgetItem) -> None:
        if item.column() != 1 or item.row() >= len(self.images):
            return
        txt = self.images[item.row()].with_suffix(".txt")
        try:
            atomic_write_bytes(txt, (item.text().strip() + "\n").encode("utf-8"))
        except OSError as exc:
            self.error(f"Could not save the caption {txt}: {exc.strerror or exc}")


def _thumbnail(path: Path) -> QIcon:
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    size = reader.size()
    if size.isValid() and max(size.width(), size.height()) > THUMB:
        reader.setScaledSize(size.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    return QIcon(QPixmap.fromImage(image)) if not image.isNull() else QIcon()


class TrainDialog(QDialog):
    """The Train dialog. `on_trained(kind)` is called when a file was written (the window rescans
    its model lists); `work_root` holds each run's work folder (checkpoint, samples)."""

    def __init__(self, paths: ModelPaths, on_trained: Callable[[FileKind], None] | None = None,
                 parent: QWidget | None = None, work_root: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Train LoRA / DoRA / DreamBooth / embedding")
        self.paths = paths
        self.on_trained = on_trained
        self.work_root = work_root or user_data_dir() / "training"
        self.job: TrainJob | None = None
        self.sample_path: str | None = None
        self.result: Path | None = None
        self._build()
        self.fill_bases()
        self._method_changed()
        self.resize(1060, 680)

    # -- construction ---------------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QHBoxLayout(self)
        left = QVBoxLayout()
        row = QHBoxLayout()
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("a folder of images with same-named .txt captions")
        self.folder.editingFinished.connect(self.load_folder)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row.addWidget(QLabel("Images:"))
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        left.addLayout(row)
        self.table = CaptionTable()
        self.table.error = self._say
        left.addWidget(self.table, 1)
        self.folder_note = QLabel("Pick the folder of training images.")
        left.addWidget(self.folder_note)
        layout.addLayout(left, 3)
        right = QVBoxLayout()
        right.addWidget(self._settings_box())
        right.addWidget(self._progress_box(), 1)
        right.addLayout(self._buttons())
        layout.addLayout(right, 2)

    def _settings_box(self) -> QGroupBox:
        box = QGroupBox("Settings")
        form = QFormLayout(box)
        self.base = QComboBox()
        self.base.currentIndexChanged.connect(self._base_changed)
        self.method = QComboBox()
        for key, method in METHODS.items():
            self.method.addItem(method.label, key)
            self.method.setItemData(self.method.count() - 1, method.tip, Qt.ItemDataRole.ToolTipRole)
        self.method.currentIndexChanged.connect(self._method_changed)
        self.name = QLineEdit("my-style")
        self.name.textChanged.connect(self._update_buttons)
        self.steps = _spin(1, 100_000, 200, "optimizer steps")
        self.rank = _spin(1, 256, 4, "LoRA rank: more learns more, bigger file (alpha = rank)")
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(0.00001, 1.0)
        self.lr.setSingleStep(0.0001)
        self.lr.setValue(1e-3)
        self.batch = _spin(1, 256, 4, "images per step")
        self.resolution = _spin(8, 4096, 64, "images are centre-cropped square and resized to this size")
        self.resolution.setSingleStep(8)
        self.prompt = QLineEdit("a red star on a blue background")
        self.seed = _spin(0, 2 ** 31 - 1, 0, "the sample images' seed: the same every time, so they show the training")
        self.every = _spin(0, 100_000, 25, "steps between sample images (0: none)")
        self.dreambooth_widgets = self._dreambooth_fields()
        for label, widget in (("Base model", self.base), ("Method", self.method), ("Output name", self.name),
                              ("Steps", self.steps), ("Rank", self.rank), ("Learning rate", self.lr),
                              ("Batch", self.batch), ("Resolution", self.resolution), ("Sample prompt", self.prompt),
                              ("Sample seed", self.seed), ("Sample every", self.every),
                              *self.dreambooth_widgets.items()):
            form.addRow(label, widget)
        self.form = form
        self.settings_widgets = [self.base, self.method, self.name, self.steps, self.rank, self.lr, self.batch,
                                 self.resolution, self.prompt, self.seed, self.every, self.folder,
                                 *self.dreambooth_widgets.values()]
        return box

    def _dreambooth_fields(self) -> dict[str, QWidget]:
        """DreamBooth's own settings (shown with that method): the prompts and the prior preservation."""
        self.instance_prompt = QLineEdit("a sks shape")
        self.instance_prompt.setToolTip("Every picture trains with this prompt: a rare token ('sks') and the class")
        self.class_prompt = QLineEdit("a shape")
        self.class_prompt.setToolTip("The class without the token: the base draws it to keep the class as it was "
                                     "(empty: no prior preservation)")
        self.class_images = _spin(1, 10_000, 50, "class pictures the base draws once (kept for later runs)")
        self.prior_weight = QDoubleSpinBox()
        self.prior_weight.setRange(0.0, 10.0)
        self.prior_weight.setSingleStep(0.1)
        self.prior_weight.setValue(1.0)
        self.prior_weight.setToolTip("Weight of the class pictures' loss (0: no prior preservation)")
        return {"Instance prompt": self.instance_prompt, "Class prompt": self.class_prompt,
                "Class images": self.class_images, "Prior weight": self.prior_weight}

    def _progress_box(self) -> QGroupBox:
        box = QGroupBox("Training")
        grid = QGridLayout(box)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m steps")
        self.progress.setValue(0)
        self.status = QLabel("Not started.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.curve = LossCurve()
        self.sample = QLabel("samples\nappear here")
        self.sample.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.sample.setFixedSize(160, 160)
        self.sample.setStyleSheet("QLabel { background: #1e2024; color: #9aa0a8; }")
        self.sample_note = QLabel("")
        grid.addWidget(self.progress, 0, 0, 1, 2)
        grid.addWidget(self.status, 1, 0, 1, 2)
        grid.addWidget(self.curve, 2, 0)
        grid.addWidget(self.sample, 2, 1)
        grid.addWidget(self.sample_note, 3, 1)
        grid.setColumnStretch(0, 1)
        return box

    def _buttons(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(lambda: self.start(resume=False))
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the stopped run from its checkpoint (steps may be raised)")
        self.resume_button.clicked.connect(lambda: self.start(resume=True))
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the step under way; the checkpoint stays for Resume")
        self.cancel_button.clicked.connect(self.cancel)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        row.addStretch(1)
        for button in (self.start_button, self.resume_button, self.cancel_button, close):
            row.addWidget(button)
        return row

    # -- inputs -----------------------------------------------------------------------------------------
    def fill_bases(self) -> None:
        """The checkpoints the editor lists (bundled and the user's), nodeforge-shapes first when there."""
        current = self.base.currentData()
        self.base.blockSignals(True)
        self.base.clear()
        for name in self.paths.names(FileKind.CHECKPOINT):
            try:
                self.base.addItem(name, str(self.paths.resolve(FileKind.CHECKPOINT, name)))
            except Exception:  # noqa: BLE001 - listed but gone meanwhile: leave it out
                continue
        self.base.blockSignals(False)
        index = self.base.findData(current) if current else self.base.findText("nodeforge-shapes")
        self.base.setCurrentIndex(max(0, index))
        self._base_changed()

    def set_folder(self, folder: Path | str) -> None:
        self.folder.setText(str(folder))
        self.load_folder()

    def load_folder(self) -> None:
        folder = Path(self.folder.text().strip()).expanduser()
        count, missing = self.table.load(folder)
        if not folder.is_dir():
            self.folder_note.setText(f"No folder {folder}." if self.folder.text().strip() else "Pick a folder.")
        elif not count:
            self.folder_note.setText(f"No images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}.")
        else:
            self.folder_note.setText(f"{count} images" + (f", {missing} without a caption (they train with an "
                                                          "empty one)" if missing else ", all captioned"))
        if folder.is_dir() and self.name.text() == "my-style":
            self.name.setText(re.sub(r"[^\w.-]+", "-", folder.name).strip("-.") or "my-style")
        self._update_buttons()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Training images", self.folder.text())
        if folder:
            self.set_folder(folder)

    def _base_changed(self) -> None:
        base = self.base.currentData()
        if base:
            self.resolution.setValue(base_resolution(Path(base)))
        self._update_buttons()

    def _method_changed(self) -> None:
        key = self.method.currentData()
        self.lr.setValue(5e-3 if key == "embedding" else 1e-3)
        self.method.setToolTip(METHODS[key].tip)
        for widget in self.dreambooth_widgets.values():
            self.form.setRowVisible(widget, key == "dreambooth")
        self._update_buttons()

    def settings(self) -> TrainSettings:
        key = self.method.currentData()
        name = self.name.text().strip()
        folder = self.paths.user_folder / SUBFOLDERS[METHODS[key].kind] if self.paths.user_folder else Path(".")
        return TrainSettings(method=key, images=Path(self.folder.text().strip()).expanduser(),
                             base=Path(self.base.currentData() or ""), name=name,
                             out=folder / f"{name}.safetensors", work=self.work_root / f"{name}-{key}",
                             steps=self.steps.value(), rank=self.rank.value(), lr=self.lr.value(),
                             batch=self.batch.value(), resolution=self.resolution.value(),
                             sample_prompt=self._sample_prompt(key), sample_seed=self.seed.value(),
                             sample_every=self.every.value(), instance_prompt=self.instance_prompt.text().strip(),
                             class_prompt=self.class_prompt.text().strip(), class_images=self.class_images.value(),
                             prior_weight=self.prior_weight.value(), class_dir=self.work_root / f"{name}-class-images")

    def _sample_prompt(self, key: str) -> str:
        # The embedding's sample prompt names it as the editor's prompts do; the trainer takes "{}".
        text = self.prompt.text()
        return text.replace(f"embedding:{self.name.text().strip()}", "{}") if key == "embedding" else text

    def problem(self) -> str:
        """Why Start cannot run now ('' when it can)."""
        if not self.table.images:
            return "Pick a folder with images first."
        if not self.base.currentData():
            return "No base model: put a diffusers folder or checkpoint in the models folder."
        if not NAME.match(self.name.text().strip()):
            return "Give an output name of letters, digits, '-', '_' or '.'."
        if self.paths.user_folder is None:
            return "No user models folder to write the result to."
        return ""

    # -- running ----------------------------------------------------------------------------------------
    def start(self, resume: bool = False) -> TrainJob | None:
        if self.job is not None and self.job.running():
            return None
        problem = self.problem()
        if problem:
            self._say(problem)
            return None
        s = self.settings()
        if not resume and s.work.exists():
            shutil.rmtree(s.work, ignore_errors=True)    # Start is a fresh run; Resume keeps the checkpoint
        s.out.parent.mkdir(parents=True, exist_ok=True)
        self.result = None
        self.curve.clear(s.steps)
        self.progress.setRange(0, s.steps)
        self.progress.setValue(0)
        self.job = TrainJob(build_argv(s), self)
        self.job.progressed.connect(self._progressed)
        self.job.sampled.connect(self._sampled)
        self.job.said.connect(self._say)
        self.job.ended.connect(lambda state, message, s=s: self._ended(s, state, message))
        self.job.start()
        verb = "Resuming" if resume else "Starting"
        self._say(f"{verb}: {METHODS[s.method].label} on {len(self.table.images)} images, loading the base model…")
        self._update_buttons()
        return self.job

    def cancel(self) -> None:
        if self.job is not None and self.job.running():
            self.job.cancel()
            self._say("Stopping after the step under way; the checkpoint stays for Resume…")
            self.cancel_button.setEnabled(False)

    def _progressed(self, done: int, total: int, loss: float) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.curve.add(done, loss, total)
        self._say(f"Step {done} of {total}, loss {loss:.4f}")

    def _sampled(self, step: int, path: str) -> None:
        pixmap = QPixmap(path)
        if pixmap.isNull():
            return
        self.sample_path = path
        mode = Qt.TransformationMode.FastTransformation if pixmap.width() < 160 else \
            Qt.TransformationMode.SmoothTransformation
        self.sample.setPixmap(pixmap.scaled(160, 160, Qt.AspectRatioMode.KeepAspectRatio, mode))
        self.sample_note.setText(f"sample at step {step}, seed {self.seed.value()}")

    def _ended(self, s: TrainSettings, state: str, message: str) -> None:
        if state == "done" and s.out.is_file():
            self.result = s.out
            kind = METHODS[s.method].kind
            lists = "LoRA" if kind is FileKind.LORA else "embedding"
            use = f"embedding:{s.name}" if kind is FileKind.EMBEDDING else f"{s.out.name} in a LoRA node"
            self._say(f"Done: wrote {s.out}; it is in the {lists} lists now (use {use}).")
            if self.on_trained is not None:
                self.on_trained(kind)
        elif state == "stopped":
            self._say(f"{message}; the checkpoint is in {s.work}: Resume continues from it."
                      if has_checkpoint(s.work) else f"{message} before the first step; nothing to resume.")
        else:
            self._say(f"Training failed: {message}", error=True)
        self._update_buttons()

    def running(self) -> bool:
        return self.job is not None and self.job.running()

    def _update_buttons(self) -> None:
        running = self.running()
        for widget in self.settings_widgets:
            widget.setEnabled(not running and (widget is not self.rank
                                               or METHODS[self.method.currentData()].command != "train-embedding"))
        self.table.set_editable(not running)   # not disabled: its thumbnails would turn grey
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        name_ok = bool(NAME.match(self.name.text().strip()))
        self.resume_button.setEnabled(not running and name_ok and has_checkpoint(self.settings().work))

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("QLabel { color: #ff8080; }" if error else "")

    def closeEvent(self, event) -> None:  # noqa: N802
        if self.running():
            answer = QMessageBox.question(self, "Training is running",
                                          "Stop the training? Its checkpoint stays, so Resume continues later.")
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self.job.cancel()
        super().closeEvent(event)

    def discard(self) -> None:
        """The window closes: stop a run without asking (its checkpoint is written)."""
        if self.running():
            self.job.cancel()
            self.job.process.waitForFinished(KILL_WAIT_MS)


KILL_WAIT_MS = 30_000


def _spin(low: int, high: int, value: int, tip: str) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setValue(value)
    spin.setToolTip(tip)
    return spin
