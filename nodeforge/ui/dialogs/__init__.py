"""The editor's dialogs: Batch (`batch_dialog.py`) and Missing models (`missing_models.py`)."""
