"""The main window: composes the canvas, panels, actions (actions.py) and the open document
(files/document.py), and holds the editing commands that work on the selection and the run.

Each helper gets the parts it works on when it is made; what it needs from the window itself is a
small protocol the window provides (`DocumentHost`, `BatchHost`: `show_message`, `stop_runs`, ...),
so no helper reads the window's attributes."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPoint, QPointF, QSettings, Qt, QTimer
from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import QApplication, QDockWidget, QMainWindow, QMessageBox, QToolTip, QUndoView

from nodeforge.core.engine import Engine
from nodeforge.core.workflow import Workflow
from nodeforge.ui.actions import WindowActions, context_menu, shortcuts_html
from nodeforge.ui.graph.controller import GraphController
from nodeforge.ui.files.document import DocumentController
from nodeforge.ui.canvas.edges import EdgeItem, RerouteItem
from nodeforge.ui.canvas.group_item import GroupItem
from nodeforge.ui.canvas.editing import SelectionEdits
from nodeforge.ui.canvas.hint import CanvasHint
from nodeforge.ui.panels.image_panel import ImagePanel, ImageViewer
from nodeforge.ui.graph.model import GraphModel
from nodeforge.ui.canvas.node_item import NodeItem
from nodeforge.ui.panels.problems_panel import ProblemsPanel
from nodeforge.ui.panels.queue_panel import QueuePanel
from nodeforge.ui.run.run_presenter import RunPresenter
from nodeforge.ui.run.runner import RunController
from nodeforge.ui.canvas.scene import GraphScene
from nodeforge.ui.canvas.search import NodeSearchPopup
from nodeforge.ui.panels.status_bar import StatusBar
from nodeforge.ui.canvas.view import GraphView

AUTOSAVE_MS = 60_000
_windows: list["MainWindow"] = []


class MainWindow(QMainWindow):
    def __init__(self, engine: Engine, *, autosave_ms: int = AUTOSAVE_MS) -> None:
        super().__init__()
        self.engine = engine
        self.registry = engine.registry
        self.last_error: str | None = None
        self.confirm_close = True
        self._search_context: dict[str, Any] = {}
        self._search_pos = QPointF()
        self._advancing_seeds = False
        self._build_canvas()
        self._build_panels()
        self.document = DocumentController(self, self.engine, self.model, self.controller, self.scene, self.view,
                                           self.edits, autosave_ms)
        self.acts = WindowActions(self, self.document, self.edits, self.controller, self.scene, self.view,
                                  self.registry, [self.images, self.history, self.problems, self.queue])
        self._connect()
        self.runner.skip_unchanged_saves = self.acts.skip_saves.isChecked()
        self.stats_timer = QTimer(self)
        self.stats_timer.timeout.connect(self._tick_stats)
        self.stats_timer.start(2000)
        self.resize(1500, 920)
        self.document.update_title()
        self.status.update_stats()
        failures = list(getattr(self.registry, "failures", []))
        if failures:
            QTimer.singleShot(0, lambda: self.show_error(
                "Some node packs did not load",
                "These node packs failed to load; their nodes show as placeholders until fixed:\n\n"
                + "\n".join(str(f) for f in failures)))

    # -- construction ----------------------------------------------------------------------------------
    def _build_canvas(self) -> None:
        self.stack = QUndoStack(self)
        self.model = GraphModel(self.registry, self)
        self.controller = GraphController(self.model, self.stack)
        self.controller.refused = lambda message: self.show_error("Edit refused", message)
        self.scene = GraphScene(self.model, self.controller, self)
        self.scene.file_resolver = self._resolve_file
        self.view = GraphView(self.scene, self)
        self.edits = SelectionEdits(self.model, self.controller, self.scene, self)
        self.setCentralWidget(self.view)
        self.hint = CanvasHint(self.view)
        self.search = NodeSearchPopup(self.registry, self)
        self.runner = RunController(self.engine, self)

    def _build_panels(self) -> None:
        self.images = ImagePanel(self)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.images)
        self.history = QDockWidget("History", self)
        self.history.setObjectName("historyPanel")
        self.history.setWidget(QUndoView(self.stack))
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.history)
        self.history.hide()
        self.problems = ProblemsPanel(self)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.problems)
        self.problems.hide()
        self.queue = QueuePanel(self.runner, self)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.queue)
        self.queue.hide()
        self.batch_dialog = None      # BatchDialog, made on first use
        self.models_dialog = None     # ModelsDialog, made on first use
        self.train_dialog = None      # TrainDialog, made on first use
        self.status = StatusBar(self.engine, self)
        self.setStatusBar(self.status)
        self.presenter = RunPresenter(self.runner, self.model, self.scene, self.status, self.images, self)

    def _connect(self) -> None:
        self.stack.cleanChanged.connect(self._clean_changed)
        self.stack.indexChanged.connect(self._clean_changed)
        self.view.searchRequested.connect(self.open_search)
        self.view.filesDropped.connect(self.document.drop_files)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._context_menu)
        self.scene.wireDropped.connect(self.open_search)
        self.scene.renameRequested.connect(self.edits.rename_node)
        self.scene.groupRenameRequested.connect(self.edits.rename_group)
        self.search.chosen.connect(self._search_chosen)
        self.runner.runningChanged.connect(self.acts.cancel.setEnabled)
        self.runner.runningChanged.connect(self._running_changed)
        self.model.reset.connect(self.hint.hide)           # another graph
        self.images.seedCopied.connect(self._seed_copied)
        self.images.openWorkflow.connect(self._open_from_image)
        self.stack.indexChanged.connect(self.presenter.clear_errors)
        self.stack.indexChanged.connect(self._graph_edited)
        self.presenter.problemsChanged.connect(self._problems_changed)
        self.status.messageClicked.connect(self.show_problems)
        self.status.queueClicked.connect(self.show_queue)
        self.problems.nodeActivated.connect(self.centre_node)
        self.queue.imagesRequested.connect(self._show_job_images)
        self._auto_timer = QTimer(self)
        self._auto_timer.setSingleShot(True)
        self._auto_timer.setInterval(350)    # a slider drag is one run, not one per step
        self._auto_timer.timeout.connect(self._auto_run)
        self.scene.imageActivated.connect(self._show_images)
        self.scene.maskEditRequested.connect(self.edit_mask)
        self.scene.paramClamped.connect(self._param_clamped)

    # -- what tests, scripts and the app call on the window; the document does the work ----------------
    @property
    def path(self) -> Path | None:
        return self.document.path

    @property
    def autosaver(self):  # noqa: ANN201 - Autosaver
        return self.document.autosaver

    @property
    def batch(self):  # noqa: ANN201 - QSpinBox
        return self.acts.batch

    def set_document(self, workflow: Workflow, path: Path | None) -> None:
        self.document.set_document(workflow, path)

    def open_path(self, path: str | Path) -> bool:
        return self.document.open_path(path)

    def save(self) -> bool:
        return self.document.save()

    def save_to(self, path: Path) -> bool:
        return self.document.save_to(path)

    def autosave(self) -> bool:
        return self.document.autosave()

    def drop_file(self, path: str | Path, scene_pos: QPointF) -> bool:
        return self.document.drop_file(path, scene_pos)

    def _update_title(self) -> None:
        self.document.update_title()

    # -- small reactions (bound methods, not lambdas: Qt drops these when the window goes) ------------
    def _clean_changed(self, *_: Any) -> None:
        self.setWindowModified(self.document.is_modified())

    def _running_changed(self, running: bool) -> None:
        if running:
            self.hint.hide()     # it said how to run: done

    def _tick_stats(self) -> None:
        self.status.update_stats(self.runner.running)

    def _seed_copied(self, seed: str) -> None:
        self.statusBar().showMessage(f"Seed {seed} copied", 3000)

    def _auto_run(self) -> None:
        self.run(count=1, replace_last=True)

    def auto_toggled(self, on: bool) -> None:
        self.settings().setValue("autoQueue", bool(on))
        if on and self.model.nodes:
            self._auto_timer.start()

    def offload_chosen(self, mode: str) -> None:
        """Run > Offload Models: where models wait between uses. Loaded models are dropped from the
        cache, so the next run loads them where the new setting keeps them."""
        self.settings().setValue("offload", mode)
        if self.engine.settings.get("offload", "none") != mode:
            self.engine.settings["offload"] = mode
            self.engine.cache.clear()
        self.statusBar().showMessage(f"Offload: {mode} (models load again on the next run)", 5000)

    def skip_saves_toggled(self, on: bool) -> None:
        self.settings().setValue("skipUnchangedSaves", bool(on))
        self.runner.skip_unchanged_saves = bool(on)

    def _graph_edited(self, *_: Any) -> None:
        if self._advancing_seeds:
            return
        if self.acts.auto.isChecked() and self.model.nodes:
            self._auto_timer.start()
        elif self.runner.running:
            self.statusBar().showMessage("Changes apply to the next run (Ctrl+Enter queues it)", 4000)

    def _open_from_image(self, path: str) -> None:
        if self.document.maybe_save():
            self.open_path(path)

    def _show_images(self, nid: str) -> None:
        """Double-click on a node's picture: see it at full size."""
        item = self.scene.nodes.get(nid)
        if item is not None and item.images:
            viewer = ImageViewer(item.images[-1], self.model.title(nid), self)
            viewer.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            viewer.show()

    def edit_mask(self, nid: str, param: str):  # noqa: ANN201 - MaskEditorDialog or None
        """Edit Mask on an image node: paint on its picture; OK stores the mask as one undoable edit."""
        from nodeforge.ui.dialogs.mask_editor import MaskEditorDialog, node_picture

        node = self.model.nodes[nid]
        picture, reason = node_picture(node.params, self.registry.get(node.type), self._resolve_file)
        if picture.isNull():
            self.show_error("Edit mask", f"{self.model.title(nid)}: {reason}; the mask is painted on the picture.")
            return None
        dialog = MaskEditorDialog(picture, str(node.params.get(param, "")), self.model.title(nid), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self.controller.set_param(nid, param, dialog.value()))
        dialog.open()
        return dialog

    def _param_clamped(self, nid: str, name: str, text: str) -> None:
        """A typed value outside the param's range was clamped: say so at the field and below."""
        message = f"{self.model.title(nid)}: {text}"
        self.statusBar().showMessage(message, 8000)
        item = self.scene.nodes.get(nid)
        editor = item.panel.editors.get(name) if item is not None and item.panel is not None else None
        if editor is None or item.proxy is None:
            return
        below = editor.mapTo(item.panel, QPoint(0, editor.height()))
        at = self.view.mapFromScene(item.proxy.mapToScene(QPointF(below)))
        QToolTip.showText(self.view.viewport().mapToGlobal(at), text, self.view.viewport())

    def _resolve_file(self, kind: Any, name: str) -> Path:
        """As the engine resolves it: relative paths from the workflow file's folder first."""
        source = self.model.workflow.source
        return self.engine.model_paths.resolve(kind, name, source.parent if source is not None else None)

    def _problems_changed(self, problems: list) -> None:
        titles = {nid: self.model.title(nid) for nid in self.model.nodes}
        self.problems.set_problems(problems, titles)

    def show_problems(self) -> None:
        if self.problems.count():
            self.problems.show()
            self.problems.raise_()

    def show_queue(self) -> None:
        if self.queue.isHidden() and not self.queue.isFloating():
            self.queue.show()   # room for a dozen jobs beside the Images panel
            self.resizeDocks([self.queue], [max(320, self.height() // 2)], Qt.Orientation.Vertical)
        self.queue.show()
        self.queue.raise_()

    def _show_job_images(self, job) -> None:  # noqa: ANN001 - QueueJob
        """Double-click on a done job in the Queue panel: its images first in the Images panel."""
        self.images.add_images(list(job.images))
        self.images.show()
        self.images.raise_()

    def open_batch(self, target: str | None = None, value: str = ""):  # noqa: ANN201 - BatchDialog
        """Open (or raise) the Batch dialog, with an axis for `target` ("ID.param") when given."""
        from nodeforge.ui.dialogs.batch_dialog import BatchDialog

        if self.batch_dialog is None:
            self.batch_dialog = BatchDialog(self, self.engine, self.model, self.runner, self.images)
        if target:
            self.batch_dialog.add_axis(target, value)
        self.batch_dialog.show()
        self.batch_dialog.raise_()
        self.batch_dialog.activateWindow()
        return self.batch_dialog

    def open_train(self, folder: str | Path | None = None):  # noqa: ANN201 - TrainDialog
        """Run > Train LoRA…: open (or raise) the Train dialog; a finished run rescans the model lists."""
        from nodeforge.ui.dialogs.train_dialog import TrainDialog

        if self.train_dialog is None:
            self.train_dialog = TrainDialog(self.engine.model_paths, lambda kind: self.rescan_models(), self)
        elif not self.train_dialog.running():
            self.train_dialog.fill_bases()
        if folder is not None:
            self.train_dialog.set_folder(folder)
        self.train_dialog.show()
        self.train_dialog.raise_()
        self.train_dialog.activateWindow()
        return self.train_dialog

    # -- the Models menu ------------------------------------------------------------------------------
    def show_models(self):  # noqa: ANN201 - ModelsDialog
        """Models > Installed Models: what is installed, by kind (rescanned each time it opens)."""
        from nodeforge.ui.dialogs.models_dialog import ModelsDialog

        if self.models_dialog is None:
            self.models_dialog = ModelsDialog(self.engine.model_paths, self.rescan_models, self)
        else:
            self.models_dialog.fill()
        self.models_dialog.show()
        self.models_dialog.raise_()
        return self.models_dialog

    def open_models_folder(self) -> None:
        from nodeforge.ui.dialogs.models_dialog import open_models_folder

        folder = open_models_folder(self.engine.model_paths)
        if folder is not None:
            self.show_message(f"Models folder: {folder}", 8000)

    def rescan_models(self) -> None:
        """Models > Rescan: every model list on the canvas (and the Installed models dialog) reads the folders again."""
        count = self.scene.refresh_file_choices()
        if self.models_dialog is not None and self.models_dialog.isVisible():
            self.models_dialog.fill()
        self.show_message(f"Rescanned the model folders ({count} model lists refreshed)", 8000)

    def add_to_grid(self, nid: str, param: str):  # noqa: ANN201 - BatchDialog
        """Right-click a param, "Add to Batch Grid": the dialog with ID.param and its current value."""
        from nodeforge.ui.dialogs.batch_dialog import value_text

        node = self.model.nodes[nid]
        spec = self.registry.get(node.type)
        declared = spec.param(param) if spec is not None else None
        value = node.params.get(param, declared.default if declared is not None else None)
        return self.open_batch(f"{nid}.{param}", value_text(value))

    def centre_node(self, nid: str) -> None:
        item = self.scene.nodes.get(nid)
        if item is None:
            return
        self.scene.select_nodes([nid])
        self.view.centerOn(item.sceneBoundingRect().center())

    # -- messages and dialogs -----------------------------------------------------------------------
    def show_error(self, title: str, text: str) -> None:
        self.last_error = text
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()   # window-modal, never blocks the event loop
        self.statusBar().showMessage(text.splitlines()[0], 10000)

    def show_message(self, text: str, msecs: int = 0) -> None:
        """One line in the status bar, for `msecs` (0: until the next one)."""
        self.statusBar().showMessage(text, msecs)

    def stop_runs(self) -> None:
        """The graph on the canvas goes away: cancel its runs and clear the errors they showed."""
        self.runner.cancel()
        self.presenter.clear_errors()

    def show_hint(self, html: str) -> None:
        """One line over the canvas until the user runs or opens another graph."""
        self.hint.show_text(html)

    def show_shortcuts(self) -> None:
        box = QMessageBox(QMessageBox.Icon.NoIcon, "Canvas and shortcuts", shortcuts_html(),
                          QMessageBox.StandardButton.Close, self)
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setStyleSheet("QLabel { min-width: 700px; }")   # one line per shortcut, not wrapped ones
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def show_about(self) -> None:
        from nodeforge import __version__

        QMessageBox.about(self, "About NodeForge",
                          f"<b>NodeForge {__version__}</b><br>A native node-graph studio for Stable Diffusion."
                          f"<br><br>Node packs: {', '.join(self.registry.packs) or 'none'}"
                          f"<br>Node types: {len(self.registry)}")

    # -- window state -------------------------------------------------------------------------------
    def settings(self) -> QSettings:
        """The editor's settings (recent files, window state, remembered model choices). With
        NODEFORGE_HOME set (a portable install, the tests) they live there, not in the user's
        platform settings."""
        home = os.environ.get("NODEFORGE_HOME")
        if home:
            return QSettings(str(Path(home) / "settings.ini"), QSettings.Format.IniFormat)
        return QSettings("NodeForge", "NodeForge")

    def new_window(self) -> "MainWindow":
        win = MainWindow(self.engine)
        _windows.append(win)
        win.show()
        return win

    def restore_layout(self) -> None:
        """The window's size and panels as the user left them."""
        settings = self.settings()
        geometry = settings.value("windowGeometry")
        state = settings.value("windowState")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    def save_layout(self) -> None:
        settings = self.settings()
        settings.setValue("windowGeometry", self.saveGeometry())
        settings.setValue("windowState", self.saveState())
        settings.setValue("lastSession", str(self.path) if self.path else "")

    def closeEvent(self, event) -> None:  # noqa: N802
        if not self.document.maybe_save():
            event.ignore()
            return
        self.save_layout()
        self.runner.cancel()
        self.runner.wait(5)
        if self.batch_dialog is not None:
            self.batch_dialog.discard()
        if self.train_dialog is not None:
            self.train_dialog.discard()
        self.document.autosave_timer.stop()
        self.autosaver.discard()
        if self in _windows:
            _windows.remove(self)
        super().closeEvent(event)

    # -- editing --------------------------------------------------------------------------------------
    def open_search(self, scene_pos: QPointF, context: dict[str, Any] | None = None) -> None:
        self._search_pos = QPointF(scene_pos)
        self._search_context = context or {}
        want = None
        if "connect_from" in self._search_context:
            want = ("input", self._search_context["type"])
        elif "connect_to" in self._search_context:
            want = ("output", self._search_context["type"])
        global_pos = self.view.viewport().mapToGlobal(self.view.mapFromScene(scene_pos))
        self.search.open_at(global_pos, want)

    def _search_chosen(self, node_type: str) -> None:
        ctx = self._search_context
        self._search_context = {}
        p = self._search_pos
        if "connect_to" in ctx:
            p = QPointF(p.x() - 280, p.y() - 20)   # a node feeding an input sits to its left
        spec = self.registry.get(node_type)
        self.stack.beginMacro(f"Add {spec.title if spec is not None else node_type}")
        nid = self.controller.add_node(node_type, (p.x(), p.y()), connect_from=ctx.get("connect_from"),
                                       connect_to=ctx.get("connect_to"), via_reroute=ctx.get("via_reroute"))
        self._move_into_view(nid)
        self.stack.endMacro()
        self.scene.select_nodes([nid])

    def _move_into_view(self, nid: str) -> None:
        """A node added near the canvas's edge (Tab or a double-click by the border) is moved just
        inside it, so it is not half off screen; one undo step with the adding."""
        item = self.scene.nodes.get(nid)
        if item is None or not self.view.isVisible():    # no view on screen (a script, a test): as asked
            return
        margin = 16 / self.view.zoom()
        visible = self.view.mapToScene(self.view.viewport().rect()).boundingRect().adjusted(
            margin, margin, -margin, -margin)
        rect = item.sceneBoundingRect()
        dx = min(0.0, visible.right() - rect.right()) or max(0.0, visible.left() - rect.left())
        dy = min(0.0, visible.bottom() - rect.bottom()) or max(0.0, visible.top() - rect.top())
        if rect.width() > visible.width():
            dx = visible.left() - rect.left()
        if rect.height() > visible.height():
            dy = visible.top() - rect.top()       # a node taller than the view: its title in view
        if dx or dy:
            old = self.model.position(nid)
            self.controller.move({nid: (old, (old[0] + dx, old[1] + dy))})

    def delete_selection(self) -> None:
        focus = QApplication.focusWidget()
        if focus is not None and not focus.isVisible():
            focus = None                     # a hidden popup that kept the focus: no panel is being typed in
        if focus is not None and self.queue.isAncestorOf(focus):
            self.queue.cancel_selected()     # Delete in the Queue panel is about its jobs, not the nodes
            return
        if focus is not None and focus is not self.view and not self.view.isAncestorOf(focus):
            return                           # typing in another panel or the toolbar: not the canvas
        if self.view.hasFocus() is False and self.scene.focusItem() is not None:
            return
        self.edits.delete()

    def copy(self) -> bool:
        return self.document.copy()

    def cut(self) -> None:
        self.document.cut()

    def paste(self) -> list[str]:
        return self.document.paste()

    def _context_menu(self, pos) -> None:
        scene_pos = self.view.mapToScene(pos)
        item = next((i for i in self.scene.items(scene_pos)
                     if isinstance(i, (NodeItem, EdgeItem, RerouteItem, GroupItem))), None)
        context_menu(self, self.acts, item, scene_pos).popup(self.view.viewport().mapToGlobal(pos))

    # -- running ------------------------------------------------------------------------------------------
    def run(self, *, count: int | None = None, replace_last: bool = False) -> None:
        """Queue `count` runs (the batch count box by default), each on a copy of the graph."""
        self.presenter.clear_errors()
        for _ in range(count or self.batch.value()):
            self.runner.run(self.model.snapshot(), replace_last=replace_last)
            # Seeds set to increment or randomize change once the run has its copy, as in ComfyUI;
            # that change must not start another run by itself.
            self._advancing_seeds = True
            try:
                self.controller.advance_seeds()
            finally:
                self._advancing_seeds = False

    def cancel(self) -> None:
        if self.search.isVisible():
            self.search.hide()
            return
        if self.scene.wires.drag is not None:
            self.scene.wires.cancel()
            return
        if self.runner.running:
            self.runner.cancel()
            self.statusBar().showMessage("Cancelling…")


def register_window(win: MainWindow) -> None:
    _windows.append(win)
