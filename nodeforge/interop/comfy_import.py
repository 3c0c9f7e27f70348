"""A ComfyGraph (see comfy_graph) as a NodeForge workflow, through the node table.

Mapped classes become their NodeForge node with the same id and title; reroutes become direct
wires (and NodeForge reroute dots where they were); PrimitiveNodes and constant nodes become the
params they feed; notes and groups go to the layout; any other class becomes a placeholder that
keeps its class, widgets and links. Everything approximated is reported as a warning line that
names the node.
"""
from __future__ import annotations

from typing import Any

from nodeforge.core.errors import short_repr
from nodeforge.core.placeholder import PLACEHOLDER_TYPE, RECORD_KEY, output_name, placeholder_message
from nodeforge.core.types import PortType
from nodeforge.core.workflow import NodeRef, Workflow
from nodeforge.interop import comfy_table as table
from nodeforge.interop.comfy_graph import ComfyGraph, ComfyNode
from nodeforge.interop.comfy_packs import describe
from nodeforge.interop.comfy_text import TEXT_OPS

MUTED, BYPASSED = 2, 4
# The editor's view: the ComfyUI offset is the canvas translation; NodeForge stores the centre.
_VIEW_HALF = (800.0, 450.0)
COMFY_KEY = RECORD_KEY     # per-node record of what only re-export needs (class, widget links, port types)


class _Warnings:
    """The import's notes, in the order first met; the same note on several nodes of one class is
    one line naming them all ("nodes 4, 9 (KSampler), sampler_name: ..."), not one line a node."""

    def __init__(self) -> None:
        self._notes: dict[tuple, list[str]] = {}     # (class, field, message) or (line,) -> node ids

    def add(self, node: ComfyNode | None, message: str, field: str | None = None) -> None:
        if node is None:
            self._notes.setdefault((message,), [])
            return
        ids = self._notes.setdefault((node.class_type, field, message), [])
        if node.id not in ids:
            ids.append(node.id)

    @property
    def lines(self) -> list[str]:
        out = []
        for key, ids in self._notes.items():
            if len(key) == 1:
                out.append(key[0])
                continue
            class_type, field, message = key
            where = (f"node {ids[0]}" if len(ids) == 1 else f"nodes {', '.join(ids)}") + f" ({class_type})"
            out.append(f"{where}{f', {field}' if field else ''}: {message}")
        return out


def to_workflow(graph: ComfyGraph, registry: Any | None = None) -> tuple[Workflow, list[str]]:
    return _Converter(graph, registry).run()


