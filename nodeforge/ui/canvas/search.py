"""Quick add: a fuzzy search of node types by name and category (Tab, double-click, wire drop)."""
from __future__ import annotations

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QKeyEvent
from PySide6.QtWidgets import QFrame, QLabel, QLineEdit, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from nodeforge.core.registry import Registry
from nodeforge.core.spec import NodeSpec
from nodeforge.core.types import ports_compatible
from nodeforge.ui import theme
from nodeforge.ui.canvas.help_text import node_help


def fuzzy_score(query: str, text: str) -> float | None:
    """Higher is better; None when the letters of `query` do not appear in order in `text`."""
    q = query.lower().replace(" ", "")
    t = text.lower()
    if not q:
        return 0.0
    # An exact word start ranks first ("lat": Empty Latent above Set Latent Mask, where "lat"
    # is only inside "Latent" of a longer title); the title's own start and shorter titles win ties.
    compact, starts = "", []
    for word in t.replace("_", " ").replace("/", " ").split():
        starts.append(len(compact))
        compact += word
    for index, start in enumerate(starts):
        if compact.startswith(q, start):
            return 200.0 + (20 if index == 0 else 0) - len(compact) / 2
    if q in t.replace(" ", ""):
        start = t.replace(" ", "").find(q)
        return 100.0 - start + (20 if start == 0 else 0)
    score, pos, prev = 0.0, 0, -2
    for ch in q:
        found = t.find(ch, pos)
        if found < 0:
            return None
        score += 3 if found == prev + 1 else 1
        if found == 0 or not t[found - 1].isalnum() or (t[found].isupper()):
            score += 2
        prev = found
        pos = found + 1
    return score


def compatible(spec: NodeSpec, want: tuple[str, str] | None) -> bool:
    """`want` is ("input", TYPE): the node needs an input taking TYPE; ("output", TYPE) likewise."""
    if want is None:
        return True
    side, port_type = want
    if side == "input":
        return any(ports_compatible(port_type, str(i.type)) for i in spec.inputs)
    return any(ports_compatible(str(o.type), port_type) for o in spec.outputs)


def search(registry: Registry, query: str, want: tuple[str, str] | None = None) -> list[NodeSpec]:
    scored = []
    for index, spec in enumerate(registry):
        if not compatible(spec, want):
            continue
        best = None
        for text, weight in ((spec.title, 1.0), (spec.type, 0.95), (f"{spec.category} {spec.title}", 0.7)):
            s = fuzzy_score(query, text)
            if s is not None and (best is None or s * weight > best):
                best = s * weight
        if best is not None:
            scored.append((-best, spec.category, index, spec))
    scored.sort(key=lambda x: x[:3])
    return [s[-1] for s in scored]


def on_screen(pos: QPoint, size) -> QPoint:
    """Where a popup of `size` opened at `pos` stays whole on the screen under `pos`: pushed
    left from the right edge, and opened upwards from the bottom edge (as menus are)."""
    screen = QGuiApplication.screenAt(pos) or QGuiApplication.primaryScreen()
    if screen is None:
        return pos
    area = screen.availableGeometry()
    x = min(max(pos.x(), area.left()), area.right() + 1 - size.width())
    y = pos.y()
    if y + size.height() > area.bottom() + 1:
        y = pos.y() - size.height()
    y = min(max(y, area.top()), area.bottom() + 1 - size.height())
    return QPoint(max(x, area.left()), max(y, area.top()))


class NodeSearchPopup(QFrame):
    chosen = Signal(str)

    def __init__(self, registry: Registry, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        self.setObjectName("searchPopup")
        self.registry = registry
        self.want: tuple[str, str] | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        self.hint = QLabel()
        self.hint.setObjectName("panelCaption")
        layout.addWidget(self.hint)
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("Search nodes…")
        self.edit.textChanged.connect(self.refresh)
        self.edit.installEventFilter(self)
        layout.addWidget(self.edit)
        self.list = QListWidget()
        self.list.itemActivated.connect(lambda item: self._choose(item))
        self.list.itemClicked.connect(lambda item: self._choose(item))
        layout.addWidget(self.list)
        # What the highlighted node does, so a user picks by purpose, not only by name.
        self.help = QLabel()
        self.help.setObjectName("nodeHelp")
        self.help.setWordWrap(True)
        self.help.setMinimumHeight(64)
        self.help.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.help)
        self.list.currentItemChanged.connect(self._show_help)
        self.resize(360, 460)

    def open_at(self, global_pos: QPoint, want: tuple[str, str] | None = None) -> None:
        self.want = want
        self.hint.setText(f"Nodes with an {want[0]} of type {want[1]}" if want else "Add a node")
        self.hint.setVisible(True)
        self.edit.clear()
        self.refresh()
        self.move(on_screen(global_pos, self.size()))
        self.show()
        # The platform may place the shown window a few pixels off (frame margins): correct it.
        want = on_screen(global_pos, self.frameGeometry().size())
        shift = want - self.frameGeometry().topLeft()
        if shift.x() or shift.y():
            self.move(self.pos() + shift)
        self.edit.setFocus()

    def refresh(self) -> None:
        self.list.clear()
        for spec in search(self.registry, self.edit.text(), self.want):
            item = QListWidgetItem(f"{spec.title}    ·  {spec.category}")
            item.setData(Qt.ItemDataRole.UserRole, spec.type)
            item.setToolTip(node_help(spec))
            if spec.outputs:
                item.setForeground(QColor(theme.NODE_TEXT))
            self.list.addItem(item)
        if self.list.count():
            self.list.setCurrentRow(0)
        else:
            self.help.setText("No node type matches." if self.edit.text() else "")

    def _show_help(self, item: QListWidgetItem | None) -> None:
        spec = self.registry.get(item.data(Qt.ItemDataRole.UserRole)) if item is not None else None
        self.help.setText(node_help(spec) if spec is not None else "")

    def results(self) -> list[str]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def accept_current(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self._choose(item)

    def _choose(self, item: QListWidgetItem) -> None:
        node_type = item.data(Qt.ItemDataRole.UserRole)
        self.hide()
        self.chosen.emit(node_type)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802
        if obj is self.edit and isinstance(event, QKeyEvent) and event.type() == QKeyEvent.Type.KeyPress:
            key = event.key()
            if key in (Qt.Key.Key_Down, Qt.Key.Key_Up):
                row = self.list.currentRow() + (1 if key == Qt.Key.Key_Down else -1)
                self.list.setCurrentRow(max(0, min(self.list.count() - 1, row)))
                return True
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.accept_current()
                return True
            if key == Qt.Key.Key_Escape:
                self.hide()
                return True
        return super().eventFilter(obj, event)
