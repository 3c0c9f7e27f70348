"""Node type declarations: what a node takes and gives, as data anyone can read without running it.

The validator, the editor and `nodeforge nodes --json` all read these records. A node's work is
one function, `run(ctx, **inputs_and_params) -> dict`, that must not mutate its inputs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from nodeforge.core.types import FileKind, InputRole, ParamKind, ParamRole, PortType, file_role

RunFunction = Callable[..., Mapping[str, Any] | Any]


# A prompt longer than this is no prompt (a file pasted in, a hostile workflow): tokenizing and
# encoding 64 MB of text took minutes and 8 GB before the first step. ~25,000 CLIP tokens.
MAX_PROMPT_CHARS = 100_000


def check_prompt_length(text: str) -> str:
    """`text`, or ValueError when it is longer than any prompt (MAX_PROMPT_CHARS)."""
    if len(text) > MAX_PROMPT_CHARS:
        raise ValueError(f"the prompt is {len(text):,} characters; more than {MAX_PROMPT_CHARS:,} is not a "
                         "prompt (was a file pasted in?): shorten it")
    return text


@dataclass(frozen=True)
class Input:
    """A typed input port. Optional inputs may be left unconnected (the run gets None).

    `role` says what the port means where that matters to others: the metadata extractor finds
    a sampler's prompt through its POSITIVE input and the negative prompt through NEGATIVE.
    """

    name: str
    type: str
    optional: bool = False
    description: str = ""
    role: InputRole | None = None


@dataclass(frozen=True)
class Output:
    """A typed output port."""

    name: str
    type: str
    description: str = ""


@dataclass(frozen=True)
class Param:
    """A widget value. Build them with the class methods, which pick the kind and check defaults.

    `choices` may be a tuple of strings or, for lists that change (model names), a callable
    returning them. A `file` param names a file (checkpoint, LoRA, image) that the engine resolves
    through the model search paths, checks for existence before running and hashes by identity
    into the cache key, so that replacing the file re-runs the node.

    `role` declares what the param means to the editor, the batch layer and the image metadata
    (`ParamRole`: the seed, the prompt, steps...), so none of them goes by the param's name. A
    file param's role defaults from its kind (MODEL, or IMAGE_PATH for an image).
    """

    name: str
    kind: ParamKind
    default: Any
    min: float | None = None
    max: float | None = None
    step: float | None = None
    multiple_of: int | None = None
    choices: tuple[str, ...] | Callable[[], Sequence[str]] | None = None
    multiline: bool = False
    file: FileKind | None = None
    description: str = ""
    role: ParamRole | None = None

    def __post_init__(self) -> None:
        if self.role is None and self.file is not None:
            object.__setattr__(self, "role", file_role(self.file))

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def int(cls, name: str, default: int, *, min: int | None = None, max: int | None = None,
            step: int | None = None, multiple_of: int | None = None, description: str = "",
            role: ParamRole | None = None) -> "Param":
        return cls(name, ParamKind.INT, default, min=min, max=max, step=step,
                   multiple_of=multiple_of, description=description, role=role)

    @classmethod
    def float(cls, name: str, default: float, *, min: float | None = None, max: float | None = None,
              step: float | None = None, description: str = "", role: ParamRole | None = None) -> "Param":
        return cls(name, ParamKind.FLOAT, float(default), min=min, max=max, step=step,
                   description=description, role=role)

    @classmethod
    def string(cls, name: str, default: str = "", *, multiline: bool = False,
               file: FileKind | None = None, description: str = "", role: ParamRole | None = None) -> "Param":
        return cls(name, ParamKind.STRING, default, multiline=multiline, file=file,
                   description=description, role=role)

    @classmethod
    def bool(cls, name: str, default: bool, *, description: str = "", role: ParamRole | None = None) -> "Param":
        return cls(name, ParamKind.BOOL, bool(default), description=description, role=role)

    @classmethod
    def choice(cls, name: str, choices: Sequence[str] | Callable[[], Sequence[str]],
               default: str | None = None, *, file: FileKind | None = None,
               description: str = "", role: ParamRole | None = None) -> "Param":
        fixed = None if callable(choices) else tuple(choices)
        if default is None:
            default = fixed[0] if fixed else ""
        return cls(name, ParamKind.CHOICE, default, choices=fixed if fixed is not None else choices,
                   file=file, description=description, role=role)

    # -- reading ------------------------------------------------------------------------------
    def choice_list(self) -> tuple[str, ...]:
        """The current choices (calls a dynamic provider)."""
        if self.choices is None:
            return ()
        if callable(self.choices):
            return tuple(self.choices())
        return self.choices

    def coerce(self, value: Any) -> Any:
        """Return `value` as this param's kind, or raise ValueError with a user-facing reason.

        Accepts the obvious lossless conversions (an int for a FLOAT, "3" from the command line
        for an INT) and refuses the rest, including bools posing as numbers.
        """
        kind = self.kind
        if kind is ParamKind.INT:
            if isinstance(value, bool):
                raise ValueError(f"expected a whole number, got {value!r}")
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, str):
                try:
                    value = int(value.strip())
                except ValueError:
                    raise ValueError(f"expected a whole number, got {value!r}") from None
            if not isinstance(value, int):
                raise ValueError(f"expected a whole number, got {value!r}")
            self._check_range(value)
            if self.multiple_of and value % self.multiple_of:
                raise ValueError(f"{value} is not a multiple of {self.multiple_of}")
            return value
        if kind is ParamKind.FLOAT:
            if isinstance(value, bool):
                raise ValueError(f"expected a number, got {value!r}")
            if isinstance(value, str):
                try:
                    value = float(value.strip())
                except ValueError:
                    raise ValueError(f"expected a number, got {value!r}") from None
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"expected a finite number, got {value!r}")
            value = float(value)
            self._check_range(value)
            return value
        if kind is ParamKind.BOOL:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
                return True
            if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError(f"expected true or false, got {value!r}")
        if kind is ParamKind.STRING:
            if not isinstance(value, str):
                raise ValueError(f"expected text, got {value!r}")
            return check_prompt_length(value) if self.role is ParamRole.PROMPT else value
        if kind is ParamKind.CHOICE:
            if not isinstance(value, str):
                raise ValueError(f"expected one of the listed choices, got {value!r}")
            # File choices also accept a path; the engine checks that it exists.
            if self.file is None:
                options = self.choice_list()
                if value not in options:
                    shown = ", ".join(options[:12]) + (", ..." if len(options) > 12 else "")
                    raise ValueError(f"{value!r} is not one of: {shown}")
            return value
        raise ValueError(f"unknown param kind {kind}")  # pragma: no cover

    def _check_range(self, value: float) -> None:
        if self.min is not None and value < self.min:
            if self.role is ParamRole.SEED and value < 0:    # A1111's and ComfyUI packs' "random seed"
                raise ValueError(f"{value} is below the minimum {self.min}; NodeForge has no 'random' seed value: "
                                 "set a seed, or let the editor's seed control randomize it (or run nodeforge batch "
                                 "--count N --seed-policy random)")
            raise ValueError(f"{value} is below the minimum {self.min}")
        if self.max is not None and value > self.max:
            raise ValueError(f"{value} is above the maximum {self.max}")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "kind": self.kind.value, "default": self.default}
        for key in ("min", "max", "step", "multiple_of", "description"):
            if getattr(self, key) not in (None, ""):
                data[key] = getattr(self, key)
        if self.choices is not None:
            data["choices"] = list(self.choice_list())
        if self.multiline:
            data["multiline"] = True
        if self.file is not None:
            data["file"] = self.file.value
        if self.role is not None:
            data["role"] = self.role.value
        return data


@dataclass(frozen=True)
class NodeSpec:
    """The declaration of a node type.

    `run(ctx, **kwargs)` receives every connected input and every param by name and returns a
    mapping from output name to value. A node with no outputs (an output node such as SaveImage)
    may return anything; it becomes `RunResult.outputs[node_id]` and is shown by the editor.
    Output nodes are what a run asks for when no outputs are named.

    `is_changed(ctx, **params) -> hashable` lets a node add to its cache key something only it
    knows (for example a file's contents). The engine calls it while planning every run, with a
    NodeContext (`resolve_file`, `workflow`, `settings`) and the node's params (not its inputs);
    a different answer from last time re-runs the node. `validate(**params) -> list[str]` adds
    cross-param checks (messages name the field themselves, "width: ...").
    `facts(files, **params)` and `check_inputs(facts, **params)`: what a loader can say about its
    outputs from its files alone, and what a node refuses given the facts of its inputs
    (nodeforge/core/facts.py).
    `cacheable=False` runs the node every time (SaveImage writes new files on each run).
    """

    type: str
    category: str
    run: RunFunction
    inputs: tuple[Input, ...] = ()
    params: tuple[Param, ...] = ()
    outputs: tuple[Output, ...] = ()
    description: str = ""
    output_node: bool = False
    cacheable: bool = True
    is_changed: Callable[..., Any] | None = None
    validate: Callable[..., list[str]] | None = None
    facts: Callable[..., Mapping[str, Mapping[str, Any]]] | None = None
    check_inputs: Callable[..., list[str]] | None = None
    display_name: str = ""
    pack: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        names = [p.name for p in self.inputs] + [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.type}: input and param names must be unique: {names}")
        outs = [o.name for o in self.outputs]
        if len(set(outs)) != len(outs):
            raise ValueError(f"{self.type}: output names must be unique: {outs}")
        for param in self.params:
            if param.kind is not ParamKind.CHOICE or param.file is None:
                try:
                    param.coerce(param.default)
                except ValueError as exc:
                    raise ValueError(f"{self.type}.{param.name}: bad default: {exc}") from None
            if param.role is ParamRole.SEED and param.kind is not ParamKind.INT:
                raise ValueError(f"{self.type}.{param.name}: a seed must be an INT param")

    @property
    def title(self) -> str:
        return self.display_name or self.type

    def input(self, name: str) -> Input | None:
        return next((i for i in self.inputs if i.name == name), None)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def output(self, name: str) -> Output | None:
        return next((o for o in self.outputs if o.name == name), None)

    def param_with(self, role: ParamRole) -> Param | None:
        """The first param declared with `role` (the node's seed, its prompt...), or None."""
        return next((p for p in self.params if p.role is role), None)

    def input_with(self, role: InputRole) -> Input | None:
        """The first input declared with `role` (a sampler's positive prompt...), or None."""
        return next((i for i in self.inputs if i.role is role), None)

    def default_params(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "display_name": self.title,
            "category": self.category,
            "description": self.description,
            "pack": self.pack,
            "output_node": self.output_node,
            "inputs": [{"name": i.name, "type": str(i.type), "optional": i.optional,
                        **({"description": i.description} if i.description else {}),
                        **({"role": i.role.value} if i.role is not None else {})} for i in self.inputs],
            "params": [p.to_json() for p in self.params],
            "outputs": [{"name": o.name, "type": str(o.type), **({"description": o.description} if o.description else {})}
                        for o in self.outputs],
        }


__all__ = ["FileKind", "Input", "InputRole", "NodeSpec", "Output", "Param", "ParamKind", "ParamRole", "PortType"]
