"""The desktop editor (PySide6). Layers: model (graph + layout, Qt signals), commands (undo),
controller (edits), scene/items (drawing), main window (files, running, panels).

Nothing in this package imports torch; `nodeforge.ui.app.main(path)` starts the editor.
"""
