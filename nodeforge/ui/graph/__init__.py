"""The editor's graph model, without widgets: `GraphModel` (`model.py`), the undoable edits
(`commands.py`) and `GraphController`, through which every edit goes (`controller.py`)."""
