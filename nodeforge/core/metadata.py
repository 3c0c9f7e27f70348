"""How an image was made, read from its workflow through declared roles, never node or param names.

One extractor serves everything that describes a result: the A1111 `parameters` text that the
pack writes into PNGs (nodes/images.py) and the editor's image panel. From an output node it
walks upstream to the nearest node with a SEED param or a NOISE input, the sampler, and reads:
- the sampler's own roles: seed, steps, cfg, sampler, schedule, denoise; a role it lacks is read
  from the nodes it takes NOISE, GUIDER, SAMPLER and SIGMAS from (ComfyUI's custom sampling: the
  seed on RandomNoise, cfg and the prompts on CFGGuider, steps on BasicScheduler), as are the
  prompts and the model when the sampler has no such inputs;
- the prompt: the nearest PROMPT param through the sampler's POSITIVE input, along
  CONDITIONING wires (area and combine nodes pass through; a node that carries both prompts,
  such as a ControlNet, is passed through its own POSITIVE input); the negative likewise
  through NEGATIVE;
- the checkpoint and the LoRAs along its MODEL wires (params naming a checkpoint or a LoRA file,
  each LoRA with its LORA_STRENGTH);
- the size and batch size along its LATENT wires (WIDTH, HEIGHT, BATCH_SIZE).
Torch-free and Qt-free, like the rest of core.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Iterator

from nodeforge.core import graph
from nodeforge.core.types import FileKind, InputRole, ParamRole, PortType

if TYPE_CHECKING:  # pragma: no cover
    from nodeforge.core.registry import Registry
    from nodeforge.core.spec import NodeSpec
    from nodeforge.core.workflow import Workflow


@dataclass(frozen=True)
class LoraUse:
    """A LoRA applied on the way to the sampler's model: its file name and model strength."""

    name: str
    strength: float | None = None


@dataclass(frozen=True, eq=True)
class GenerationInfo:
    """The settings that made an image. Fields the graph does not declare stay None (or empty).

    `params` holds every param of the sampler node (defaults filled in), for displays that show
    them all. `seed` is the sampler's seed; `for_item(i)` gives item i of a batch, drawn from
    seed + i.
    """

    sampler_node: str | None = None
    params: dict[str, Any] = field(default_factory=dict, hash=False)
    seed: int | None = None
    seed_param: str | None = None
    steps: int | None = None
    cfg: float | None = None
    sampler: str | None = None
    schedule: str | None = None
    denoise: float | None = None
    prompt: str = ""
    prompt_node: str | None = None
    negative: str = ""
    negative_node: str | None = None
    width: int | None = None
    height: int | None = None
    batch_size: int | None = None
    model: str | None = None
    loras: tuple[LoraUse, ...] = ()
    seed_limit: int | None = None   # the seed param's maximum; seed + i wraps past it

    def for_item(self, index: int) -> "GenerationInfo":
        """The info of item `index` of the batch: its seed is the one that redraws it alone."""
        if self.seed is None or index == 0:
            return self
        seed = self.seed + index
        if self.seed_limit is not None:
            seed %= self.seed_limit + 1
        return replace(self, seed=seed)


# The parts a sampler can be made of (ComfyUI's custom sampling): noise, guider, stepping method and
# sigmas come from nodes of their own, and their settings are the sampler's.
_SAMPLER_PARTS = (PortType.NOISE, PortType.GUIDER, PortType.SAMPLER, PortType.SIGMAS)


def generation_info(workflow: "Workflow", registry: "Registry", output_node: str,
                    index: int = 0) -> GenerationInfo:
    """What made the image(s) of `output_node`; `index` is the image's place in its batch."""
    reader = _Reader(workflow, registry)
    sampler = graph.nearest_upstream(workflow, output_node, reader.is_sampler)
    if sampler is None:
        return GenerationInfo()
    parts = list(graph.walk_upstream(workflow, sampler, follow=reader.along(*_SAMPLER_PARTS)))
    seed_node = reader.first(parts, ParamRole.SEED)
    seed_decl = reader.param(seed_node, ParamRole.SEED)
    guided = next((nid for nid in parts if reader.takes(nid, role=InputRole.POSITIVE)), sampler)
    modelled = next((nid for nid in parts if reader.takes(nid, port_type=PortType.MODEL)), sampler)
    width_node = reader.nearest(sampler, ParamRole.WIDTH, PortType.LATENT)
    batch_node = reader.nearest(sampler, ParamRole.BATCH_SIZE, PortType.LATENT)
    model_node = reader.nearest(modelled, ParamRole.MODEL, PortType.MODEL, FileKind.CHECKPOINT)
    prompt_node = reader.prompt_node(guided, InputRole.POSITIVE)
    negative_node = reader.prompt_node(guided, InputRole.NEGATIVE)

    def setting(kind: type, role: ParamRole) -> Any:
        return _as(kind, reader.value(reader.first(parts, role), role))

    info = GenerationInfo(
        sampler_node=sampler, params=reader.values(sampler),
        seed=setting(int, ParamRole.SEED), seed_param=seed_decl.name if seed_decl is not None else None,
        seed_limit=int(seed_decl.max) if seed_decl is not None and seed_decl.max is not None else None,
        steps=setting(int, ParamRole.STEPS), cfg=setting(float, ParamRole.CFG),
        sampler=setting(str, ParamRole.SAMPLER), schedule=setting(str, ParamRole.SCHEDULE),
        denoise=setting(float, ParamRole.DENOISE),
        prompt=str(reader.value(prompt_node, ParamRole.PROMPT) or ""), prompt_node=prompt_node,
        negative=str(reader.value(negative_node, ParamRole.PROMPT) or ""), negative_node=negative_node,
        width=_size(reader.value(width_node, ParamRole.WIDTH)),
        height=_size(reader.value(width_node, ParamRole.HEIGHT)),
        batch_size=_as(int, reader.value(batch_node, ParamRole.BATCH_SIZE)),
        model=_as(str, reader.value(model_node, ParamRole.MODEL, FileKind.CHECKPOINT)),
        loras=tuple(reader.loras(modelled)))
    return info.for_item(index)