class _Converter:
    def __init__(self, graph: ComfyGraph, registry: Any | None) -> None:
        self.graph = graph
        self.registry = registry
        self.warnings = _Warnings()
        self.rows: dict[str, table.ClassMap | None] = {}
        self.output_names: dict[str, list[str]] = {}
        self.workflow = Workflow()
        self.dots: dict[str, dict[str, Any]] = {}
        self.old_controlnets: list[str] = []
        self.placeholders: dict[str, list[str]] = {}      # class -> ids of its placeholder nodes
        # KJNodes' named wires: each SetNode by its name (the first set wins, as the GetNode's list shows it)
        self.setters: dict[str, ComfyNode] = {}
        self.power: dict[str, list[tuple[str, float, float]]] = {}   # Power Lora Loader id -> its LoRAs on
        self.decodes: dict[str, ComfyNode] = {}    # nodes whose decoded-latent output is used (ClassMap.decoded)
        self.joined: dict[str, str] = {}           # text operations' ids -> the constant text each folds into
        self.folding: set[str] = set()             # the text operations being worked out (a loop stays unfolded)
        self.switches: dict[str, str] = {}         # Impact switches that are wires -> the input they pass
        for node in graph.nodes.values():
            name = self._constant(node) if node.class_type == table.SET_NODE else None
            if isinstance(name, str):
                self.setters.setdefault(name, node)

    # -- what each node becomes ------------------------------------------------------------------------
    def row(self, node: ComfyNode) -> table.ClassMap | None:
        row = table.BY_COMFY.get(node.class_type)
        if row is not None and self.registry is not None and row.nodeforge not in self.registry:
            return None
        return row

    def folded(self, node: ComfyNode) -> bool:
        return node.class_type in (*table.REROUTES, table.ANY_SWITCH, table.PRIMITIVE, table.SET_NODE,
                                   table.GET_NODE, *table.PRESET_TEXTS, *table.LABELS, *table.EDITOR_PANELS,
                                   *table.TEXT_PRINTS) \
            or node.class_type in table.VALUE_NODES or node.class_type in table.NOTES or node.id in self.joined \
            or self.idle(node) or node.id in self.switches

    def _impact_switches(self) -> dict[str, str]:
        """Impact Pack's switches that are wires: id -> the input their constant select picks ("input<n>")."""
        found = {}
        for node in self.graph.nodes.values():
            if node.class_type != table.IMPACT_SWITCH or node.mode != 0 or self.top_slot.get(node.id, -1) > 0:
                continue
            if "select" in node.links:
                origin = self.graph.nodes.get(node.links["select"][0])
                constant = origin is not None and (origin.class_type == table.PRIMITIVE
                                                   or origin.class_type in table.VALUE_NODES)
                select = self._value_of(origin, node, "select", node.links["select"][1]) if constant else None
            else:
                raw = node.values if node.values is not None else node.widgets
                select = raw.get("select") if isinstance(raw, dict) else (raw or [None])[0]
            if isinstance(select, int) and not isinstance(select, bool):
                found[node.id] = f"input{select}"
        return found

    def idle(self, node: ComfyNode) -> bool:
        """A node of table.IDLE_SOURCES whose outputs feed nothing: ComfyUI never runs it."""
        return node.class_type in table.IDLE_SOURCES and self.top_slot.get(node.id, -1) < 0

    def _fold(self, node: ComfyNode) -> str | None:
        """A text operation's result (comfy_text.TEXT_OPS) when each text it reads is a widget, a linked
        constant or another such operation; else None (it stays a placeholder; so does a loop of them)."""
        if node.id in self.joined or node.id in self.folding:
            return self.joined.get(node.id)
        self.folding.add(node.id)
        op = TEXT_OPS[node.class_type]
        raw = node.values if node.values is not None else node.widgets
        values = dict(raw) if isinstance(raw, dict) else dict(zip(op.widget_names(list(raw or [])), raw or []))
        for name in node.links:
            src = self.graph.nodes.get(node.links[name][0])
            if src is not None and src.class_type in TEXT_OPS:
                values[name] = self._fold(src)
            else:
                kind, found, _dot = self.source(node, name)
                values[name] = found if kind == "value" else None
        notes = table.Notes()
        text = op.work(values, notes)
        if text is None:
            return None
        for message in notes.messages:
            self.warnings.add(node, message)
        self.joined[node.id] = text
        return text

    def run(self) -> tuple[Workflow, list[str]]:
        nodes = self.graph.nodes
        for line in self.graph.warnings:
            self.warnings.add(None, line)
        self.top_slot: dict[str, int] = {}      # the highest output slot anything links to, per node
        for node in nodes.values():
            for src, slot in node.links.values():
                self.top_slot[src] = max(self.top_slot.get(src, -1), slot)
        self.switches = self._impact_switches()
        for node in nodes.values():
            if node.class_type in TEXT_OPS:
                self._fold(node)
        for node in nodes.values():
            if node.class_type == table.POWER_LORA:   # a chain of LoRA nodes, or a wire when none is on
                self.power[node.id] = table.power_loras(node.values if node.values is not None else node.widgets)
                if self.power[node.id]:
                    self.output_names[node.id] = ["unet", "clip"]
            elif not self.folded(node):
                row = self.row(node)
                self.rows[node.id] = row
                self.output_names[node.id] = list(row.outputs) if row is not None else self._placeholder_outputs(node)
        for node in nodes.values():
            if node.class_type in table.NOTES or node.class_type in table.LABELS:
                self._note(node)
            elif node.class_type in table.TEXT_PRINTS:
                self.warnings.add(node, "prints its text in ComfyUI's console: left out (its text goes on to what it "
                                        "feeds)")
            elif self.idle(node):
                self.warnings.add(node, "its outputs feed nothing and it is no output node, so ComfyUI never runs it: "
                                        "left out")
            elif node.class_type in table.EDITOR_PANELS:
                self.warnings.add(node, "an editor panel that mutes or bypasses groups in ComfyUI's editor (it never "
                                        "runs): left out; the nodes keep the modes the file saved")
            elif self.power.get(node.id):
                self._power_lora(node)
                self._layout(node)
            elif node.id in self.rows:
                row = self.rows[node.id]
                ref = self._mapped(node, row) if row is not None else self._placeholder(node)
                self.workflow.nodes[node.id] = ref
                self._layout(node)
        self._decoded_images()
        self._model_only_clips()
        self._old_controlnet_negatives()
        self._placeholder_types()
        self._placeholder_warnings()
        self._finish_layout()
        return self.workflow, self.warnings.lines

    def _placeholder_outputs(self, node: ComfyNode) -> list[str]:
        # Named by slot, whatever the file called them, so a UI file and its API prompt agree.
        return [output_name(slot) for slot in range(max(len(node.outputs), self.top_slot.get(node.id, -1) + 1))]

    # -- sources ------------------------------------------------------------------------------------------
    def source(self, consumer: ComfyNode, input_name: str) -> tuple[str, Any, str | None]:
        """("node", (id, output), dot) | ("value", value, dot) | ("kept", what, dot) (the consumer keeps the value
        it saved) | ("none", reason, dot) for a linked input.

        Reroutes are walked through; the reroute nearest the consumer becomes its dot.
        """
        src, slot = consumer.links[input_name]
        nodes = self.graph.nodes
        dot = None
        seen: set[str] = set()
        native = self.graph.via.get((consumer.id, input_name))
        if native is not None:
            dot = f"r{native}"
            self._dot(dot, self.graph.reroutes[native])
        while src in nodes and self._wire(src, slot):
            if src in seen:
                return ("none", "its reroutes form a loop", dot)
            seen.add(src)
            through = nodes[src]
            if dot is None and through.class_type in table.REROUTES:
                dot = f"r{through.id}"
                if through.pos is not None:
                    w, h = through.size or [75.0, 26.0]
                    self._dot(dot, [through.pos[0] + w / 2, through.pos[1] + h / 2])
            if through.class_type == table.GET_NODE:
                name = self._constant(through)
                through = self.setters.get(name) if isinstance(name, str) else None
                if through is None:
                    return ("none", f"GetNode {src} reads {name!r}, which no SetNode in the file sets", dot)
            links = self._passed_links(through)
            passed = dict(self.rows[through.id].passthrough) if self.rows.get(through.id) is not None else {}
            if self.power.get(through.id) == []:    # no LoRA on: its MODEL and CLIP are its inputs'
                passed = {0: "model", 1: "clip"}
            if through.id in self.rows or through.id in self.power:
                name = passed.get(slot, "")
                links = {name: through.links[name]} if name in through.links else {}
            if not links:
                return ("none", self._no_input(through), dot)
            src, slot = next(iter(links.values()))
        origin = nodes.get(src)
        if origin is None:
            return ("none", f"linked to node {src}, which is not in the file", dot)
        fixed = self._fixed_source(origin, consumer, input_name, slot)
        if fixed is not None:
            return (*fixed, dot)
        names = self.output_names.get(src)
        if names is None:
            return ("none", f"linked to node {src} ({origin.class_type}), which has no output here", dot)
        row = self.rows.get(src)
        if row is not None and row.decoded is not None and slot == row.decoded[0]:
            self.decodes.setdefault(src, origin)
            return ("node", (f"{src}.image", "image"), dot)
        if not 0 <= slot < len(names):
            return ("none", f"linked to output slot {slot} of node {src} ({origin.class_type}), which has "
                            f"{len(names)} output{'s' if len(names) != 1 else ''}", dot)
        return ("node", (src, names[slot]), dot)

    def _no_input(self, through: ComfyNode) -> str:
        """Why a wire-like node passes nothing on: no input at all, only muted ones, or (an Impact switch)
        a select that picks an input with no link."""
        if through.id in self.switches:
            return (f"ImpactSwitch {through.id} selects {self.switches[through.id]}, which has no link; link it, "
                    "or set select to a linked input")
        what = "reroute" if through.class_type in table.REROUTES else through.class_type
        return f"{what} {through.id} has no input" + (" from a node that is not muted" if through.links else "")

    def _fixed_source(self, origin: ComfyNode, consumer: ComfyNode, input_name: str,
                      slot: int) -> tuple[str, Any] | None:
        """("value", v) for a constant, a PrimitiveNode or a folded StringConcatenate; ("kept", what) for a preset
        text (the consumer keeps the value it saved); None for a node that runs."""
        if origin.class_type == table.PRIMITIVE or origin.class_type in table.VALUE_NODES:
            return ("value", self._value_of(origin, consumer, input_name, slot))
        if origin.class_type in TEXT_OPS and self._fold(origin) is not None:
            return ("value", self.joined[origin.id])
        if origin.class_type in table.PRESET_TEXTS:
            return ("kept", f"{origin.class_type} {origin.id} (preset {self._constant(origin)!r})")
        return None

    def _wire(self, src: str, slot: int) -> bool:
        """Whether output `slot` of node `src` is only a wire: a reroute, a switch, a named wire, a Power
        Lora Loader with no LoRA on, or a mapped class's pass-through output."""
        if self.graph.nodes[src].class_type in (*table.REROUTES, table.ANY_SWITCH, table.SET_NODE, table.GET_NODE,
                                                *table.TEXT_PRINTS):
            return True
        row = self.rows.get(src)
        return self.power.get(src) == [] or (row is not None and slot in dict(row.passthrough)) \
            or src in self.switches

    def _decoded_images(self) -> None:
        """A VAEDecode (id.image) for each mapped node whose decoded-latent output something uses."""
        for nid, node in self.decodes.items():
            vae_input = self.rows[nid].decoded[1]
            ref = NodeRef("VAEDecode", {}, {"latent": (nid, "latent")})
            kind, found, _dot = self.source(node, vae_input) if vae_input in node.links else ("none", None, None)
            if kind == "node":
                ref.inputs["vae"] = found
            else:
                self.warnings.add(node, f"its IMAGE output needs a VAE: connect the model's VAE to the vae input of "
                                        f"node {nid}.image (VAE Decode)", vae_input)
            self.workflow.nodes[f"{nid}.image"] = ref
            if node.pos is not None:
                below = [node.pos[0] + 40.0, node.pos[1] + 40.0]
                self.workflow.ui.setdefault("positions", {})[f"{nid}.image"] = below

    def _power_lora(self, node: ComfyNode) -> None:
        """rgthree's Power Lora Loader as LoRA nodes in a chain, the last one under its id (so what it
        feeds stays linked); the others are `id.1`, `id.2`, ... placed above it."""
        entries = self.power[node.id]
        links: dict[str, tuple[str, str] | None] = {"unet": None, "clip": None}
        for comfy_name, nf_name in (("model", "unet"), ("clip", "clip")):
            if comfy_name in node.links:
                kind, found, _dot = self.source(node, comfy_name)
                if kind == "node":
                    links[nf_name] = found
                else:
                    self.warnings.add(node, f"{found}; the input is left unconnected", comfy_name)
        for k, (name, strength_unet, strength_clip) in enumerate(entries, 1):
            nid = node.id if k == len(entries) else f"{node.id}.{k}"
            ref = NodeRef("LoRALoader", {"lora": name, "strength_unet": strength_unet, "strength_clip": strength_clip},
                          {key: value for key, value in links.items() if value is not None},
                          title=self._title(node, None) if nid == node.id else None)
            self.workflow.nodes[nid] = ref
            if nid != node.id and node.pos is not None:
                above = 60.0 * (len(entries) - k)
                self.workflow.ui.setdefault("positions", {})[nid] = [node.pos[0], node.pos[1] - above]
            links = {"unet": (nid, "unet"), "clip": (nid, "clip")}

    def _passed_links(self, through: ComfyNode) -> dict[str, tuple[str, int]]:
        """The links a wire-like node passes on: a switch's chosen input, else all of its links."""
        if through.class_type == table.ANY_SWITCH:
            return self._switched(through)
        if through.id in self.switches:
            picked = self.switches[through.id]
            return {picked: through.links[picked]} if picked in through.links else {}
        return through.links

    def _switched(self, switch: ComfyNode) -> dict[str, tuple[str, int]]:
        """An Any Switch's inputs, in order, from the first whose node gives a value: not muted, and not bypassed
        with nothing linked to pass on (ComfyUI gives none from those, so the switch passes the next: corpus 047's
        bypassed EmptySD3LatentImage before its VAEEncode)."""
        nodes = self.graph.nodes

        def gives(source: str) -> bool:
            node = nodes.get(source)
            return node is None or not (node.mode == MUTED or (node.mode == BYPASSED and not node.links))
        live = [(name, link) for name, link in sorted(switch.links.items()) if gives(link[0])]
        return dict(live[:1])

    @staticmethod
    def _constant(origin: ComfyNode) -> Any:
        if isinstance(origin.widgets, list) and origin.widgets:
            return origin.widgets[0]
        if isinstance(origin.widgets, dict) and origin.widgets:
            return origin.widgets.get("value", next(iter(origin.widgets.values())))
        if origin.values:
            return origin.values.get("value", next(iter(origin.values.values())))
        return None

    def _value_of(self, origin: ComfyNode, consumer: ComfyNode, input_name: str, slot: int) -> Any:
        """A constant node's value (output `slot`'s, worked out from its widgets for table.COMPUTED); rgthree's
        Seed below 0 (-1: a new seed each run, -2: the last one + 1) becomes seed 0 with the editor's seed
        control doing that after each run."""
        if origin.class_type in table.COMPUTED:
            names, work_out = table.COMPUTED[origin.class_type]
            raw = origin.values if origin.values is not None else origin.widgets
            notes = table.Notes()
            value = work_out(dict(raw) if isinstance(raw, dict) else dict(zip(names, raw or [])), slot, notes)
            for message in notes.messages:
                self.warnings.add(origin, message)
            return value
        value = self._constant(origin)
        if origin.class_type != table.RGTHREE_SEED or not isinstance(value, int) or value >= 0:
            return value
        control = {-1: "randomize", -2: "increment"}.get(value)
        if control is not None:
            self.workflow.ui.setdefault("seed_control", {})[consumer.id] = control
        done = f"set to {control} after each run in the editor" if control else "fixed"
        self.warnings.add(consumer, f"Seed (rgthree) {origin.id} gives {value} (rgthree picks the seed when the graph is "
                                    f"queued); NodeForge starts at 0, {done}", input_name)
        return 0

    def _dot(self, rid: str, pos: list[float]) -> None:
        self.dots.setdefault(rid, {"pos": [float(pos[0]), float(pos[1])], "links": []})

    # -- mapped nodes -------------------------------------------------------------------------------------
    def _named_values(self, node: ComfyNode, row: table.ClassMap) -> dict[str, Any]:
        if node.values is not None:
            values = dict(node.values)
            for widget in row.widgets:
                given = next((name for name in widget.aliases if name in values), None)
                if widget.comfy not in values and given is not None:
                    values[widget.comfy] = values.pop(given)
            return values
        raw = node.widgets
        if isinstance(raw, dict):
            return dict(raw)
        values: dict[str, Any] = {}
        raw = raw or []
        i = 0
        for widget in row.widgets:
            if i >= len(raw):
                break
            values[widget.comfy] = raw[i]
            i += 1
            if widget.seed and i < len(raw) and (isinstance(raw[i], bool) or raw[i] in table.CONTROL_VALUES):
                self._seed_control(node, raw[i])   # control_after_generate: what the editor does after a run
                i += 1
        return values

    def _leftover_values(self, node: ComfyNode, row: table.ClassMap, values: dict[str, Any]) -> None:
        """A warning for each value no widget takes: a name NodeForge lacks, or a link input given
        something that is no link (an API prompt's `[6.0, 0]` or `["6", "0"]`)."""
        ports = {c for c, _ in row.inputs}
        known = {w.comfy for w in row.widgets} | ports | set(row.optional_inputs) | table.EDITOR_ONLY_INPUTS
        for name in values:
            if name not in known:
                self.warnings.add(node, f"{row.comfy}'s {name!r} has no NodeForge equivalent; it is ignored")
            elif name in ports and row.widget(name) is None and name not in node.links:
                self.warnings.add(node, f"{short_repr(values[name])} is not a link ([node id, output slot number]); "
                                        "the input is left unconnected", name)

    def _seed_control(self, node: ComfyNode, control: Any) -> None:
        """The seed's control_after_generate as the editor's seed control (as ComfyUI: after each run)."""
        if control in ("increment", "randomize"):
            self.workflow.ui.setdefault("seed_control", {})[node.id] = control
        elif control == "decrement":
            self.warnings.add(node, "its seed is set to decrement after each run, which NodeForge's editor does not "
                                    "do; the seed stays as it is (choose increment or randomize on the node)")

    def _mapped(self, node: ComfyNode, row: table.ClassMap) -> NodeRef:
        values = self._named_values(node, row)
        notes = table.Notes()
        ref = NodeRef(row.nodeforge, title=self._title(node, row))
        comfy_extra: dict[str, Any] = {}
        for name in list(node.links):
            nf_input = row.nf_input(name)
            kind, found, dot = self.source(node, name)
            if nf_input is not None:
                if kind == "node":
                    ref.inputs[nf_input] = found
                    if dot is not None:
                        self.dots[dot]["links"].append([node.id, nf_input])
                elif kind == "none":
                    self.warnings.add(node, f"{found}; the input is left unconnected", name)
                elif kind == "value":
                    self._constant_input(node, name, nf_input, found, ref)
                continue
            widget = row.widget(name)
            if widget is None:
                if name not in row.optional_inputs:
                    self.warnings.add(node, f"NodeForge's {row.nodeforge} has no input for this; its link is dropped",
                                      name)
                continue
            if kind == "node" and widget.wireable and self.rows.get(found[0]) is not None:
                ref.inputs[widget.target] = found      # a value from a node NodeForge runs: the wire stays
                if dot is not None:
                    self.dots[dot]["links"].append([node.id, widget.target])
                continue
            self._widget_source(node, name, kind, found, values, comfy_extra)
        for widget in row.widgets:
            target = widget.target
            if target is None:
                continue
            if widget.comfy in values:
                ref.params[target] = widget.load(values[widget.comfy], notes)
            elif (node.values is None or widget.comfy not in node.links) and not widget.absent_ok:
                self.warnings.add(node, "no value in the file; NodeForge's default is used", widget.comfy)
        self._leftover_values(node, row, values)
        if row.derive is not None:
            row.derive(values, ref.params, notes)
        for message in notes.messages:
            self.warnings.add(node, message)
        if row.note:
            self.warnings.add(node, row.note)
        ref.params.update(row.fixed)
        order = [nf for _c, nf in row.inputs] + [w.target for w in row.widgets]
        ref.inputs = dict(sorted(ref.inputs.items(), key=lambda item: order.index(item[0])))
        if len(table.rows_for(row.nodeforge)) > 1 and row.remember:
            comfy_extra["class_type"] = row.comfy
        if row.comfy == "ControlNetApply":
            self.old_controlnets.append(node.id)
        if row.through is not None:
            self._through(node, row, ref)
        if comfy_extra:
            ref.extra[COMFY_KEY] = comfy_extra
        return ref

    def _constant_input(self, node: ComfyNode, comfy_input: str, nf_input: str, value: Any, ref: NodeRef) -> None:
        """A constant (PrimitiveFloat, FloatConstant ...) linked to an input that is no widget (a Simple Calculator's
        b): a Math Expression giving that number, added as <id>.<input>; a text or other value is said and dropped."""
        if not isinstance(value, (bool, int, float)) or value != value or value in (float("inf"), float("-inf")):
            self.warnings.add(node, f"its value {short_repr(value)} comes from a constant, which NodeForge cannot pass "
                                    "into this input; the input is left unconnected", comfy_input)
            return
        nid = f"{node.id}.{comfy_input}"
        output = "bool" if isinstance(value, bool) else "int" if isinstance(value, int) else "float"
        expression = str(int(value)) if isinstance(value, bool) else repr(value)
        self.workflow.nodes[nid] = NodeRef("MathExpression", {"expression": expression, "style": "ComfyUI"}, {})
        ref.inputs[nf_input] = (nid, output)
        if node.pos is not None:
            self.workflow.ui.setdefault("positions", {})[nid] = [node.pos[0] - 40.0, node.pos[1] + 40.0]

    def _through(self, node: ComfyNode, row: table.ClassMap, ref: NodeRef) -> None:
        """The NodeForge node between an input and the node (ClassMap.through), added as <id>.<input> beside it."""
        comfy_input, node_type, its_input, its_output = row.through
        nf_input = row.nf_input(comfy_input)
        if nf_input not in ref.inputs:
            return
        nid = f"{node.id}.{comfy_input}"
        self.workflow.nodes[nid] = NodeRef(node_type, {}, {its_input: ref.inputs[nf_input]})
        ref.inputs[nf_input] = (nid, its_output)
        if node.pos is not None:
            self.workflow.ui.setdefault("positions", {})[nid] = [node.pos[0] - 40.0, node.pos[1] + 40.0]

    def _widget_source(self, node: ComfyNode, name: str, kind: str, found: Any, values: dict[str, Any],
                       comfy_extra: dict[str, Any]) -> None:
        """A widget fed by a link: a constant's value, the value it saved (a preset text), or a node NodeForge
        cannot run (the saved value is used and the link kept for export)."""
        shown = f"{values[name]!r}" if name in values else "NodeForge's default"
        if kind == "value":
            values[name] = found
        elif kind == "kept":
            self.warnings.add(node, f"its text comes from {found}, whose presets live in the browser that made the "
                                    f"file; using the text this node saved, {shown} (the preset's text when the "
                                    "graph was last queued)", name)
        elif kind == "node":
            src, out = found
            comfy_extra.setdefault("widget_links", {})[name] = [src, out]
            literal = self._literal(src, name) if name not in values and self.rows.get(src) is None else None
            if literal is not None:
                values[name] = literal[1]
                shown = f"{literal[1]!r}, node {src}'s {literal[0]}"
            why = "whose value NodeForge cannot wire into this setting" if self.rows.get(src) is not None \
                else "which NodeForge cannot run"
            self.warnings.add(node, f"its value comes from node {src}, {why}; using {shown} (the link is kept for "
                                    "export)", name)

    def _literal(self, src: str, name: str) -> tuple[str, Any] | None:
        """(input, value): the value an API prompt's node `src` (one NodeForge cannot run) holds for a widget called
        `name` (sampler_name and sampler, scheduler and scheduler_name count as one), as a settings node such as
        Image Saver's Input Parameters passes its own values on; None when it holds none. The consumer, which in an
        API prompt saved no value of its own, then takes it and exports it back."""
        origin = self.graph.nodes.get(src)
        if origin is None or origin.values is None:
            return None
        key = name.removesuffix("_name")
        return next(((given, value) for given, value in origin.values.items()
                     if given.removesuffix("_name") == key and isinstance(value, (bool, int, float, str))), None)

    def _title(self, node: ComfyNode, row: table.ClassMap | None) -> str | None:
        title = node.title
        if title is None or title == node.class_type or (row is not None and title == row.display):
            return None
        return title

    # -- placeholders -------------------------------------------------------------------------------------
    def _placeholder(self, node: ComfyNode) -> NodeRef:
        params: dict[str, Any] = {"class_type": node.class_type}
        params.update(_placeholder_widgets(node))
        count = len(self.output_names[node.id])
        types = [t for _n, t in node.outputs] + ["*"] * count
        record = {"inputs": {name: node.input_types.get(name, "*") for name in node.links},
                  "outputs": types[:count]}
        record.update(describe(node.class_type, node.cnr_id, node.aux_id))
        if isinstance(node.widgets, list) and isinstance(params.get("widgets"), dict):
            record["widgets_values"] = list(node.widgets)    # as the UI file lists them, for a UI export
            record["widget_types"] = {name: node.input_types.get(name, "*") for name in params["widgets"]}
        ref = NodeRef(PLACEHOLDER_TYPE, params, title=self._title(node, None), extra={COMFY_KEY: record})
        for name in node.links:
            kind, found, dot = self.source(node, name)
            if kind == "node":
                ref.inputs[name] = found
                if dot is not None:
                    self.dots[dot]["links"].append([node.id, name])
            elif kind == "value":
                if "widgets" in params:
                    params["widgets"][name] = found
            elif kind != "kept":     # a preset text: the widget keeps the value it saved
                self.warnings.add(node, f"{found}; the input is left unconnected", name)
        self.placeholders.setdefault(node.class_type, []).append(node.id)
        return ref

    def _placeholder_warnings(self) -> None:
        """One line per class, however many nodes of it the file has (with their count and ids)."""
        for class_type, ids in self.placeholders.items():
            shown = ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")
            where = f"node {ids[0]}" if len(ids) == 1 else f"{len(ids)} nodes ({shown})"
            message = placeholder_message(self.workflow.nodes[ids[0]]).split(" (its widgets")[0]
            self.warnings.add(None, f"{where} ({class_type}): {message}; kept as a placeholder (its widgets and links "
                                    "are kept for export, but the graph cannot run until it is replaced or bypassed)")

    def _placeholder_types(self) -> None:
        """Port types an API prompt does not record, read from the NodeForge nodes on the other end."""
        if self.registry is None:
            return
        nodes = self.workflow.nodes
        consumers: dict[str, list[NodeRef]] = {}
        for consumer in nodes.values():
            for src, _out in consumer.inputs.values():
                if src in nodes and nodes[src].type == PLACEHOLDER_TYPE:
                    consumers.setdefault(src, []).append(consumer)
        for nid, ref in nodes.items():
            if ref.type != PLACEHOLDER_TYPE:
                continue
            record = ref.extra[COMFY_KEY]
            for name, (src, out) in ref.inputs.items():
                spec = self.registry.get(nodes[src].type) if src in nodes else None
                if record["inputs"].get(name) == "*" and spec is not None and spec.output(out) is not None:
                    record["inputs"][name] = str(spec.output(out).type)
            for consumer in consumers.get(nid, []):
                spec = self.registry.get(consumer.type)
                for name, (src, out) in consumer.inputs.items():
                    slot = int(out.rsplit("_", 1)[1]) if src == nid and out.startswith("output_") else -1
                    if 0 <= slot < len(record["outputs"]) and record["outputs"][slot] == "*" \
                            and spec is not None and spec.input(name) is not None:
                        record["outputs"][slot] = str(spec.input(name).type)

    # -- LoraLoaderModelOnly: NodeForge's LoRA node takes the model's own CLIP at strength 0 -------------------
    def _model_only_clips(self) -> None:
        """Wire the CLIP of the nearest node up the MODEL chain that gives one (by port type)."""
        nodes = self.workflow.nodes
        for nid, ref in nodes.items():
            if ref.extra.get(COMFY_KEY, {}).get("class_type") != "LoraLoaderModelOnly" or "clip" in ref.inputs:
                continue
            seen: set[str] = set()
            link = ref.inputs.get("unet")
            while link is not None and link[0] in nodes and link[0] not in seen:
                seen.add(link[0])
                up = nodes[link[0]]
                spec = self.registry.get(up.type) if self.registry is not None else None
                if spec is None:
                    break
                clip = next((o.name for o in spec.outputs if o.type == PortType.CLIP), None)
                if clip is not None:
                    ref.inputs["clip"] = (link[0], clip)
                    break
                model_in = next((i.name for i in spec.inputs if i.type == PortType.MODEL), None)
                link = up.inputs.get(model_in) if model_in else None
            if "clip" not in ref.inputs and self._only_clip(nid) is not None:
                ref.inputs["clip"] = self._only_clip(nid)    # a diffusion-model loader's chain: the graph's one CLIP

    def _only_clip(self, nid: str) -> tuple[str, str] | None:
        """The output of the graph's only CLIP source (a UNETLoader graph loads its CLIP apart), or of the only one
        in node `nid`'s subgraph (ids "433:89" and "433:38"; a file with one edit graph per subgraph), or None.
        At strength 0 the LoRA leaves it as it is; NodeForge's LoRA node only needs one to take."""
        found = []
        for source, node in self.workflow.nodes.items():
            spec = self.registry.get(node.type) if self.registry is not None else None
            if spec is None or any(i.type == PortType.CLIP for i in spec.inputs):
                continue    # not a source: it passes a CLIP on (a LoRA, CLIP Set Last Layer)
            found += [(source, o.name) for o in spec.outputs if o.type == PortType.CLIP]
        scope = nid.rpartition(":")[0]
        if len(found) > 1 and scope:
            found = [f for f in found if f[0].rpartition(":")[0] == scope]
        return found[0] if len(found) == 1 else None

    # -- ControlNetApply (one prompt): NodeForge's takes both, so the negative is wired through it ------
    def _old_controlnet_negatives(self) -> None:
        from nodeforge.core.validate import topological_order

        nodes = self.workflow.nodes
        order, _cycle = topological_order(self.workflow)
        later = [nid for nid in reversed(order) if nid in self.old_controlnets]   # nearest the sampler first
        for nid in later:
            consumer = next((c for c in nodes.values() if c.inputs.get("positive") == (nid, "positive")
                             and "negative" in c.inputs), None)
            if consumer is None:
                self.warnings.add(self.graph.nodes[nid], "no sampler after it takes a negative prompt; connect one "
                                                         "to its negative input")
                continue
            nodes[nid].inputs["negative"] = consumer.inputs["negative"]
            consumer.inputs["negative"] = (nid, "negative")

    # -- layout ----------------------------------------------------------------------------------------------
    def _layout(self, node: ComfyNode) -> None:
        ui = self.workflow.ui
        if node.pos is not None:
            ui.setdefault("positions", {})[node.id] = node.pos
        if node.size is not None:
            ui.setdefault("sizes", {})[node.id] = node.size
        if node.collapsed:
            ui.setdefault("collapsed", []).append(node.id)
        if node.mode == MUTED:
            ui.setdefault("muted", []).append(node.id)
        elif node.mode == BYPASSED:
            ui.setdefault("bypassed", []).append(node.id)

    def _note(self, node: ComfyNode) -> None:
        label = node.class_type in table.LABELS      # a pack's label: its title is the text it shows
        text = node.title if label else self._constant(node)
        note: dict[str, Any] = {"id": node.id, "text": text if isinstance(text, str) else "",
                                "markdown": node.class_type == "MarkdownNote"}
        if node.title and node.title not in table.NOTES and not label:
            note["title"] = node.title
        if node.pos is not None:
            note["pos"] = node.pos
        if node.size is not None:
            note["size"] = node.size
        if node.color:
            note["color"] = node.color
        self.workflow.ui.setdefault("notes", []).append(note)

    def _finish_layout(self) -> None:
        ui = self.workflow.ui
        if self.graph.groups:
            ui["groups"] = [dict(g) for g in self.graph.groups]
        dots = {rid: dot for rid, dot in self.dots.items() if dot["links"]}
        if dots:
            ui["reroutes"] = dots
        ds = self.graph.viewport
        if ds is not None:
            scale, offset = ds.get("scale"), ds.get("offset")
            if isinstance(offset, dict):
                offset = [offset.get("0"), offset.get("1")]
            if (isinstance(scale, (int, float)) and not isinstance(scale, bool) and 0.01 <= scale <= 100
                    and isinstance(offset, list) and len(offset) == 2
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in offset)):
                ui["viewport"] = {"center": [round(-offset[0] + _VIEW_HALF[0] / scale, 1),
                                             round(-offset[1] + _VIEW_HALF[1] / scale, 1)],
                                  "zoom": float(scale)}


def _placeholder_widgets(node: ComfyNode) -> dict[str, Any]:
    """{"widgets": {name: value}}, or {"widgets_values": [...]} where the file does not name them.

    An API prompt names every value. A UI file lists them by position; newer ComfyUI editors also
    list each widget among the node's inputs, which names them (the control_after_generate value
    after a seed is not a widget of the node and is dropped).
    """
    if node.values is not None:
        return {"widgets": dict(node.values)}
    if isinstance(node.widgets, dict):
        return {"widgets": dict(node.widgets)}
    values = list(node.widgets or [])
    names = [name for name in node.input_order if name in node.widget_inputs]
    if len(names) == len(values):
        return {"widgets": dict(zip(names, values))}
    kept = drop_controls(values)
    if len(names) == len(kept):
        return {"widgets": dict(zip(names, kept))}
    return {"widgets_values": values}


def drop_controls(values: list[Any]) -> list[Any]:
    """A UI file's widget values without the control_after_generate value after each whole number."""
    return [v for i, v in enumerate(values)
            if not (i > 0 and isinstance(v, str) and v in table.CONTROL_VALUES
                    and isinstance(values[i - 1], int) and not isinstance(values[i - 1], bool))]
