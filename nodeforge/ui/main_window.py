"""The main window: canvas, toolbar, menus, image panel and status bar, and the file commands."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication, QKeySequence, QUndoStack
from PySide6.QtWidgets import (
    QDockWidget, QFileDialog, QInputDialog, QMainWindow, QMenu, QMessageBox, QSpinBox, QToolButton, QUndoView,
)

from nodeforge.core.engine import Engine
from nodeforge.core.errors import WorkflowError
from nodeforge.core.types import FileKind
from nodeforge.core.workflow import Workflow, load_workflow, save_workflow
from nodeforge.ui import theme
from nodeforge.ui.autosave import Autosaver
from nodeforge.ui.controller import CLIPBOARD_MIME, GraphController, looks_like_workflow
from nodeforge.ui.edges import EdgeItem, RerouteItem
from nodeforge.ui.group_item import GroupItem
from nodeforge.ui.image_panel import ImagePanel, ImageViewer
from nodeforge.ui.layout import arrange, overlapping
from nodeforge.ui.model import GraphModel
from nodeforge.ui.node_item import NodeItem
from nodeforge.ui.run_presenter import RunPresenter
from nodeforge.ui.runner import RunController
from nodeforge.ui.scene import GraphScene
from nodeforge.ui.search import NodeSearchPopup
from nodeforge.ui.status_bar import StatusBar
from nodeforge.ui.view import GraphView

AUTOSAVE_MS = 60_000
MAX_RECENT = 10
_windows: list["MainWindow"] = []


class MainWindow(QMainWindow):
    def __init__(self, engine: Engine, *, autosave_ms: int = AUTOSAVE_MS) -> None:
        super().__init__()
        self.engine = engine
        self.registry = engine.registry
        self.stack = QUndoStack(self)
        self.model = GraphModel(self.registry, self)
        self.controller = GraphController(self.model, self.stack)
        self.scene = GraphScene(self.model, self.controller, self)
        self.scene.file_resolver = self._resolve_file
        self.view = GraphView(self.scene, self)
        self.setCentralWidget(self.view)
        self.search = NodeSearchPopup(self.registry, self)
        self.runner = RunController(engine, self)
        self.images = ImagePanel(self)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.images)
        self.history = QDockWidget("History", self)
        self.history.setObjectName("historyPanel")
        self.history.setWidget(QUndoView(self.stack))
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.history)
        self.history.hide()
        self.path: Path | None = None
        self.last_error: str | None = None
        self.confirm_close = True
        self._search_context: dict[str, Any] = {}
        self._search_pos = QPointF()
        self.autosaver = Autosaver()
        self.status = StatusBar(engine, self)
        self.setStatusBar(self.status)
        self.presenter = RunPresenter(self.runner, self.model, self.scene, self.status, self.images, self)
        self._build_actions()
        self._connect()
        self.autosave_timer = QTimer(self)
        self.autosave_timer.timeout.connect(self.autosave)
        self.autosave_timer.start(autosave_ms)
        self.stats_timer = QTimer(self)
        self.stats_timer.timeout.connect(self._tick_stats)
        self.stats_timer.start(2000)
        self.resize(1500, 920)
        self._update_title()
        self.status.update_stats()
        failures = list(getattr(self.registry, "failures", []))
        if failures:
            QTimer.singleShot(0, lambda: self.show_error(
                "Some node packs did not load",
                "These node packs failed to load; their nodes show as placeholders until fixed:\n\n"
                + "\n".join(str(f) for f in failures)))

    # -- construction ----------------------------------------------------------------------------------
    def _action(self, text: str, slot, shortcut: Any = None, icon: str | None = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            if isinstance(shortcut, (list, tuple)):
                action.setShortcuts([QKeySequence(s) for s in shortcut])
            else:
                action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if icon:
            action.setIcon(theme.icon(icon))
        if tip:
            keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            action.setToolTip(f"{tip} ({keys})" if keys and keys not in tip else tip)
            action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        a = self._action
        S = QKeySequence.StandardKey
        self.act_new = a("&New", self.new_document, S.New, "new", "Start an empty graph")
        self.act_new_window = a("New &Window", self.new_window, "Ctrl+Shift+N")
        self.act_open = a("&Open…", self.open_dialog, S.Open, "open", "Open a workflow (.json) or a NodeForge PNG")
        self.act_save = a("&Save", self.save, S.Save, "save", "Save the workflow")
        self.act_save_as = a("Save &As…", self.save_as, S.SaveAs)
        self.act_quit = a("&Quit", self.close, S.Quit)
        self.act_undo = self.stack.createUndoAction(self, "&Undo")
        self.act_undo.setShortcuts(QKeySequence.keyBindings(S.Undo))
        self.act_undo.setIcon(theme.icon("undo"))
        self.act_redo = self.stack.createRedoAction(self, "&Redo")
        self.act_redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.act_redo.setIcon(theme.icon("redo"))
        self.addAction(self.act_undo)
        self.addAction(self.act_redo)
        self.act_cut = a("Cu&t", self.cut, S.Cut)
        self.act_copy = a("&Copy", self.copy, S.Copy)
        self.act_paste = a("&Paste", self.paste, S.Paste)
        self.act_duplicate = a("&Duplicate", self.duplicate, "Ctrl+D")
        self.act_delete = a("De&lete", self.delete_selection, [QKeySequence.StandardKey.Delete, "Backspace"])
        self.act_select_all = a("Select &All", self.select_all, S.SelectAll)
        self.act_add = a("&Add Node…", lambda: self.open_search(self.view.cursor_scene_pos()), None, "add",
                         "Add a node (Tab or double-click on the canvas)")
        self.act_rename = a("&Rename…", self.rename_selected, "F2")
        self.act_collapse = a("Co&llapse", lambda: self.controller.toggle_flag(self.scene.selected_node_ids(),
                                                                              "collapsed"), "Alt+C")
        self.act_bypass = a("&Bypass", lambda: self.controller.toggle_flag(self.scene.selected_node_ids(), "bypassed"),
                            "Ctrl+B", None, "Bypass: the node passes its input through")
        self.act_mute = a("&Mute", lambda: self.controller.toggle_flag(self.scene.selected_node_ids(), "muted"),
                          "Ctrl+M", None, "Mute: the node and what needs it do not run")
        self.act_group = a("&Group Selection", self.group_selection, "Ctrl+G")
        self.act_arrange = a("A&rrange Graph", self.arrange, "Ctrl+Shift+L", None,
                             "Lay the nodes (or the selection) out in columns along the wires")
        self.act_fit = a("&Fit View", self.view.fit_selection, "F", "fit", "Fit the graph (or the selection) in view")
        self.act_run = a("&Run", lambda: self.run(), ["Ctrl+Return", "Ctrl+Enter"], "run", "Run the graph (Ctrl+Enter)")
        self.act_cancel = a("&Cancel", self.cancel, "Esc", "cancel", "Cancel the run (Esc)")
        self.act_cancel.setEnabled(False)
        self.act_auto = a("&Auto-Queue on Change", self._auto_toggled, None, None,
                          "Run again after every change (a change during a run queues the next one)")
        self.act_auto.setCheckable(True)
        self.act_auto.setChecked(self.settings().value("autoQueue", False, type=bool))
        aligns = {}
        for mode, label in (("left", "Align &Left"), ("right", "Align &Right"), ("top", "Align &Top"),
                            ("bottom", "Align &Bottom"), ("hdistribute", "Distribute &Horizontally"),
                            ("vdistribute", "Distribute &Vertically")):
            aligns[mode] = a(label, lambda _=False, m=mode: self.align(m))

        bar = self.menuBar()
        m = bar.addMenu("&File")
        m.addActions([self.act_new, self.act_new_window, self.act_open])
        self.recent_menu = m.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self.examples_menu = m.addMenu("&Examples")
        self.examples_menu.aboutToShow.connect(self._fill_examples)
        m.addSeparator()
        m.addActions([self.act_save, self.act_save_as])
        m.addSeparator()
        m.addAction("Open &Output Folder", self.open_output_folder)
        m.addSeparator()
        m.addAction(self.act_quit)
        m = bar.addMenu("&Edit")
        m.addActions([self.act_undo, self.act_redo])
        m.addSeparator()
        m.addActions([self.act_cut, self.act_copy, self.act_paste, self.act_duplicate, self.act_delete])
        m.addSeparator()
        m.addAction(self.act_select_all)
        m = bar.addMenu("&Node")
        m.addActions([self.act_add, self.act_rename, self.act_collapse, self.act_bypass, self.act_mute, self.act_group,
                      self.act_arrange])
        align = m.addMenu("A&lign")
        align.addActions(list(aligns.values()))
        m = bar.addMenu("&View")
        m.addAction(self.act_fit)
        m.addAction(self.images.toggleViewAction())
        m.addAction(self.history.toggleViewAction())
        m = bar.addMenu("&Run")
        m.addActions([self.act_run, self.act_cancel])
        m.addSeparator()
        m.addAction(self.act_auto)
        m = bar.addMenu("&Help")
        m.addAction("&Canvas and Shortcuts", self.show_shortcuts)
        m.addAction("&About NodeForge", self.show_about)

        tools = self.addToolBar("Main")
        tools.setObjectName("mainToolbar")
        tools.setMovable(False)
        tools.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        tools.addActions([self.act_new, self.act_open, self.act_save])
        tools.addSeparator()
        tools.addActions([self.act_undo, self.act_redo])
        tools.addSeparator()
        tools.addActions([self.act_add, self.act_fit])
        tools.addSeparator()
        tools.addAction(self.act_run)
        self.batch = QSpinBox()
        self.batch.setRange(1, 100)
        self.batch.setPrefix("× ")
        self.batch.setToolTip("Batch count: how many runs one Run queues (seeds set to increment or "
                              "randomize change between them)")
        self.batch.setKeyboardTracking(False)
        self.batch.setFixedWidth(64)
        tools.addWidget(self.batch)
        tools.addAction(self.act_cancel)
        for action, name in ((self.act_run, "runButton"), (self.act_cancel, "cancelButton")):
            button = tools.widgetForAction(action)
            if isinstance(button, QToolButton):
                button.setObjectName(name)
                button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)

    def _connect(self) -> None:
        self.stack.cleanChanged.connect(self._clean_changed)
        self.view.searchRequested.connect(self.open_search)
        self.view.filesDropped.connect(self.drop_files)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._context_menu)
        self.scene.wireDropped.connect(self._wire_dropped)
        self.scene.renameRequested.connect(self.rename_node)
        self.scene.groupRenameRequested.connect(self.rename_group)
        self.search.chosen.connect(self._search_chosen)
        self.runner.runningChanged.connect(self.act_cancel.setEnabled)
        self.images.seedCopied.connect(self._seed_copied)
        self.images.openWorkflow.connect(self._open_from_image)
        self.stack.indexChanged.connect(self.presenter.clear_errors)
        self.stack.indexChanged.connect(self._graph_edited)
        self._auto_timer = QTimer(self)
        self._auto_timer.setSingleShot(True)
        self._auto_timer.setInterval(350)    # a slider drag is one run, not one per step
        self._auto_timer.timeout.connect(self._auto_run)
        self.scene.imageActivated.connect(self._show_images)

    def _auto_toggled(self, on: bool) -> None:
        self.settings().setValue("autoQueue", bool(on))
        if on and self.model.nodes:
            self._auto_timer.start()

    def _graph_edited(self, *_: Any) -> None:
        if getattr(self, "_advancing_seeds", False):
            return
        if self.act_auto.isChecked() and self.model.nodes:
            self._auto_timer.start()
        elif self.runner.running:
            self.statusBar().showMessage("Changes apply to the next run (Ctrl+Enter queues it)", 4000)

    def _open_from_image(self, path: str) -> None:
        if self._maybe_save():
            self.open_path(path)

    def _show_images(self, nid: str) -> None:
        """Double-click on a node's picture: see it at full size."""
        item = self.scene.nodes.get(nid)
        if item is not None and item.images:
            viewer = ImageViewer(item.images[-1], self.model.title(nid), self)
            viewer.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            viewer.show()

    def _clean_changed(self, clean: bool) -> None:
        self.setWindowModified(not clean)

    def _resolve_file(self, kind: Any, name: str) -> Path:
        """As the engine resolves it: relative paths from the workflow file's folder first."""
        source = self.model.workflow.source
        return self.engine.model_paths.resolve(kind, name, source.parent if source is not None else None)

    def _tick_stats(self) -> None:
        self.status.update_stats(self.runner.running)

    def _seed_copied(self, seed: str) -> None:
        self.statusBar().showMessage(f"Seed {seed} copied", 3000)

    # -- title and state ------------------------------------------------------------------------------
    def _update_title(self) -> None:
        name = self.path.name if self.path else "Untitled"
        self.setWindowTitle(f"{name}[*] — NodeForge")
        self.setWindowModified(not self.stack.isClean())

    # -- documents ------------------------------------------------------------------------------------------
    def set_document(self, workflow: Workflow, path: Path | None) -> None:
        self.runner.cancel()
        self.model.set_workflow(workflow)
        self.stack.clear()
        self.stack.setClean()
        self.path = path
        self._update_title()
        vp = workflow.ui.get("viewport") if isinstance(workflow.ui, dict) else None
        self._report_unknown_types()
        if self._nodes_overlap():
            # Files written by hand or by scripts often stack nodes; untangle them as an undoable step.
            self.arrange()
            self.statusBar().showMessage("The nodes overlapped, so they were arranged (Ctrl+Z puts them back)", 10000)
            vp = None
        QTimer.singleShot(0, lambda: self._restore_viewport(vp))

    def _restore_viewport(self, vp: Any) -> None:
        try:
            center = vp["center"]
            zoom = float(vp["zoom"])
            self.view.set_zoom(zoom)
            self.view.centerOn(float(center[0]), float(center[1]))
        except (TypeError, KeyError, ValueError, IndexError):
            self.view.fit()

    def _report_unknown_types(self) -> None:
        unknown = sorted({n.type for n in self.model.nodes.values() if self.registry.get(n.type) is None})
        if unknown:
            self.statusBar().showMessage(f"Unknown node types kept as placeholders: {', '.join(unknown)}", 15000)

    def new_document(self) -> None:
        if not self._maybe_save():
            return
        self.set_document(Workflow(), None)

    def new_window(self) -> "MainWindow":
        win = MainWindow(self.engine)
        _windows.append(win)
        win.show()
        return win

    def open_dialog(self) -> None:
        if not self._maybe_save():
            return
        start = str(self.path.parent) if self.path else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open workflow", start,
                                              "Workflows (*.json *.png);;All files (*)")
        if path:
            self.open_path(path)

    def open_path(self, path: str | Path) -> bool:
        """Open a workflow file; on failure, say which node and field, and keep the current graph."""
        path = Path(path)
        try:
            workflow = load_workflow(path)
        except WorkflowError as exc:
            self.show_error("Cannot open workflow", _explain(exc))
            return False
        except Exception as exc:  # never crash on a bad file
            self.show_error("Cannot open workflow", f"{path}: {type(exc).__name__}: {exc}")
            return False
        self.set_document(workflow, path if path.suffix.lower() == ".json" else None)
        self._add_recent(path)
        return True

    def save(self) -> bool:
        if self.path is None:
            return self.save_as()
        return self.save_to(self.path)

    def save_as(self) -> bool:
        path, _ = QFileDialog.getSaveFileName(self, "Save workflow", str(self.path or "workflow.json"),
                                              "Workflows (*.json)")
        if not path:
            return False
        if not path.lower().endswith(".json"):
            path += ".json"
        return self.save_to(Path(path))

    def save_to(self, path: Path) -> bool:
        c = self.view.center()
        self.model.set_viewport((c.x(), c.y()), self.view.zoom())
        try:
            save_workflow(self.model.snapshot(), path)
        except OSError as exc:
            self.show_error("Cannot save", f"{path}: {exc.strerror or exc}")
            return False
        self.path = Path(path)
        self.model.workflow.source = self.path
        self.stack.setClean()
        self._update_title()
        self._add_recent(self.path)
        self.statusBar().showMessage(f"Saved {path}", 4000)
        return True

    def _maybe_save(self) -> bool:
        if self.stack.isClean() or not self.confirm_close:
            return True
        answer = QMessageBox.question(self, "Unsaved changes", "Save the changes to this graph first?",
                                      QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                                      | QMessageBox.StandardButton.Cancel)
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        return answer == QMessageBox.StandardButton.Discard

    def open_output_folder(self) -> None:
        folder = self.engine.output_dir.resolve()
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def show_error(self, title: str, text: str) -> None:
        self.last_error = text
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()   # window-modal, never blocks the event loop
        self.statusBar().showMessage(text.splitlines()[0], 10000)

    def show_shortcuts(self) -> None:
        box = QMessageBox(QMessageBox.Icon.NoIcon, "Canvas and shortcuts", SHORTCUTS_HTML,
                          QMessageBox.StandardButton.Close, self)
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def show_about(self) -> None:
        from nodeforge import __version__

        QMessageBox.about(self, "About NodeForge",
                          f"<b>NodeForge {__version__}</b><br>A native node-graph studio for Stable Diffusion."
                          f"<br><br>Node packs: {', '.join(self.registry.packs) or 'none'}"
                          f"<br>Node types: {len(self.registry)}")

    # -- recent files ---------------------------------------------------------------------------------
    def settings(self) -> QSettings:
        return QSettings("NodeForge", "NodeForge")

    def recent_files(self) -> list[str]:
        value = self.settings().value("recentFiles", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _add_recent(self, path: Path) -> None:
        path_s = str(Path(path).resolve())
        recent = [p for p in self.recent_files() if p != path_s]
        self.settings().setValue("recentFiles", [path_s] + recent[:MAX_RECENT - 1])

    def example_files(self) -> list[Path]:
        from nodeforge.paths import builtin_dir

        folder = builtin_dir("workflows")
        return sorted(folder.glob("*.json")) if folder.is_dir() else []

    def _fill_examples(self) -> None:
        self.examples_menu.clear()
        examples = self.example_files()
        if not examples:
            self.examples_menu.addAction("(none installed)").setEnabled(False)
        for path in examples:
            self.examples_menu.addAction(path.stem, lambda p=path: self.open_example(p))

    def open_example(self, path: Path) -> bool:
        """An example opens as a new, unsaved graph, so Save does not overwrite the bundled file."""
        if not self._maybe_save():
            return False
        if not self.open_path(path):
            return False
        # Save asks where; `source` stays, so paths relative to the example's folder still resolve.
        self.path = None
        self._update_title()
        return True

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_files()
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)
        for p in recent:
            self.recent_menu.addAction(p, lambda p=p: self._maybe_save() and self.open_path(p))

    # -- autosave -------------------------------------------------------------------------------------
    def autosave(self) -> bool:
        if self.stack.isClean() and not self.model.nodes:
            return False
        return self.autosaver.save(self.model.snapshot())

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

    def closeEvent(self, event) -> None:  # noqa: N802
        if not self._maybe_save():
            event.ignore()
            return
        self.save_layout()
        self.runner.cancel()
        self.runner.wait(5)
        self.autosave_timer.stop()
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

    def _wire_dropped(self, scene_pos: QPointF, context: dict[str, Any]) -> None:
        self.open_search(scene_pos, context)

    def _search_chosen(self, node_type: str) -> None:
        ctx = self._search_context
        self._search_context = {}
        p = self._search_pos
        if "connect_to" in ctx:
            p = QPointF(p.x() - 280, p.y() - 20)   # a node feeding an input sits to its left
        nid = self.controller.add_node(node_type, (p.x(), p.y()), connect_from=ctx.get("connect_from"),
                                       connect_to=ctx.get("connect_to"), via_reroute=ctx.get("via_reroute"))
        self.scene.select_nodes([nid])

    def delete_selection(self) -> None:
        if self.view.hasFocus() is False and self.scene.focusItem() is not None:
            return
        nodes = self.scene.selected_node_ids()
        edges = self.scene.selected_edges()
        reroutes = self.scene.selected_reroutes()
        groups = self.scene.selected_group_indexes()
        if not (nodes or edges or reroutes or groups):
            return
        self.stack.beginMacro("Delete")
        for dst, name in edges:
            if dst not in nodes:
                self.controller.disconnect(dst, name)
        if reroutes:
            self.controller.remove_reroutes(reroutes)
        self.controller.remove_nodes(nodes)
        for index in sorted(groups, reverse=True):
            self.controller.remove_group(index)
        self.stack.endMacro()

    def select_all(self) -> None:
        if self.scene.focusItem() is not None:
            return
        for item in self.scene.nodes.values():
            item.setSelected(True)

    def copy(self) -> bool:
        if self.scene.focusItem() is not None:
            return False   # a text field inside a node has the keyboard: let it copy text
        ids = self.scene.selected_node_ids()
        if not ids:
            return False
        text = self.controller.copy_text(ids)
        mime = QMimeData()
        mime.setText(text)
        mime.setData(CLIPBOARD_MIME, text.encode("utf-8"))
        QGuiApplication.clipboard().setMimeData(mime)
        self.statusBar().showMessage(f"Copied {len(ids)} node{'s' if len(ids) > 1 else ''}", 2000)
        return True

    def cut(self) -> None:
        if self.copy():
            self.controller.remove_nodes(self.scene.selected_node_ids())

    def paste(self) -> list[str]:
        if self.scene.focusItem() is not None:
            return []
        mime = QGuiApplication.clipboard().mimeData()
        text = ""
        if mime is not None and mime.hasFormat(CLIPBOARD_MIME):
            text = bytes(mime.data(CLIPBOARD_MIME)).decode("utf-8")
        elif mime is not None and mime.hasText():
            text = mime.text()
        if not text or not looks_like_workflow(text):
            self.statusBar().showMessage("Nothing to paste: the clipboard holds no nodes", 3000)
            return []
        try:
            pos = self.view.cursor_scene_pos()
            ids = self.controller.paste_text(text, (pos.x(), pos.y()))
        except WorkflowError as exc:
            self.show_error("Cannot paste", _explain(exc))
            return []
        self.scene.select_nodes(ids)
        return ids

    def duplicate(self) -> list[str]:
        ids = self.controller.duplicate(self.scene.selected_node_ids())
        self.scene.select_nodes(ids)
        return ids

    def align(self, mode: str) -> None:
        ids = self.scene.selected_node_ids()
        sizes = {n: self.scene.nodes[n].size() for n in ids}
        self.controller.align(ids, mode, sizes)

    def _nodes_overlap(self) -> bool:
        rects = {}
        for nid, item in self.scene.nodes.items():
            x, y = self.model.position(nid)
            rects[nid] = (x, y, item.width, item.height)
        return overlapping(rects)

    def arrange(self) -> None:
        ids = self.scene.selected_node_ids() or list(self.model.nodes)
        if not ids:
            return
        chosen = set(ids)
        links = [(src, nid) for nid in ids for src, _ in self.model.nodes[nid].inputs.values() if src in chosen]
        sizes = {n: self.scene.nodes[n].size() for n in ids}
        origin = (min(self.model.position(n)[0] for n in ids), min(self.model.position(n)[1] for n in ids))
        positions = arrange(ids, links, sizes, origin)
        self.controller.move({n: (self.model.position(n), positions[n]) for n in ids})

    def group_selection(self) -> None:
        items = [self.scene.nodes[n] for n in self.scene.selected_node_ids()]
        if not items:
            return
        rect = items[0].sceneBoundingRect()
        for item in items[1:]:
            rect = rect.united(item.sceneBoundingRect())
        rect = rect.adjusted(-20, -50, 20, 20)
        self.controller.add_group((rect.x(), rect.y(), rect.width(), rect.height()), "Group")

    def fit_group(self, index: int) -> None:
        group = self.scene.group_items[index]
        members = [m for m in self.scene.items_in_group(group) if isinstance(m, NodeItem)]
        if not members:
            return
        rect = members[0].sceneBoundingRect()
        for m in members[1:]:
            rect = rect.united(m.sceneBoundingRect())
        rect = rect.adjusted(-20, -50, 20, 20)
        self.controller.edit_group(index, bounding=[round(v, 1) for v in (rect.x(), rect.y(), rect.width(),
                                                                           rect.height())])

    def rename_selected(self) -> None:
        ids = self.scene.selected_node_ids()
        if len(ids) == 1:
            self.rename_node(ids[0])
        elif len(self.scene.selected_group_indexes()) == 1:
            self.rename_group(self.scene.selected_group_indexes()[0])

    def rename_node(self, nid: str) -> None:
        text, ok = QInputDialog.getText(self, "Rename node", "Title:", text=self.model.title(nid))
        if ok:
            self.controller.set_title(nid, text.strip() or None)

    def rename_group(self, index: int) -> None:
        text, ok = QInputDialog.getText(self, "Rename group", "Title:", text=self.model.groups[index].get("title", ""))
        if ok:
            self.controller.edit_group(index, title=text.strip() or "Group")

    def drop_files(self, paths: list[str], scene_pos: QPointF) -> None:
        for path in paths:
            self.drop_file(path, scene_pos)

    def drop_file(self, path: str | Path, scene_pos: QPointF) -> bool:
        """A dropped workflow opens (or, on a non-empty canvas, is added at the drop point);
        a plain image becomes an image-loading node."""
        path = Path(path)
        try:
            workflow = load_workflow(path)
        except WorkflowError as exc:
            if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp") and self._add_image_node(path, scene_pos):
                return True
            self.show_error("Cannot open dropped file", _explain(exc))
            return False
        if not self.model.nodes:
            self.set_document(workflow, path if path.suffix.lower() == ".json" else None)
            return True
        ids = self.controller.paste_text(workflow.dumps(), (scene_pos.x(), scene_pos.y()), f"Drop {path.name}")
        self.scene.select_nodes(ids)
        return True

    def _add_image_node(self, path: Path, scene_pos: QPointF) -> bool:
        for spec in self.registry:
            for param in spec.params:
                if param.file is FileKind.IMAGE:
                    self.stack.beginMacro(f"Add {path.name}")
                    nid = self.controller.add_node(spec.type, (scene_pos.x(), scene_pos.y()))
                    self.controller.set_param(nid, param.name, str(path))
                    self.stack.endMacro()
                    return True
        return False

    def _context_menu(self, pos) -> None:
        scene_pos = self.view.mapToScene(pos)
        item = next((i for i in self.scene.items(scene_pos)
                     if isinstance(i, (NodeItem, EdgeItem, RerouteItem, GroupItem))), None)
        menu = QMenu(self)
        if isinstance(item, NodeItem):
            if not item.isSelected():
                self.scene.select_nodes([item.node_id])
            menu.addActions([self.act_rename, self.act_collapse, self.act_bypass, self.act_mute])
            menu.addSeparator()
            menu.addActions([self.act_copy, self.act_cut, self.act_duplicate, self.act_group, self.act_delete])
        elif isinstance(item, EdgeItem):
            menu.addAction("Disconnect", lambda: self.controller.disconnect(item.dst, item.input_name))
            menu.addAction("Add Reroute Dot", lambda: self.controller.add_reroute(
                item.dst, item.input_name, (scene_pos.x(), scene_pos.y())))
        elif isinstance(item, RerouteItem):
            menu.addAction("Remove Reroute Dot", lambda: self.controller.remove_reroutes([item.rid]))
        elif isinstance(item, GroupItem):
            index = item.index
            menu.addAction("Rename Group…", lambda: self.rename_group(index))
            colors = menu.addMenu("Color")
            for name, color in GROUP_COLORS.items():
                colors.addAction(name, lambda c=color: self.controller.edit_group(index, color=c))
            menu.addAction("Fit Group to Its Nodes", lambda: self.fit_group(index))
            menu.addAction("Remove Group (Keep Nodes)", lambda: self.controller.remove_group(index))
        else:
            add = menu.addMenu("Add Node")
            for category, specs in sorted(self.registry.categories().items()):
                sub = add.addMenu(category)
                for spec in specs:
                    sub.addAction(spec.title, lambda t=spec.type: self.controller.add_node(
                        t, (scene_pos.x(), scene_pos.y())))
            menu.addAction(self.act_paste)
            menu.addSeparator()
            menu.addAction(self.act_fit)
        menu.popup(self.view.viewport().mapToGlobal(pos))

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

    def _auto_run(self) -> None:
        self.run(count=1, replace_last=True)

    def cancel(self) -> None:
        if self.search.isVisible():
            self.search.hide()
            return
        if self.scene.drag is not None:
            self.scene.cancel_wire()
            return
        if self.runner.running:
            self.runner.cancel()
            self.statusBar().showMessage("Cancelling…")

