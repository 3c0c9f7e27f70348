"""The window's actions, menus, toolbar and canvas context menu, built from one table each.

The main window composes a WindowActions; slots stay on the window and its document
controller, so this module only says what the user can trigger and where it is shown. It is given
the parts it works on (document, selection edits, graph controller, scene, view, the dock panels)
and calls only the window's methods, never its attributes.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QMenu, QSpinBox, QToolButton

from nodeforge.core.types import ParamRole
from nodeforge.ui import theme
from nodeforge.ui.canvas.edges import EdgeItem, RerouteItem
from nodeforge.ui.canvas.group_item import GroupItem
from nodeforge.ui.canvas.node_item import NodeItem

if TYPE_CHECKING:  # pragma: no cover
    from nodeforge.core.registry import Registry
    from nodeforge.ui.canvas.editing import SelectionEdits
    from nodeforge.ui.canvas.scene import GraphScene
    from nodeforge.ui.canvas.view import GraphView
    from nodeforge.ui.files.document import DocumentController
    from nodeforge.ui.graph.controller import GraphController
    from nodeforge.ui.main_window import MainWindow

# One name for the run shortcut everywhere (menu, tooltip, README, Help > Shortcuts).
RUN_KEYS = "Ctrl+Enter"
GROUP_COLORS = {"Slate": "#3f5a7a", "Green": "#3d6b45", "Red": "#7a3f3f", "Purple": "#5d3f7a",
                "Amber": "#7a633f", "Teal": "#3f717a", "Grey": "#55585f"}
SHORTCUTS = [
    ("Tab, double-click", "add a node (search by name and category)"),
    ("drag port to port", "connect; incompatible ports dim; an input takes one wire"),
    ("drop a wire on the canvas", "add a node that fits, already connected"),
    ("drag from a connected input", "pick its wire up (drop on the canvas to remove it)"),
    ("double-click a wire", "add a reroute dot (Shift+drag a dot to wire from it)"),
    ("middle drag, Space+drag", "pan"),
    ("wheel", "zoom at the cursor"),
    ("F", "fit the graph (or the selection)"),
    (f"{RUN_KEYS} / Esc", "run / cancel (Run during a run queues the next)"),
    ("Ctrl+C, X, V, D", "copy, cut, paste (workflow JSON, works between windows), duplicate"),
    ("Delete", "delete the selection"),
    ("Ctrl+G", "group the selection (drag the group's title to move it with its nodes)"),
    ("Ctrl+B / Ctrl+M", "bypass (pass the input through) / mute (do not run)"),
    ("Alt+C, F2", "collapse, rename"),
    ("Ctrl+Shift+L", "arrange the graph in columns"),
    ("Ctrl+Shift+B", "batch: a grid or list of param values (right-click a param: Add to Batch Grid)"),
    ("Ctrl+Z / Ctrl+Shift+Z", "undo / redo every edit"),
    ("Ctrl+C in the terminal", "cancel the run and close (asking only about unsaved changes)"),
]


def shortcuts_html() -> str:
    """Help > Shortcuts: padded cells, so the key column never touches its description."""
    rows = "".join(f'<tr><td style="padding:3px 18px 3px 4px; white-space:nowrap"><b>{keys}</b></td>'
                   f'<td style="padding:3px 4px">{text}</td></tr>' for keys, text in SHORTCUTS)
    return f'<table cellspacing="0" cellpadding="0">{rows}</table>'


def make_action(win: "MainWindow", text: str, slot: Callable, shortcut: Any = None, icon: str | None = None,
                tip: str = "") -> QAction:
    action = QAction(text, win)
    if shortcut is not None:
        if isinstance(shortcut, (list, tuple)):
            action.setShortcuts([QKeySequence(s) for s in shortcut])
        else:
            action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    if icon:
        action.setIcon(theme.icon(icon))
    if tip:
        keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        action.setToolTip(f"{tip} ({keys})" if keys and keys not in tip else tip)
        action.setStatusTip(tip)
    action.triggered.connect(slot)
    win.addAction(action)
    return action


class WindowActions:
    """Every QAction of a main window, plus the menus and the toolbar that show them."""

    def __init__(self, win: "MainWindow", document: "DocumentController", edits: "SelectionEdits",
                 controller: "GraphController", scene: "GraphScene", view: "GraphView", registry: "Registry",
                 panels: list[QDockWidget]) -> None:
        self.win = win
        self.document = document
        self.edits = edits
        self.controller = controller
        self.stack = controller.stack
        self.scene = scene
        self.view = view
        self.registry = registry
        self.panels = panels        # their toggles go in the View menu, in this order
        self._file_actions()
        self._edit_actions()
        self._node_actions()
        self._run_actions()
        self._build_menus()
        self._build_toolbar()

    def _file_actions(self) -> None:
        win, doc, a, S = self.win, self.document, self._a, QKeySequence.StandardKey
        self.new = a("&New", doc.new_document, S.New, "new", "Start an empty graph")
        self.new_window = a("New &Window", win.new_window, "Ctrl+Shift+N")
        self.open = a("&Open…", doc.open_dialog, S.Open, "open", "Open a workflow (.json) or a NodeForge PNG")
        self.save = a("&Save", doc.save, S.Save, "save", "Save the workflow")
        self.save_as = a("Save &As…", doc.save_as, S.SaveAs)
        self.export_comfy = a("&Export to ComfyUI…", doc.export_comfyui, None, None,
                              "Write the graph as a ComfyUI workflow (for ComfyUI's editor) or API prompt")
        self.quit = a("&Quit", win.close, S.Quit)

    def _edit_actions(self) -> None:
        win, doc, edits, a, S = self.win, self.document, self.edits, self._a, QKeySequence.StandardKey
        self.undo = self.stack.createUndoAction(win, "&Undo")
        self.undo.setShortcuts(QKeySequence.keyBindings(S.Undo))
        self.undo.setIcon(theme.icon("undo"))
        self.redo = self.stack.createRedoAction(win, "&Redo")
        self.redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.redo.setIcon(theme.icon("redo"))
        win.addAction(self.undo)
        win.addAction(self.redo)
        self.cut = a("Cu&t", doc.cut, S.Cut)
        self.copy = a("&Copy", doc.copy, S.Copy)
        self.paste = a("&Paste", doc.paste, S.Paste)
        self.duplicate = a("&Duplicate", edits.duplicate, "Ctrl+D")
        self.delete = a("De&lete", win.delete_selection, [S.Delete, "Backspace"])
        self.select_all = a("Select &All", edits.select_all, S.SelectAll)

    def _node_actions(self) -> None:
        win, edits, a, view = self.win, self.edits, self._a, self.view
        flag = lambda name: lambda: edits.toggle_flag(name)  # noqa: E731
        self.add = a("&Add Node…", lambda: win.open_search(view.cursor_scene_pos()), None, "add",
                     "Add a node (Tab or double-click on the canvas)")
        self.rename = a("&Rename…", edits.rename_selected, "F2")
        self.collapse = a("Co&llapse", flag("collapsed"), "Alt+C")
        self.bypass = a("&Bypass", flag("bypassed"), "Ctrl+B", None, "Bypass: the node passes its input through")
        self.mute = a("&Mute", flag("muted"), "Ctrl+M", None, "Mute: the node and what needs it do not run")
        self.group = a("&Group Selection", edits.group_selection, "Ctrl+G")
        self.arrange = a("A&rrange Graph", edits.arrange, "Ctrl+Shift+L", None,
                         "Lay the nodes (or the selection) out in columns along the wires")
        self.fit = a("&Fit View", view.fit_selection, "F", "fit", "Fit the graph (or the selection) in view")
        self.aligns = [a(label, lambda _=False, m=mode: edits.align(m)) for mode, label in (
            ("left", "Align &Left"), ("right", "Align &Right"), ("top", "Align &Top"), ("bottom", "Align &Bottom"),
            ("hdistribute", "Distribute &Horizontally"), ("vdistribute", "Distribute &Vertically"))]

    def _run_actions(self) -> None:
        win, a = self.win, self._a
        # Ctrl+Return is the same key on most keyboards; it stays bound but the name shown is RUN_KEYS.
        self.run = a("&Run", lambda: win.run(), [RUN_KEYS, "Ctrl+Return"], "run", f"Run the graph ({RUN_KEYS})")
        self.cancel = a("&Cancel", win.cancel, "Esc", "cancel", "Cancel the run (Esc)")
        self.cancel.setEnabled(False)
        self.auto = a("&Auto-Queue on Change", win.auto_toggled, None, None,
                      "Run again after every change (a change during a run queues the next one)")
        self.batch_action = a("&Batch…", lambda: win.open_batch(), "Ctrl+Shift+B", None,
                              "Run a grid or a list of param values through the queue, with a contact sheet")
        self.train_action = a("&Train LoRA…", lambda: win.open_train(), None, None,
                              "Train a LoRA, DoRA or embedding on a folder of captioned images, with a loss "
                              "curve and sample images; the result appears in the model lists")
        self.auto.setCheckable(True)
        self.auto.setChecked(win.settings().value("autoQueue", False, type=bool))
        self.skip_saves = a("&Skip Unchanged Saves", win.skip_saves_toggled, None, None,
                            "A re-run that draws the same image as an earlier one this session does not "
                            "save another copy of it")
        self.skip_saves.setCheckable(True)
        self.skip_saves.setChecked(win.settings().value("skipUnchangedSaves", False, type=bool))

    def _a(self, *args: Any) -> QAction:
        return make_action(self.win, *args)

    def _build_menus(self) -> None:
        win, doc = self.win, self.document
        bar = win.menuBar()
        m = bar.addMenu("&File")
        m.addActions([self.new, self.new_window, self.open])
        self.recent_menu = m.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(lambda: doc.fill_recent(self.recent_menu))
        self.examples_menu = m.addMenu("&Examples")
        self.examples_menu.aboutToShow.connect(lambda: doc.fill_examples(self.examples_menu))
        m.addSeparator()
        m.addActions([self.save, self.save_as])
        m.addAction(self.export_comfy)
        m.addSeparator()
        m.addAction("Open &Output Folder", doc.open_output_folder)
        m.addSeparator()
        m.addAction(self.quit)
        m = bar.addMenu("&Edit")
        m.addActions([self.undo, self.redo])
        m.addSeparator()
        m.addActions([self.cut, self.copy, self.paste, self.duplicate, self.delete])
        m.addSeparator()
        m.addAction(self.select_all)
        m = bar.addMenu("&Node")
        m.addActions([self.add, self.rename, self.collapse, self.bypass, self.mute, self.group, self.arrange])
        m.addMenu("A&lign").addActions(self.aligns)
        self.view_menu = m = bar.addMenu("&View")
        m.addAction(self.fit)
        m.addActions([panel.toggleViewAction() for panel in self.panels])
        self.models_menu = m = bar.addMenu("&Models")
        m.addAction("&Installed Models…", win.show_models).setObjectName("installedModels")
        m.addAction("&Open Models Folder", win.open_models_folder).setObjectName("openModelsFolder")
        m.addAction("&Rescan Models", win.rescan_models).setObjectName("rescanModels")
        m = bar.addMenu("&Run")
        m.addActions([self.run, self.cancel])
        m.addSeparator()
        m.addAction(self.batch_action)
        m.addAction(self.train_action)
        m.addSeparator()
        m.addActions([self.auto, self.skip_saves])
        self._offload_menu(m.addMenu("&Offload Models"))
        m = bar.addMenu("&Help")
        m.addAction("&Canvas and Shortcuts", win.show_shortcuts)
        m.addAction("&About NodeForge", win.show_about)

    OFFLOAD = (("none", "&Keep on the GPU", "every model stays on the device (fastest)"),
               ("model", "Only the &Running Model on the GPU",
                "models wait in CPU memory; each moves to the GPU while it runs (Flux on a 24 GB card)"),
               ("sequential", "One &Layer at a Time", "each layer moves to the GPU for its own step (least GPU "
                                                       "memory, slowest)"))

    def _offload_menu(self, menu: QMenu) -> None:
        """Run > Offload Models: the engine's offload setting (nodes/placement.py), remembered."""
        from PySide6.QtGui import QActionGroup

        group = QActionGroup(menu)
        chosen = str(self.win.settings().value("offload", "none"))
        self.offload: dict[str, QAction] = {}
        for mode, text, tip in self.OFFLOAD:
            action = menu.addAction(text)
            action.setCheckable(True)
            action.setToolTip(tip)
            action.setStatusTip(tip)
            action.setChecked(mode == chosen)
            action.triggered.connect(lambda _=False, mode=mode: self.win.offload_chosen(mode))
            group.addAction(action)
            self.offload[mode] = action
        menu.setToolTipsVisible(True)
        self.win.engine.settings["offload"] = chosen if chosen in self.offload else "none"

    def _build_toolbar(self) -> None:
        tools = self.win.addToolBar("Main")
        tools.setObjectName("mainToolbar")
        tools.setMovable(False)
        tools.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        tools.addActions([self.new, self.open, self.save])
        tools.addSeparator()
        tools.addActions([self.undo, self.redo])
        tools.addSeparator()
        tools.addActions([self.add, self.fit])
        tools.addSeparator()
        tools.addAction(self.run)
        self.batch = QSpinBox()
        self.batch.setRange(1, 100)
        self.batch.setPrefix("× ")
        self.batch.setToolTip("Batch count: how many runs one Run queues (seeds set to increment or "
                              "randomize change between them)")
        self.batch.setKeyboardTracking(False)
        self.batch.setFixedWidth(64)
        tools.addWidget(self.batch)
        tools.addAction(self.cancel)
        for action, name in ((self.run, "runButton"), (self.cancel, "cancelButton")):
            button = tools.widgetForAction(action)
            if isinstance(button, QToolButton):
                button.setObjectName(name)
                button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toolbar = tools


