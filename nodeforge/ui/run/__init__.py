"""Running graphs from the editor: the queue and its worker (`runner.py`), progress on the
canvas (`run_presenter.py`), Ctrl+C in the terminal (`interrupt.py`)."""
