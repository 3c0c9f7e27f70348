"""File > Export to ComfyUI…: the open graph as a ComfyUI workflow (what ComfyUI's editor opens)
or API prompt (what its /prompt endpoint takes), through the same interop functions as
`nodeforge export FILE --to comfyui|comfyui-api`.

The file dialog's filter picks the format. What the export changed (a schedule ComfyUI lacks, ...)
shows in a non-modal box as the import's notes do; a failure (a node ComfyUI has no class for, an
unwritable path) is one message naming the node or the file. The graph itself, its file and its
modified state are untouched: an export is not a save.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from PySide6.QtWidgets import QFileDialog, QMessageBox

from nodeforge.ui.dialogs.notes_box import replace_notes_box

if TYPE_CHECKING:  # pragma: no cover
    from nodeforge.core.engine import Engine
    from nodeforge.ui.canvas.view import GraphView
    from nodeforge.ui.files.document import DocumentHost
    from nodeforge.ui.graph.model import GraphModel

WORKFLOW_FILTER = "ComfyUI workflow (*.json)"
API_FILTER = "ComfyUI API prompt (*.json)"
# filter -> (what the file is, the `nodeforge export --to` name)
FORMATS = {WORKFLOW_FILTER: ("ComfyUI workflow", "comfyui"), API_FILTER: ("ComfyUI API prompt", "comfyui-api")}


def exporter(to: str) -> Callable[..., dict[str, Any]]:
    from nodeforge.interop import export_comfyui_api, export_comfyui_ui

    return export_comfyui_ui if to == "comfyui" else export_comfyui_api


def suggested_name(source: Path | None, example: Path | None) -> str:
    """Beside the graph's file (or the file it was imported from), named after it; an example's
    export goes to the working folder, never among the bundled files."""
    if source is None:
        return "workflow.comfyui.json"
    stem = source.name.split(".", 1)[0] or "workflow"
    folder = Path() if source == example else source.parent
    return str(folder / f"{stem}.comfyui.json")


class ComfyExport:
    """One per document: exports what the model holds, shows notes and errors through the host."""

    def __init__(self, host: "DocumentHost", engine: "Engine", model: "GraphModel", view: "GraphView") -> None:
        self.host = host
        self.engine = engine
        self.model = model
        self.view = view
        self.notice: QMessageBox | None = None       # the last export's notes, while shown

    def dialog(self, suggested: str, keep: list[tuple[Path, str]]) -> bool:
        """Ask where and in which format, then export; whether a file was written. `keep`: files
        never written over, each with what it is."""
        path, chosen = QFileDialog.getSaveFileName(self.host.window(), "Export to ComfyUI", suggested,
                                                   f"{WORKFLOW_FILTER};;{API_FILTER}", WORKFLOW_FILTER)
        if not path:
            return False
        if not path.lower().endswith(".json"):
            path += ".json"
        return self.export_to(Path(path), FORMATS.get(chosen, FORMATS[WORKFLOW_FILTER])[1], keep)

    def export_to(self, path: Path, to: str = "comfyui", keep: Sequence[tuple[Path, str]] = ()) -> bool:
        """Write the graph on screen to `path` as `to` ("comfyui" or "comfyui-api"); whether it did."""
        from nodeforge.core.files import atomic_write_bytes, refuse_read_only
        from nodeforge.ui.files.document import _same_file, explain

        what = next(name for name, key in FORMATS.values() if key == to)
        refused = next((why for kept, why in keep if _same_file(path, kept)), None)
        if refused:
            self.host.show_error("Cannot export", f"{path}:\nthat is {refused}; NodeForge does not write over "
                                 "it. Choose another name.")
            return False
        c = self.view.center()
        self.model.set_viewport((c.x(), c.y()), self.view.zoom())
        notes: list[str] = []
        try:
            data = exporter(to)(self.model.snapshot(), registry=self.engine.registry, warnings=notes)
            text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
            refuse_read_only(path)
            atomic_write_bytes(path, text.encode("utf-8"))
        except Exception as exc:  # the user's to see, in one message: never a traceback
            self.host.show_error("Cannot export", f"{path}:\n{explain(exc)}")
            return False
        count = len(data["nodes"]) if to == "comfyui" else len(data)
        said = f"Exported {path.name}: {what} with {count} nodes"
        if notes:
            self.show_notes(path, what, notes)
            said += f", {len(notes)} note{'s' if len(notes) != 1 else ''}"
        self.host.show_message(said, 10000)
        return True

    def show_notes(self, path: Path, what: str, notes: list[str]) -> None:
        """What the export changed or left out, non-modal (the user can fix the graph meanwhile)."""
        replace_notes_box(self, "notice", self.host.window(), "Exported with notes",
                          f"{path.name} was written as a {what}", notes)