GROUP_COLORS = {"Slate": "#3f5a7a", "Green": "#3d6b45", "Red": "#7a3f3f", "Purple": "#5d3f7a",
                "Amber": "#7a633f", "Teal": "#3f717a", "Grey": "#55585f"}
SHORTCUTS_HTML = """
<table cellspacing="4">
<tr><td><b>Tab</b>, double-click</td><td>add a node (fuzzy search by name and category)</td></tr>
<tr><td>drag port to port</td><td>connect; incompatible ports dim; an input takes one wire</td></tr>
<tr><td>drop a wire on the canvas</td><td>add a node that fits, already connected</td></tr>
<tr><td>drag from a connected input</td><td>pick its wire up (drop on the canvas to remove it)</td></tr>
<tr><td>double-click a wire</td><td>add a reroute dot (Shift+drag a dot to wire from it)</td></tr>
<tr><td>middle drag, Space+drag</td><td>pan</td></tr>
<tr><td>wheel</td><td>zoom at the cursor</td></tr>
<tr><td><b>F</b></td><td>fit the graph (or the selection)</td></tr>
<tr><td><b>Ctrl+Enter</b> / <b>Esc</b></td><td>run / cancel (Run during a run queues the next)</td></tr>
<tr><td><b>Ctrl+C, X, V, D</b></td><td>copy, cut, paste (workflow JSON, works between windows), duplicate</td></tr>
<tr><td><b>Delete</b></td><td>delete the selection</td></tr>
<tr><td><b>Ctrl+G</b></td><td>group the selection (drag the group's title to move it with its nodes)</td></tr>
<tr><td><b>Ctrl+B</b> / <b>Ctrl+M</b></td><td>bypass (pass the input through) / mute (do not run)</td></tr>
<tr><td><b>Alt+C</b>, <b>F2</b></td><td>collapse, rename</td></tr>
<tr><td><b>Ctrl+Shift+L</b></td><td>arrange the graph in columns</td></tr>
<tr><td><b>Ctrl+Z</b> / <b>Ctrl+Shift+Z</b></td><td>undo / redo every edit</td></tr>
</table>
"""


def _explain(exc: WorkflowError) -> str:
    """A file error as the user should read it: what, where (node, field), what to do."""
    text = str(exc)
    problem = getattr(exc, "problem", None)
    if problem is not None and problem.node_id and f"node {problem.node_id}" not in text:
        text += f"\n\nNode: {problem.node_id}" + (f", field: {problem.field}" if problem.field else "")
    return text


def register_window(win: MainWindow) -> None:
    _windows.append(win)

