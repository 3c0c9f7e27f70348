"""The open document: opening, saving, recent files, drops and the clipboard (`document.py`);
autosave and crash recovery (`autosave.py`)."""