def seed_params(workflow: "Workflow", registry: "Registry") -> list[tuple[str, str]]:
    """The (node id, param) pairs that hold a seed (an INT param declared with role SEED)."""
    found = []
    for nid, node in workflow.nodes.items():
        spec = registry.get(node.type)
        found += [(nid, p.name) for p in (spec.params if spec is not None else ()) if p.role is ParamRole.SEED]
    return found


class _Reader:
    """Declared params and port types of a workflow's nodes, looked up once each."""

    def __init__(self, workflow: "Workflow", registry: "Registry") -> None:
        self.workflow = workflow
        self.registry = registry
        self._input_types: dict[str, dict[str, str]] = {}

    def spec(self, nid: str) -> "NodeSpec | None":
        return self.registry.get(self.workflow.nodes[nid].type)

    def param(self, nid: str | None, role: ParamRole, file: FileKind | None = None) -> Any:
        spec = self.spec(nid) if nid is not None else None
        if spec is None:
            return None
        return next((p for p in spec.params if p.role is role and (file is None or p.file is file)), None)

    def values(self, nid: str) -> dict[str, Any]:
        spec = self.spec(nid)
        defaults = spec.default_params() if spec is not None else {}
        return {**defaults, **self.workflow.nodes[nid].params}

    def value(self, nid: str | None, role: ParamRole, file: FileKind | None = None) -> Any:
        declared = self.param(nid, role, file)
        return None if declared is None else self.values(nid).get(declared.name)

    def along(self, *port_types: PortType) -> Callable[[str, str], bool]:
        """Walk only through inputs of these types (as declared, or as a placeholder recorded)."""
        wanted = {t.value for t in port_types}

        def follow(nid: str, input_name: str) -> bool:
            if nid not in self._input_types:
                self._input_types[nid] = graph.port_types(self.workflow.nodes[nid], self.registry)[0]
            return self._input_types[nid].get(input_name) in wanted
        return follow

    def takes(self, nid: str, *, role: InputRole | None = None, port_type: PortType | None = None) -> bool:
        """The node declares an input with this role (or of this type)."""
        spec = self.spec(nid)
        return spec is not None and any((role is not None and i.role is role) or
                                        (port_type is not None and i.type == port_type.value) for i in spec.inputs)

    def is_sampler(self, nid: str) -> bool:
        """A node with a seed, or one that takes its noise from another (ComfyUI's SamplerCustomAdvanced)."""
        return self.param(nid, ParamRole.SEED) is not None or self.takes(nid, port_type=PortType.NOISE)

    def first(self, nids: list[str], role: ParamRole) -> str | None:
        """The first of `nids` that declares a param with `role`."""
        return next((nid for nid in nids if self.param(nid, role) is not None), None)

    def nearest(self, start: str, role: ParamRole, port_type: PortType, file: FileKind | None = None,
                via_input: str | None = None) -> str | None:
        return graph.nearest_upstream(self.workflow, start, lambda nid: self.param(nid, role, file) is not None,
                                      via_input=via_input, follow=self.along(port_type))

    def prompt_node(self, sampler: str, role: InputRole) -> str | None:
        """The node whose PROMPT feeds the sampler's input with `role`; for a sampler without
        such inputs, the sampler itself when it has a PROMPT param of its own."""
        spec = self.spec(sampler)
        port = spec.input_with(role) if spec is not None else None
        if port is None:
            own = role is InputRole.POSITIVE and self.param(sampler, ParamRole.PROMPT) is not None
            return sampler if own else None
        along = self.along(PortType.CONDITIONING)

        def follow(nid: str, input_name: str) -> bool:
            # Through a node that passes both prompts on (a ControlNet), keep to this one's side.
            side = self.spec(nid).input_with(role) if self.spec(nid) is not None else None
            return input_name == side.name if side is not None else along(nid, input_name)

        return graph.nearest_upstream(self.workflow, sampler, lambda nid: self.param(nid, ParamRole.PROMPT) is not None,
                                      via_input=port.name, follow=follow)

    def loras(self, sampler: str) -> Iterator[LoraUse]:
        """The LoRAs on the sampler's MODEL wires, in the order they are applied (farthest first)."""
        walked = graph.walk_upstream(self.workflow, sampler, follow=self.along(PortType.MODEL))
        found = [nid for nid in walked if self.param(nid, ParamRole.MODEL, FileKind.LORA) is not None]
        for nid in reversed(found):
            name = self.value(nid, ParamRole.MODEL, FileKind.LORA)
            if name:
                yield LoraUse(str(name), _as(float, self.value(nid, ParamRole.LORA_STRENGTH)))


def _as(kind: type, value: Any) -> Any:
    """`value` as `kind`, or None when it is missing or not convertible (a graph still being edited)."""
    if value is None or isinstance(value, bool) and kind is not str:
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None


def _size(value: Any) -> int | None:
    number = _as(int, value)
    return number if number else None   # 0: "keep the aspect ratio", not a size


__all__ = ["GenerationInfo", "LoraUse", "generation_info", "seed_params"]
