"""Other tools' workflow files: ComfyUI (UI workflows, API prompts, PNGs) and A1111/Forge parameters.

    from nodeforge.interop import import_workflow, export_comfyui_api, export_comfyui_ui
    workflow, warnings = import_workflow("shared.json")      # or a PNG, or a dict
    prompt = export_comfyui_api(workflow)                     # what ComfyUI's /prompt takes
    ui = export_comfyui_ui(workflow)                          # what ComfyUI's editor opens (UI 0.4)

Like `core`, this package imports neither Qt nor torch: opening a file never needs a model. The
work is in its modules (reading: `reader`; fixing what another tool's file leaves: `after_import`;
ComfyUI: `comfy_graph`, `comfy_import`, `comfy_export` (API prompts), `comfy_ui_export` (UI workflows),
`comfy_table`; A1111: `a1111`; names: `model_names`, `samplers`); this file only re-exports the public names.
"""
from __future__ import annotations

from nodeforge.interop.comfy_export import ExportError, export_comfyui_api
from nodeforge.interop.comfy_ui_export import export_comfyui_ui
from nodeforge.interop.model_names import parse_model_map
from nodeforge.interop.reader import (
    A1111,
    COMFY_API,
    COMFY_WORKFLOW,
    NODEFORGE,
    Imported,
    detect_format,
    import_workflow,
    read_workflow,
)

__all__ = ["A1111", "COMFY_API", "COMFY_WORKFLOW", "NODEFORGE", "ExportError", "Imported", "detect_format",
           "export_comfyui_api", "export_comfyui_ui", "import_workflow", "parse_model_map", "read_workflow"]
