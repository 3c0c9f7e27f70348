"""The Problems panel: every problem of the last failed run, each with its node; a click centres it.

The status bar has room for one line; this list has room for all of them, in full.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDockWidget, QListWidget, QListWidgetItem, QWidget

from nodeforge.core.errors import Problem


class ProblemsPanel(QDockWidget):
    nodeActivated = Signal(str)     # the node a problem belongs to

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Problems", parent)
        self.setObjectName("problemsPanel")
        self.list = QListWidget()
        self.list.setWordWrap(True)
        self.list.setAlternatingRowColors(True)
        self.list.itemClicked.connect(self._clicked)
        self.list.itemActivated.connect(self._clicked)
        self.setWidget(self.list)

    def set_problems(self, problems: list[Problem], titles: dict[str, str]) -> None:
        """`titles`: node id -> the title shown on the canvas."""
        self.list.clear()
        for problem in problems:
            where = ""
            if problem.node_id:
                where = f"{titles.get(problem.node_id, problem.node_type or '?')} (node {problem.node_id})"
                if problem.field:
                    where += f", {problem.field}"
                where += ": "
            item = QListWidgetItem(where + problem.message)
            item.setData(Qt.ItemDataRole.UserRole, problem.node_id)
            item.setToolTip(str(problem))
            self.list.addItem(item)
        self.setWindowTitle(f"Problems ({len(problems)})" if problems else "Problems")

    def count(self) -> int:
        return self.list.count()

    def text(self, row: int) -> str:
        return self.list.item(row).text()

    def _clicked(self, item: QListWidgetItem) -> None:
        nid = item.data(Qt.ItemDataRole.UserRole)
        if nid:
            self.nodeActivated.emit(str(nid))