def context_menu(win: "MainWindow", acts: WindowActions, item: Any, scene_pos: QPointF) -> QMenu:
    """The right-click menu for what is under the cursor: a node, a wire, a dot, a group or the canvas."""
    menu = QMenu(win)
    c = acts.controller
    if isinstance(item, NodeItem):
        if not item.isSelected():
            acts.scene.select_nodes([item.node_id])
        param = item.param_at(scene_pos)
        if param is not None:
            nid = item.node_id
            grid = menu.addAction(f"Add “{param.replace('_', ' ')}” to Batch Grid",
                                  lambda: win.add_to_grid(nid, param))
            grid.setObjectName("addToGrid")
            menu.addSeparator()
        painted = item.spec.param_with(ParamRole.PAINTED_MASK) if item.spec is not None else None
        if painted is not None:
            nid = item.node_id
            menu.addAction("Edit Mask…", lambda: win.edit_mask(nid, painted.name)).setObjectName("editMask")
            menu.addSeparator()
        menu.addActions([acts.rename, acts.collapse, acts.bypass, acts.mute])
        menu.addSeparator()
        menu.addActions([acts.copy, acts.cut, acts.duplicate, acts.group, acts.delete])
    elif isinstance(item, EdgeItem):
        menu.addAction("Disconnect", lambda: c.disconnect(item.dst, item.input_name))
        menu.addAction("Add Reroute Dot", lambda: c.add_reroute(item.dst, item.input_name,
                                                                (scene_pos.x(), scene_pos.y())))
    elif isinstance(item, RerouteItem):
        menu.addAction("Remove Reroute Dot", lambda: c.remove_reroutes([item.rid]))
    elif isinstance(item, GroupItem):
        index = item.index
        menu.addAction("Rename Group…", lambda: acts.edits.rename_group(index))
        colors = menu.addMenu("Color")
        for name, color in GROUP_COLORS.items():
            colors.addAction(name, lambda col=color: c.edit_group(index, color=col))
        menu.addAction("Fit Group to Its Nodes", lambda: acts.edits.fit_group(index))
        menu.addAction("Remove Group (Keep Nodes)", lambda: c.remove_group(index))
    else:
        add = menu.addMenu("Add Node")
        for category, specs in sorted(acts.registry.categories().items()):
            sub = add.addMenu(category)
            for spec in specs:
                sub.addAction(spec.title, lambda t=spec.type: c.add_node(t, (scene_pos.x(), scene_pos.y())))
        menu.addAction(acts.paste)
        menu.addSeparator()
        menu.addAction(acts.fit)
    return menu
