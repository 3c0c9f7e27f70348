"""The node types the model families add (torch-free declarations; run functions in
nodes/families/sd3_nodes.py, imported when a node first runs)."""
from __future__ import annotations

import importlib
from typing import Any, Callable

from nodeforge.core.spec import Input, NodeSpec, Output, Param
from nodeforge.core.types import ParamRole, PortType

MODEL, CLIP, COND = PortType.MODEL.value, PortType.CLIP.value, PortType.CONDITIONING.value


def _lazy(function: str) -> Callable[..., Any]:
    def run(ctx: Any, **kw: Any) -> Any:
        return getattr(importlib.import_module(f"{__package__}.sd3_nodes"), function)(ctx, **kw)

    run.__name__ = function
    run.lazy_target = ("families.sd3_nodes", function)  # type: ignore[attr-defined]
    return run


def _changed(ctx: Any, clip_l: str, clip_g: str, t5xxl: str) -> Any:
    from ..embeddings import referenced_files

    return (referenced_files(ctx, clip_l), referenced_files(ctx, clip_g))


def _needs_flow_model(facts: dict[str, dict[str, Any]], **_: Any) -> list[str]:
    model = facts.get("unet", {})
    if model.get("flow") is False:
        return [f"unet: comes from a {model.get('family')} checkpoint, which is not a flow model; ModelSamplingSD3 "
                "applies to SD3/SD3.5 models (remove it, or pick an SD3 checkpoint)"]
    return []


FAMILY_NODES: list[NodeSpec] = [
    NodeSpec(
        "TextEncoderSD3", "conditioning", _lazy("run_text_encoder_sd3"),
        inputs=(Input("clip", CLIP, description="the SD3 text encoders from Load Checkpoint"),),
        params=(Param.string("clip_l", "", multiline=True, role=ParamRole.PROMPT,
                             description="prompt for CLIP-L (its pooled vector is half of the pooled prompt)"),
                Param.string("clip_g", "", multiline=True, description="prompt for CLIP-G (often the same text)"),
                Param.string("t5xxl", "", multiline=True,
                             description="prompt for T5-XXL (ignored by a model loaded without T5)")),
        outputs=(Output("conditioning", COND, description="the encoded prompt, for a sampler"),), is_changed=_changed,
        description="SD3 prompt with one text per encoder (ComfyUI's CLIPTextEncodeSD3); TextEncoder gives "
                    "all three the same text.",
        display_name="Text Encoder (SD3)"),
    NodeSpec(
        "ModelSamplingSD3", "advanced/model", _lazy("run_model_sampling_sd3"),
        inputs=(Input("unet", MODEL, description="the flow model to shift"),),
        params=(Param.float("shift", 3.0, min=0.0, max=100.0, step=0.01,
                            description="sigma shift: higher spends more steps at high noise (SD3: 3.0)"),),
        outputs=(Output("unet", MODEL,
                        description="the same model sampling with the new shift"),), check_inputs=_needs_flow_model,
        description="Set a flow model's sigma shift (sigma' = shift s / (1 + (shift - 1) s)) without changing "
                    "the input model.",
        display_name="Model Sampling (SD3)"),
]
