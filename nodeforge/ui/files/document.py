"""The open document: opening, saving, recent files, examples, autosave, drops and the clipboard.

One DocumentController per main window. It owns the file path and decides when the graph
counts as modified; every way of writing the graph (save, save as, autosave) reports every
failure to the user, because a silent failure there loses work. Other tools' files (ComfyUI,
A1111) open through nodeforge.interop: the title says where they came from and Save asks for a
new NodeForge file, so the original is never written over.

It works on the graph through the model, controller, scene, view and selection edits it is given,
and needs from its window only what `DocumentHost` declares.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import QMimeData, QObject, QPointF, QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox, QWidget

from nodeforge.core.errors import WorkflowError
from nodeforge.core.types import FileKind
from nodeforge.core.placeholder import is_placeholder, original_class
from nodeforge.core.relocate import Relocation, relocate
from nodeforge.core.workflow import Workflow, save_workflow
from nodeforge.ui.dialogs.held import hold
from nodeforge.ui.dialogs.notes_box import replace_notes_box
from nodeforge.ui.files.autosave import Autosaver
from nodeforge.ui.files.comfy_export import ComfyExport, suggested_name
from nodeforge.ui.graph.controller import CLIPBOARD_MIME, looks_like_workflow, unencodable_text

if TYPE_CHECKING:  # pragma: no cover
    from nodeforge.core.engine import Engine
    from nodeforge.ui.canvas.editing import SelectionEdits
    from nodeforge.ui.canvas.scene import GraphScene
    from nodeforge.ui.canvas.view import GraphView
    from nodeforge.ui.graph.controller import GraphController
    from nodeforge.ui.graph.model import GraphModel

MAX_RECENT = 10
# The undo step that untangles a file whose nodes overlap: an edit the user can undo, but not one
# that makes the document "modified" (neither it nor its undo differs from what the user opened).
AUTO_ARRANGE = "Arrange overlapping nodes (on opening)"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def explain(exc: BaseException) -> str:
    """An error as the user should read it: what, where (node, field), what to do."""
    if not isinstance(exc, WorkflowError):
        if isinstance(exc, OSError):
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            return f"{where}{exc.strerror or exc}"
        return f"{type(exc).__name__}: {exc}"
    text = str(exc)
    problem = getattr(exc, "problem", None)
    if problem is not None and problem.node_id and f"node {problem.node_id}" not in text:
        text += f"\n\nNode: {problem.node_id}" + (f", field: {problem.field}" if problem.field else "")
    return text


def for_the_editor(note: str) -> str:
    """An import note as an editor user can act on it: the command line's "or map it to one you
    have with --model-map NAME=..." becomes where to pick one in the editor."""
    head, sep, _advice = note.partition(", or map ")
    if not sep or "--model-map" not in note:
        return note
    return head + ", or pick one of yours in the node's list"


class DocumentHost(Protocol):
    """What the open document needs from its window (MainWindow provides it); the graph itself it
    reaches through the model, controller, scene, view and selection edits it is given."""

    confirm_close: bool     # False: closing or replacing the graph never asks to save (tests, scripts)

    def window(self) -> QWidget: ...                    # dialogs open over it; its title names the file
    def settings(self) -> QSettings: ...
    def show_error(self, title: str, text: str) -> None: ...
    def show_message(self, text: str, msecs: int = 0) -> None: ...
    def stop_runs(self) -> None: ...                     # the graph goes: cancel its runs, clear their errors


class DocumentController(QObject):
    def __init__(self, host: DocumentHost, engine: "Engine", model: "GraphModel", controller: "GraphController",
                 scene: "GraphScene", view: "GraphView", edits: "SelectionEdits", autosave_ms: int) -> None:
        super().__init__(host.window())
        self.host = host
        self.engine = engine
        self.model = model
        self.controller = controller
        self.stack = controller.stack
        self.scene = scene
        self.view = view
        self.edits = edits          # untangles overlapping nodes on opening
        self.path: Path | None = None
        self.imported_from: Path | None = None       # the ComfyUI/A1111 file on screen, never saved over
        self.imported_format: str | None = None
        self.example: Path | None = None              # the bundled example on screen, never saved over
        self.import_warnings: list[str] = []
        self.import_notice: QMessageBox | None = None
        self.exporter = ComfyExport(host, engine, model, view)    # File > Export to ComfyUI…
        self.missing_dialog: Any = None
        self.autosaver = Autosaver()
        self.autosave_failure: str | None = None     # the last autosave error, until one succeeds
        self.autosave_notice: QMessageBox | None = None
        self.autosave_timer = QTimer(self)
        self.autosave_timer.timeout.connect(self.autosave)
        self.autosave_timer.start(autosave_ms)

    # -- title and state --------------------------------------------------------------------------
    def update_title(self) -> None:
        name = self.path.name if self.path else "Untitled"
        if self.path is None and self.example is not None:
            name = f"{self.example.name} (example)"
        if self.path is None and self.imported_from is not None:
            tool = "A1111" if (self.imported_format or "").startswith("A1111") else "ComfyUI"
            name = f"{self.imported_from.name} (imported from {tool})"
        self.host.window().setWindowTitle(f"{name}[*] — NodeForge")
        self.host.window().setWindowModified(self.is_modified())

    def is_modified(self) -> bool:
        """Whether closing would lose an edit of the user's (the layout fix on opening is none)."""
        stack = self.stack
        if stack.isClean():
            return False
        return not (stack.cleanIndex() == 0 and stack.index() == 1 and stack.count() >= 1
                    and stack.command(0).text() == AUTO_ARRANGE)

    # -- opening ----------------------------------------------------------------------------------
    def set_document(self, workflow: Workflow, path: Path | None, *, untangle: bool = True) -> None:
        """Show `workflow` as an unmodified document; a layout fix it needs is one undoable step."""
        self.host.stop_runs()
        self.model.set_workflow(workflow)
        self.stack.clear()
        self.stack.setClean()
        self.path = path
        self.imported_from = self.imported_format = None
        self.example = None
        self.import_warnings = []
        vp = workflow.ui.get("viewport") if isinstance(workflow.ui, dict) else None
        self._report_unknown_types()
        if untangle and self.edits.nodes_overlap():
            # Files written by hand or by scripts often stack nodes; untangle them as a step the
            # user sees and can undo, but opening a file is not an edit: the result counts as saved.
            self.edits.arrange(AUTO_ARRANGE)
            self.host.show_message("The nodes overlapped, so they were arranged (Ctrl+Z puts them back)", 10000)
            vp = None
        self.update_title()
        QTimer.singleShot(0, lambda: self.view.restore_viewport(vp))

    def _report_unknown_types(self) -> None:
        registry = self.engine.registry
        nodes = self.model.nodes.values()
        comfy = sorted({original_class(n) for n in nodes if is_placeholder(n)})
        unknown = sorted({n.type for n in nodes if registry.get(n.type) is None and not is_placeholder(n)})
        parts = []
        if comfy:
            parts.append(f"ComfyUI nodes with no NodeForge equivalent kept as placeholders: {', '.join(comfy)}")
        if unknown:
            parts.append(f"Unknown node types kept as placeholders: {', '.join(unknown)}")
        if parts:
            self.host.show_message("; ".join(parts), 15000)

    def new_document(self) -> None:
        if self.maybe_save():
            self.set_document(Workflow(), None)

    def open_dialog(self) -> None:
        if not self.maybe_save():
            return
        start = str(self.path.parent) if self.path else ""
        path, _ = QFileDialog.getOpenFileName(self.host.window(), "Open workflow", start,
                                              "Workflows: NodeForge, ComfyUI, A1111 (*.json *.png *.txt);;"
                                              "All files (*)")
        if path:
            self.open_path(path)

    def read(self, path: Path) -> Any:
        """The file as an interop.Imported (NodeForge, ComfyUI or A1111); raises WorkflowError."""
        from nodeforge.interop import read_workflow

        from nodeforge.ui.dialogs.missing_models import remembered

        paths = self.engine.model_paths
        imported = read_workflow(path, registry=self.engine.registry, model_paths=paths)
        mapping = remembered(self.host.settings())
        if imported.foreign and mapping:   # names chosen in an earlier import's Missing models dialog
            imported = read_workflow(path, registry=self.engine.registry, model_paths=paths, model_map=mapping)
            # The remembered pairs are not the user's typing: no "no model is named" notes for them.
            imported.warnings = [w for w in imported.warnings if not w.startswith("--model-map ")]
        bad = unencodable_text(imported.workflow)
        if bad:
            raise WorkflowError(f"{path}: {bad}")
        return imported

    def open_path(self, path: str | Path) -> bool:
        """Open a workflow file; on failure, say which node and field, and keep the current graph."""
        path = Path(path)
        try:
            imported = self.read(path)
        except Exception as exc:  # never crash on a bad file
            self.host.show_error("Cannot open workflow", explain(exc))
            return False
        self.show_imported(imported, path)
        self.add_recent(path)
        return True

    def show_imported(self, imported: Any, path: Path) -> None:
        if self.missing_dialog is not None:   # the last file's choices do not apply to this one
            self.missing_dialog.close()
            self.missing_dialog = None
        if not imported.foreign:
            self.set_document(imported.workflow, path if path.suffix.lower() == ".json" else None)
            if imported.warnings:   # a PNG made with another NodeForge, torch or diffusers says so
                self._show_import_notes(path, imported.warnings)
            return
        # Another tool's file: a new, unsaved NodeForge document. `source` stays the original, so
        # images named relative to it are found; Save asks where (never over the original).
        imported.workflow.source = path
        self._set_imported_layout(imported.workflow)
        self.imported_from, self.imported_format = path, imported.format
        self.import_warnings = list(imported.warnings)
        self.update_title()
        # One dialog at a time: the notes wait for the Missing models dialog, then say only what the
        # choices left (a model mapped there is no longer called missing).
        if not self.offer_missing_models(imported, path):
            self._show_notes_left(path)

    def _show_notes_left(self, path: Path) -> None:
        if self.import_warnings:
            self._show_import_notes(path, self.import_warnings)

    def offer_missing_models(self, imported: Any, path: Path) -> bool:
        """The Missing models dialog (not modal: the graph stays usable), when another tool's file
        names models this machine lacks and the user has models of those kinds to pick from. OK
        puts each choice on its nodes as one undoable step, and remembers the pairs. Whether it
        opened; when it closes, the import's notes follow."""
        from nodeforge.ui.dialogs.missing_models import MissingModelsDialog, choices_for

        missing = {key: places for key, places in imported.missing_models.items() if key[0] != "image"}
        choices = choices_for((kind for kind, _ in missing), self.engine.model_paths)
        if not any(choices.values()):
            return False
        dialog = MissingModelsDialog(missing, choices, self.host.window())
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self._use_chosen_models(dialog, imported, path))
        dialog.rejected.connect(lambda: self._missing_dialog_left(dialog, path))
        hold(self, "missing_dialog", dialog)
        dialog.show()
        return True

    def _missing_dialog_left(self, dialog: Any, path: Path) -> None:
        if self.missing_dialog is dialog:       # not replaced by another file's meanwhile
            self.missing_dialog = None
            self._show_notes_left(path)

    def _use_chosen_models(self, dialog: Any, imported: Any, path: Path) -> None:
        if self.missing_dialog is not dialog:
            return
        self.missing_dialog = None
        self._put_chosen_models(dialog, imported)
        self._show_notes_left(path)

    def _put_chosen_models(self, dialog: Any, imported: Any) -> None:
        from nodeforge.ui.dialogs.missing_models import apply_choices, remember

        chosen = dialog.chosen()
        if not chosen:
            return
        places = [(nid, param, replacement) for key, replacement in chosen.items()
                  for nid, param in imported.missing_models.get(key, []) if nid in self.model.nodes]
        stack = self.stack
        stack.beginMacro("Use chosen models")
        for nid, param, replacement in places:
            self.controller.set_param(nid, param, replacement)
        stack.endMacro()
        apply_choices(imported, chosen)
        self.import_warnings = list(imported.warnings)
        if dialog.remember.isChecked():
            remember(self.host.settings(), chosen)
        self.host.show_message(f"Using {len(chosen)} of your models in place of the missing ones", 8000)

    def _set_imported_layout(self, workflow: Workflow) -> None:
        """Keep the sender's layout; where our (larger) nodes would overlap, give it room by
        scaling it, and only when that is not enough arrange it as any overlapping file."""
        from nodeforge.ui.canvas.layout import spread

        self.set_document(workflow, None, untangle=False)
        if not self.edits.nodes_overlap():
            return
        for factor in (1.25, 1.5, 1.75, 2.0):
            roomier = workflow.copy()
            roomier.source = workflow.source
            roomier.ui = spread(workflow.ui, factor)
            self.set_document(roomier, None, untangle=False)
            if not self.edits.nodes_overlap():
                return
        self.set_document(workflow, None)

    def _show_import_notes(self, path: Path, warnings: list[str]) -> None:
        replace_notes_box(self, "import_notice", self.host.window(), "Imported with notes",
                          f"{path.name} was imported", [for_the_editor(line) for line in warnings])
        self.host.show_message(f"Imported {path.name} with {len(warnings)} note"
                               f"{'s' if len(warnings) != 1 else ''}", 10000)

    def open_example(self, path: Path) -> bool:
        """An example opens as a new, unsaved graph, so Save does not overwrite the bundled file."""
        if not self.maybe_save() or not self.open_path(path):
            return False
        # Save asks where; `source` stays, so paths relative to the example's folder still resolve.
        self.path = None
        self.example = path
        self.update_title()
        return True

    # -- saving -----------------------------------------------------------------------------------
    def save(self) -> bool:
        if self.path is None:
            return self.save_as()
        return self.save_to(self.path)

    def suggested_path(self) -> str:
        if self.path is not None:
            return str(self.path)
        if self.imported_from is not None:
            stem = self.imported_from.name.rsplit(".", 1)[0]
            return str(self.imported_from.with_name(f"{stem}.nodeforge.json"))
        if self.example is not None:
            return self.example.name     # in the working folder: never over the bundled file
        return "workflow.json"

    def save_as(self) -> bool:
        path, _ = QFileDialog.getSaveFileName(self.host.window(), "Save workflow", self.suggested_path(),
                                              "Workflows (*.json)")
        if not path:
            return False
        if not path.lower().endswith(".json"):
            path += ".json"
        return self.save_to(Path(path))

    def export_comfyui(self) -> bool:
        """File > Export to ComfyUI…: a workflow or an API prompt (nodeforge/ui/files/comfy_export.py);
        neither this graph's file nor the one it was imported from is written over."""
        keep = [(path, why) for path, why in (
            (self.path, "this graph's own NodeForge file"),
            (self.imported_from, f"the {self.imported_format or 'file'} this graph was imported from")) if path]
        source = self.path or self.imported_from or self.example
        return self.exporter.dialog(suggested_name(source, self.example), keep)

    def save_to(self, path: Path) -> bool:
        if self.imported_from is not None and _same_file(Path(path), self.imported_from):
            self.host.show_error("Cannot save", f"{path}:\nthat is the {self.imported_format or 'file'} this graph "
                                 "was imported from; NodeForge does not write over it. Choose another name.")
            return False
        c = self.view.center()
        self.model.set_viewport((c.x(), c.y()), self.view.zoom())
        try:
            snapshot = self.model.snapshot()
            bad = unencodable_text(snapshot)
            if bad:
                raise WorkflowError(bad)
            moved = relocate(snapshot, self.engine.registry, Path(path).parent)
            for nid, name, _old, new in moved.changes:
                snapshot.nodes[nid].params[name] = new
            save_workflow(snapshot, path)
        except Exception as exc:  # every failure is the user's to see: a silent one loses work
            self.host.show_error("Cannot save", f"{path}:\n{explain(exc)}")
            return False
        self._follow_relocation(moved, Path(path))
        self.path = Path(path)
        self.imported_from = self.imported_format = None
        self.example = None
        self.model.workflow.source = self.path
        self.stack.setClean()
        self.update_title()
        self.add_recent(self.path)
        if not moved.changes:
            self.host.show_message(f"Saved {path}", 4000)
        return True

    def _follow_relocation(self, moved: Relocation, path: Path) -> None:
        """The document takes the rebased paths it was saved with (one undoable step), and the
        user hears of each relative path that the saved copy cannot find."""
        if moved.changes:
            self.stack.beginMacro("Rebase input paths")
            for nid, name, _old, new in moved.changes:
                self.controller.set_param(nid, name, new)
            self.stack.endMacro()
            shown = ", ".join(f"{old} -> {new}" for _nid, _name, old, new in moved.changes[:3])
            more = f" and {len(moved.changes) - 3} more" if len(moved.changes) > 3 else ""
            self.host.show_message(f"Saved {path}; input paths rebased to its folder: {shown}{more}", 10000)
        if moved.lost:
            lines = "\n".join(f"• {self.model.title(nid)} ({nid}), {name}: {value}" for nid, name, value in moved.lost)
            self.host.show_error("Saved, but inputs are missing",
                                 f"{path} was saved, but these relative paths were not found beside the old "
                                 f"file nor the new one, so they could not be rebased:\n{lines}\n"
                                 "Choose each file again (the ... button on the node) and save.")

    def maybe_save(self) -> bool:
        """Before the graph goes away: True to go on (saved, discarded or unmodified)."""
        if not self.is_modified() or not self.host.confirm_close:
            return True
        answer = QMessageBox.question(self.host.window(), "Unsaved changes",
                                      "Save the changes to this graph first?",
                                      QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                                      | QMessageBox.StandardButton.Cancel)
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        return answer == QMessageBox.StandardButton.Discard

    # -- autosave ---------------------------------------------------------------------------------
    def autosave(self) -> bool:
        """Write the crash-recovery copy; a failure shows a notice and the timer keeps retrying."""
        if not self.is_modified() and not self.model.nodes:
            return False
        try:
            snapshot = self.model.snapshot()
            bad = unencodable_text(snapshot)
            if bad:
                raise WorkflowError(bad)
            written = self.autosaver.save(snapshot)
        except Exception as exc:
            self._autosave_failed(explain(exc))
            return False
        if self.autosave_failure is not None:
            self.autosave_failure = None
            self.host.show_message("Autosave works again", 4000)
        return written

    def _autosave_failed(self, message: str) -> None:
        first = self.autosave_failure != message
        self.autosave_failure = message
        if not first and self.autosave_notice is not None and self.autosave_notice.isVisible():
            return
        # Non-modal: the user can go on working (and fix the cause) while it shows.
        box = QMessageBox(QMessageBox.Icon.Warning, "Autosave failed",
                          f"The crash-recovery copy could not be written; NodeForge keeps trying every "
                          f"minute.\n\n{message}", QMessageBox.StandardButton.Ok, self.host.window())
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        hold(self, "autosave_notice", box)
        box.show()
        self.host.show_message(f"Autosave failed: {message.splitlines()[0]}", 10000)

    # -- recent files and examples -----------------------------------------------------------------
    def recent_files(self) -> list[str]:
        value = self.host.settings().value("recentFiles", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def add_recent(self, path: Path) -> None:
        path_s = str(Path(path).resolve())
        recent = [p for p in self.recent_files() if p != path_s]
        self.host.settings().setValue("recentFiles", [path_s] + recent[:MAX_RECENT - 1])

    @staticmethod
    def example_files() -> list[Path]:
        from nodeforge.paths import builtin_dir

        folder = builtin_dir("workflows")
        return sorted(folder.glob("*.json")) if folder.is_dir() else []

    def fill_examples(self, menu: QMenu) -> None:
        _fill_menu(menu, [(path.stem, lambda p=path: self.open_example(p)) for path in self.example_files()],
                   "(none installed)")

    def fill_recent(self, menu: QMenu) -> None:
        _fill_menu(menu, [(p, lambda p=p: self.maybe_save() and self.open_path(p)) for p in self.recent_files()],
                   "(none)")

    def open_output_folder(self) -> None:
        folder = self.engine.output_dir.resolve()
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    # -- drops ------------------------------------------------------------------------------------
    def drop_files(self, paths: list[str], scene_pos: QPointF) -> None:
        for path in paths:
            self.drop_file(path, scene_pos)

    def drop_file(self, path: str | Path, scene_pos: QPointF) -> bool:
        """A dropped workflow opens (or, on a non-empty canvas, is added at the drop point);
        a plain image becomes an image-loading node."""
        path = Path(path)
        try:
            imported = self.read(path)
        except WorkflowError as exc:
            if path.suffix.lower() in IMAGE_SUFFIXES and self._add_image_node(path, scene_pos):
                return True
            self.host.show_error("Cannot open dropped file", explain(exc))
            return False
        if not self.model.nodes:
            self.show_imported(imported, path)
            return True
        if imported.warnings:
            self._show_import_notes(path, imported.warnings)
        ids = self.controller.paste_text(imported.workflow.dumps(), (scene_pos.x(), scene_pos.y()),
                                        f"Drop {path.name}")
        self.scene.select_nodes(ids)
        return True

    def _add_image_node(self, path: Path, scene_pos: QPointF) -> bool:
        for spec in self.engine.registry:
            for param in spec.params:
                if param.file is FileKind.IMAGE:
                    self.stack.beginMacro(f"Add {path.name}")
                    nid = self.controller.add_node(spec.type, (scene_pos.x(), scene_pos.y()))
                    self.controller.set_param(nid, param.name, str(path))
                    self.stack.endMacro()
                    return True
        return False

    # -- clipboard --------------------------------------------------------------------------------
    def copy(self) -> bool:
        if self.scene.focusItem() is not None:
            return False   # a text field inside a node has the keyboard: let it copy text
        ids = self.scene.selected_node_ids()
        if not ids:
            return False
        text = self.controller.copy_text(ids)
        mime = QMimeData()
        mime.setText(text)
        mime.setData(CLIPBOARD_MIME, text.encode("utf-8", "surrogatepass"))
        QGuiApplication.clipboard().setMimeData(mime)
        self.host.show_message(f"Copied {len(ids)} node{'s' if len(ids) > 1 else ''}", 2000)
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
            text = bytes(mime.data(CLIPBOARD_MIME)).decode("utf-8", "replace")
        elif mime is not None and mime.hasText():
            text = mime.text()
        if not text or not looks_like_workflow(text):
            self.host.show_message("Nothing to paste: the clipboard holds no nodes", 3000)
            return []
        try:
            pos = self.view.cursor_scene_pos()
            ids = self.controller.paste_text(text, (pos.x(), pos.y()))
        except WorkflowError as exc:
            self.host.show_error("Cannot paste", explain(exc))
            return []
        self.scene.select_nodes(ids)
        return ids


def _fill_menu(menu: QMenu, entries: list[tuple[str, Any]], empty: str) -> None:
    """`menu` anew: an action per (text, slot), or one disabled line saying `empty`."""
    menu.clear()
    if not entries:
        menu.addAction(empty).setEnabled(False)
    for text, slot in entries:
        menu.addAction(text, slot)
