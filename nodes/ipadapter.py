"""IP-Adapter: an image as a prompt, through extra key/value projections in the UNet's cross-attention.

IPAdapterLoader reads an IP-Adapter file in the layout h94/IP-Adapter ships and diffusers'
`load_ip_adapter` reads (`image_proj.*`: the projection from CLIP image features to tokens;
`ip_adapter.N.to_k_ip.weight` / `to_v_ip.weight`: one pair per cross-attention layer, N = 1, 3, 5...
in the UNet's attention-processor order). `.safetensors`, or `.bin` read with
`torch.load(weights_only=True)` only. The projection is built by diffusers' own converter, so plain
IP-Adapters, Plus (a resampler over the encoder's penultimate hidden states) and Full Face load;
FaceID adapters (insightface embeddings plus LoRA weights) are refused.

CLIPVisionLoader reads transformers' CLIPVisionModelWithProjection: a folder (config.json +
model.safetensors, as h94's `models/image_encoder`) or a single file in transformers' layout
(`vision_model.*`, `visual_projection.weight`, as ComfyUI's `clip_vision/CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors`),
its config from `<name>.config/` beside it, else the shipped ViT-L/14, ViT-H/14 or ViT-bigG/14 one
its width names (`resources/configs/clip_vision/`). Images are prepared as diffusers' pipelines do
(transformers' CLIPImageProcessor, PIL backend: shortest side to the encoder's size, bicubic, centre
crop, CLIP's mean and std), from a `preprocessor_config.json` in the folder when there is one.

IPAdapterApply records on the MODEL the image's tokens for the positive side and the negative side
(diffusers' rule: a plain adapter's negative is the projection of zero image embeddings, a Plus one's
the projection of the encoder's features of an all-zero input) with the weight and the part of the
schedule it acts in. Inside `UNetModel.patched()` (`ip_attention`) every cross-attention processor
is wrapped: for a UNet call that carries `ip_hidden_states` it runs diffusers'
IPAdapterAttnProcessor2_0 with the adapters' weights (text attention + weight x attention over the
image tokens), otherwise the UNet's own processor; the originals are put back on exit. Several
applications stack (one token set and weight each). `conditioning.Guidance` passes each UNet call
the tokens of its batch (negative or positive per item) through `cross_attention_kwargs`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from nodeforge.core.errors import NodeError
from nodeforge.core.types import FileKind

from .wrappers import OnModule

_CLIP_KEY, _ADAPTER_KEY = "nodes.clip_vision", "nodes.ipadapters"
_clip_lock, _adapter_lock = threading.Lock(), threading.Lock()
# The shipped encoder configs by transformer width (the encoders IP-Adapters are trained with).
SHIPPED_ENCODERS = {1024: "vit-l-14", 1280: "vit-h-14", 1664: "vit-bigg-14"}
ENCODER_NAMES = {"vit-l-14": "CLIP ViT-L/14", "vit-h-14": "CLIP ViT-H/14 (CLIP-ViT-H-14-laion2B-s32B-b79K)",
                 "vit-bigg-14": "CLIP ViT-bigG/14 (CLIP-ViT-bigG-14-laion2B-39B-b160k)"}


# -- the values on the wires -------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ClipVision(OnModule):
    """CLIP_VISION: transformers' CLIPVisionModelWithProjection and the image processor it reads with."""

    model: Any
    processor: Any
    name: str
    module_field = "model"

    def pixels(self, image: torch.Tensor) -> torch.Tensor:
        """IMAGE [B, H, W, 3] in 0..1 as the encoder's pixel_values [B, 3, S, S] (8-bit PIL images
        through the processor, as a diffusers pipeline given PIL images)."""
        from PIL import Image

        frames = (image.detach().cpu().float().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        return self.processor(images=[Image.fromarray(f) for f in frames], return_tensors="pt").pixel_values


@dataclass(frozen=True, eq=False)
class IPAdapter:
    """IPADAPTER: the image projection (a diffusers module) and one (to_k_ip, to_v_ip) weight pair per
    cross-attention layer, in the UNet's processor order."""

    name: str
    projection: Any
    layers: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    hidden_states: bool        # reads the encoder's penultimate hidden states (Plus, Full Face), else image_embeds
    kind: str                  # "plain", "plus" or "full face"
    clip_vision: Any = None    # the encoder loaded with it (IPAdapterLoaderWithEncoder), used when none is linked

    @property
    def cross_dim(self) -> int:
        return int(self.layers[0][0].shape[1])

    @property
    def embed_dim(self) -> int:
        return next(m for m in self.projection.modules() if isinstance(m, torch.nn.Linear)).in_features

    def nodeforge_nbytes(self) -> int:
        tensors = [t for pair in self.layers for t in pair] + list(self.projection.parameters())
        return sum(t.nelement() * t.element_size() for t in tensors)


@dataclass(frozen=True, eq=False)
class AppliedIPAdapter:
    """One IPAdapterApply on a MODEL: the adapter, the image tokens [1, T, D] for the positive and
    the negative side, the weight and the percent range of the schedule it acts in."""

    adapter: IPAdapter
    cond: torch.Tensor
    uncond: torch.Tensor
    weight: float
    start_percent: float = 0.0
    end_percent: float = 1.0

    def active(self, timestep: float) -> bool:
        """ControlNetApply's rule: (1 - end) x 999 <= t <= (1 - start) x 999, open at 0 and 1."""
        if self.weight == 0 or self.end_percent <= 0 or self.start_percent >= self.end_percent:
            return False
        first = float("inf") if self.start_percent <= 0 else (1 - self.start_percent) * 999
        last = float("-inf") if self.end_percent >= 1 else (1 - self.end_percent) * 999
        return last <= timestep <= first


# -- loading -------------------------------------------------------------------------------------------------
def _image_processor(folder: Path | None, size: int) -> Any:
    try:   # the PIL backend: what diffusers' pipelines use without torchvision, the same on every machine
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:   # older transformers: the only one there is
        from transformers import CLIPImageProcessor as Processor
    if folder is not None and (folder / "preprocessor_config.json").is_file():
        return Processor.from_pretrained(str(folder), local_files_only=True)
    return Processor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def _encoder_config(path: Path, state: dict[str, torch.Tensor]) -> tuple[Any, Path | None]:
    """The config of a single-file encoder: `<name>.config/` beside it, else the shipped one its width names."""
    from transformers import CLIPVisionConfig

    beside = path.with_name(path.name + ".config")
    if (beside / "config.json").is_file():
        return CLIPVisionConfig.from_pretrained(str(beside), local_files_only=True), beside
    width = int(state["vision_model.embeddings.class_embedding"].shape[0])
    if width not in SHIPPED_ENCODERS:
        raise NodeError(f"{path.name} is a CLIP vision encoder {width} values wide, not one of the standard ones "
                        f"(ViT-L/14 1024, ViT-H/14 1280, ViT-bigG/14 1664): put its transformers config.json in a "
                        f"folder named '{path.name}.config' beside it", field="clip_vision")
    from .loading import configs_dir

    folder = configs_dir() / "clip_vision" / SHIPPED_ENCODERS[width]
    return CLIPVisionConfig.from_pretrained(str(folder), local_files_only=True), None


def _encoder_state(path: Path) -> dict[str, torch.Tensor]:
    from .loading import read_state_dict

    if path.suffix.lower() != ".safetensors":
        raise NodeError(f"{path.name}: CLIP vision encoders are read from .safetensors files only; convert it "
                        "(or use the .safetensors file the model's page offers)", field="clip_vision")
    state, _ = read_state_dict(path, "clip_vision")
    if any(k.startswith(("visual.", "vision_model.encoder.layers.0.self_attn.in_proj")) for k in state):
        raise NodeError(f"{path.name} is a CLIP vision encoder in OpenCLIP's layout; use the transformers-layout "
                        "file (vision_model.*, as CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors)", field="clip_vision")
    if "vision_model.embeddings.class_embedding" not in state:
        sample = ", ".join(sorted(state)[:3]) or "no tensors"
        raise NodeError(f"{path.name} is not a CLIP vision encoder in transformers' layout (no "
                        f"vision_model.* keys; found {sample}); pick an image encoder file from the clip_vision "
                        "folder", field="clip_vision")
    return state


def read_clip_vision(path: Path, device: str) -> ClipVision:
    from transformers import CLIPVisionModelWithProjection

    from .loading import _finish, _load_into, pick_dtype

    if path.is_dir():
        if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
            raise NodeError(f"{path.name} is not a CLIP vision encoder folder: it needs config.json and "
                            "model.safetensors (as h94/IP-Adapter's models/image_encoder)", field="clip_vision")
        state = _encoder_state(path / "model.safetensors")
        from transformers import CLIPVisionConfig

        config, folder = CLIPVisionConfig.from_pretrained(str(path), local_files_only=True), path
    else:
        state = _encoder_state(path)
        config, folder = _encoder_config(path, state)
    with torch.device("meta"):
        model = CLIPVisionModelWithProjection(config)
    if "visual_projection.weight" not in state:
        raise NodeError(f"{path.name} has no visual_projection.weight: IP-Adapters read the projected image "
                        "embedding; use the encoder file with its projection", field="clip_vision")
    _load_into(model, state, "CLIP vision encoder", field="clip_vision")
    _finish([model], device, pick_dtype(device))
    return ClipVision(model, _image_processor(folder, int(config.image_size)), path.stem)


def load_clip_vision(path: Path, device: str, shared: dict[str, Any] | None = None) -> ClipVision:
    from .loading import load_shared

    return load_shared(shared, _CLIP_KEY, path, device, _clip_lock, lambda: read_clip_vision(path, device))


def _adapter_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The file's tensors under flat names (`image_proj.*`, `ip_adapter.*`); a .bin's nested dicts flattened."""
    if path.suffix.lower() == ".safetensors":
        from .loading import read_state_dict

        return read_state_dict(path, "ipadapter")[0]
    from .weight_files import load_pickle

    data = load_pickle(path, "ipadapter")
    flat: dict[str, torch.Tensor] = {}
    for part, value in (data.items() if isinstance(data, dict) else ()):
        if isinstance(value, dict):
            flat.update({f"{part}.{k}": v for k, v in value.items() if isinstance(v, torch.Tensor)})
        elif isinstance(value, torch.Tensor):
            flat[part] = value
    return flat


def _adapter_parts(path: Path, tensors: dict[str, torch.Tensor]) -> tuple[dict, list]:
    proj = {k[len("image_proj."):]: v for k, v in tensors.items() if k.startswith("image_proj.")}
    pairs: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        parts = key.split(".")
        if len(parts) == 4 and parts[0] == "ip_adapter" and parts[1].isdigit() and parts[2] in ("to_k_ip", "to_v_ip"):
            pairs.setdefault(int(parts[1]), {})[parts[2]] = value
    if not proj or not pairs:
        sample = ", ".join(sorted(tensors)[:3]) or "no tensors"
        raise NodeError(f"{path.name} is not an IP-Adapter in the h94/diffusers layout (it needs image_proj.* and "
                        f"ip_adapter.N.to_k_ip/to_v_ip keys; found {sample}); pick an IP-Adapter file "
                        "(ip-adapter_sd15.safetensors, ip-adapter-plus_sd15.safetensors, ...)", field="ipadapter")
    if "perceiver_resampler.proj_in.weight" in proj or ("proj.weight" not in proj and "norm.weight" in proj
                                                        and "latents" not in proj) \
            or any("lora" in k for k in tensors if k.startswith("ip_adapter.")):
        raise NodeError(f"{path.name} is a FaceID IP-Adapter, which reads insightface face embeddings NodeForge "
                        "does not compute; use a plain, Plus or Full Face IP-Adapter", field="ipadapter")
    broken = [i for i, pair in pairs.items() if set(pair) != {"to_k_ip", "to_v_ip"}]
    if broken:
        raise NodeError(f"{path.name}: layer {broken[0]} of the IP-Adapter lacks its to_k_ip or to_v_ip weight; "
                        "the file is incomplete, download it again", field="ipadapter")
    return proj, [(pairs[i]["to_k_ip"], pairs[i]["to_v_ip"]) for i in sorted(pairs)]


def read_ipadapter(path: Path, device: str) -> IPAdapter:
    from diffusers import UNet2DConditionModel
    from diffusers.models.embeddings import ImageProjection, IPAdapterFullImageProjection

    from .loading import pick_dtype

    proj_state, pairs = _adapter_parts(path, _adapter_tensors(path))
    try:   # diffusers' converter builds every projection it knows; it reads nothing of the UNet
        projection = UNet2DConditionModel._convert_ip_adapter_image_proj_to_diffusers(
            None, proj_state, low_cpu_mem_usage=False)
    except (KeyError, RuntimeError, AttributeError) as exc:
        raise NodeError(f"{path.name}: its image_proj weights are not a projection diffusers knows ({exc}); "
                        "the file may be damaged or of an unsupported IP-Adapter kind", field="ipadapter") from None
    dtype = pick_dtype(device)
    projection = projection.to(device=device, dtype=dtype).eval().requires_grad_(False)
    layers = tuple((k.to(device, dtype), v.to(device, dtype)) for k, v in pairs)
    kind = ("plain" if isinstance(projection, ImageProjection)
            else "full face" if isinstance(projection, IPAdapterFullImageProjection) else "plus")
    return IPAdapter(path.stem, projection, layers, kind != "plain", kind)


def load_ipadapter(path: Path, device: str, shared: dict[str, Any] | None = None) -> IPAdapter:
    from .loading import load_shared

    return load_shared(shared, _ADAPTER_KEY, path, device, _adapter_lock, lambda: read_ipadapter(path, device))


# -- applying ------------------------------------------------------------------------------------------------
def cross_attention_names(unet: Any) -> list[str]:
    """The UNet's cross-attention processors in diffusers' IP-Adapter order (every one but self-attention)."""
    return [name for name in unet.attn_processors if not name.endswith("attn1.processor")
            and "motion_modules" not in name]


def _check_fits(unet: Any, adapter: IPAdapter, clip_vision: ClipVision) -> None:
    model = unet.unet
    width = getattr(model.config, "cross_attention_dim", None)
    if unet.sampling_behaviour is not None or not hasattr(model, "attn_processors") or not isinstance(width, int):
        raise NodeError(f"IP-Adapters steer SD 1.x, 2.x and SDXL UNets; this model is {unet.family}",
                        field="unet")
    names = cross_attention_names(model)
    if adapter.cross_dim != width or len(adapter.layers) != len(names):
        raise NodeError(f"{adapter.name} was made for a UNet with {len(adapter.layers)} cross-attention layers "
                        f"{adapter.cross_dim} wide, but this model has {len(names)} of width {width}: pick the "
                        "IP-Adapter made for this model (sd15 files for SD 1.x, sdxl files for SDXL)", field="ipadapter")
    for name, (k, _) in zip(names, adapter.layers):
        attn = model.get_submodule(name[:-len(".processor")])
        if attn.to_k.weight.shape[0] != k.shape[0]:
            raise NodeError(f"{adapter.name} does not fit this UNet ({name}: {k.shape[0]} wide, the layer "
                            f"{attn.to_k.weight.shape[0]}); pick the IP-Adapter made for this model", field="ipadapter")
    config = clip_vision.model.config
    wants = adapter.embed_dim
    has = int(config.hidden_size if adapter.hidden_states else config.projection_dim)
    if wants != has:
        what = "hidden states" if adapter.hidden_states else "image embeddings"
        known = [ENCODER_NAMES[n] for w, n in SHIPPED_ENCODERS.items()
                 if (w if adapter.hidden_states else {1024: 768, 1280: 1024, 1664: 1280}[w]) == wants]
        hint = f" ({known[0]})" if known else ""
        raise NodeError(f"{adapter.name} reads {what} {wants} wide, but {clip_vision.name} gives {has}: load the "
                        f"image encoder it was trained with{hint}", field="clip_vision")


def image_tokens(adapter: IPAdapter, clip_vision: ClipVision, image: torch.Tensor,
                 device: Any, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The positive and negative image tokens [1, images x tokens, D], as diffusers' pipelines make them."""
    encoder = clip_vision.model
    pixels = clip_vision.pixels(image).to(encoder.device, encoder.dtype)
    with torch.inference_mode():
        if adapter.hidden_states:
            embeds = encoder(pixels, output_hidden_states=True).hidden_states[-2]
            negative = encoder(torch.zeros_like(pixels), output_hidden_states=True).hidden_states[-2]
        else:
            embeds = encoder(pixels).image_embeds
            negative = torch.zeros_like(embeds)
        proj = adapter.projection
        p_dtype = next(proj.parameters()).dtype
        tokens = [proj(e.to(next(proj.parameters()).device, p_dtype)) for e in (embeds, negative)]
    return tuple(t.reshape(1, -1, t.shape[-1]).to(device, dtype).clone() for t in tokens)   # type: ignore[return-value]


def run_ipadapter_loader(ctx: Any, ipadapter: str) -> dict[str, Any]:
    path = Path(ctx.resolve_file(FileKind.IPADAPTER, ipadapter))
    return {"ipadapter": load_ipadapter(path, ctx.device, ctx.shared)}


def run_clip_vision_loader(ctx: Any, clip_vision: str) -> dict[str, Any]:
    path = Path(ctx.resolve_file(FileKind.CLIP_VISION, clip_vision))
    return {"clip_vision": load_clip_vision(path, ctx.device, ctx.shared)}


def run_ipadapter_loader_with_encoder(ctx: Any, unet: Any, ipadapter: str, clip_vision: str) -> dict[str, Any]:
    """IPAdapter_plus's unified loader: the adapter carrying its image encoder; the model passes through."""
    adapter = run_ipadapter_loader(ctx, ipadapter)["ipadapter"]
    encoder = run_clip_vision_loader(ctx, clip_vision)["clip_vision"]
    return {"unet": unet, "ipadapter": dataclasses.replace(adapter, clip_vision=encoder)}


def run_ipadapter_apply(ctx: Any, unet: Any, ipadapter: IPAdapter, image: torch.Tensor, weight: float,
                        start_percent: float = 0.0, end_percent: float = 1.0,
                        clip_vision: ClipVision | None = None) -> dict[str, Any]:
    if weight == 0:   # nothing to add: the model passes through, bitwise the plain one
        return {"unet": unet}
    if start_percent >= end_percent:
        raise NodeError("start_percent is not before end_percent: the IP-Adapter would never act",
                        field="start_percent")
    clip_vision = clip_vision if clip_vision is not None else ipadapter.clip_vision
    if clip_vision is None:
        raise NodeError(f"{ipadapter.name} needs the image encoder it was trained with: link Load CLIP Vision to "
                        "clip_vision (or load the adapter with Load IP-Adapter and Encoder)", field="clip_vision")
    _check_fits(unet, ipadapter, clip_vision)
    cond, uncond = image_tokens(ipadapter, clip_vision, image, unet.device, unet.dtype)
    applied = AppliedIPAdapter(ipadapter, cond, uncond, float(weight), float(start_percent), float(end_percent))
    return {"unet": unet.with_ip_adapter(applied)}


# -- inside the UNet -------------------------------------------------------------------------------------
class _IPProcessor:
    """A cross-attention layer's processor while IP-Adapters are applied: diffusers'
    IPAdapterAttnProcessor2_0 for calls given image tokens, the layer's own processor otherwise."""

    def __init__(self, base: Any, ip: Any) -> None:
        self.base, self.ip = base, ip

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 ip_hidden_states: Any = None) -> torch.Tensor:
        if ip_hidden_states is None:
            return self.base(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        tokens, scales = ip_hidden_states
        self.ip.scale = list(scales)
        return self.ip(attn, hidden_states, (encoder_hidden_states, list(tokens)), attention_mask, temb)


def _ip_processor(layer: int, applied: tuple[AppliedIPAdapter, ...]) -> Any:
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0

    k0 = applied[0].adapter.layers[layer][0]
    with torch.device("meta"):
        proc = IPAdapterAttnProcessor2_0(hidden_size=k0.shape[0], cross_attention_dim=k0.shape[1],
                                         num_tokens=[a.cond.shape[1] for a in applied], scale=[0.0] * len(applied))
    for i, a in enumerate(applied):
        k, v = a.adapter.layers[layer]
        proc.to_k_ip[i].weight = torch.nn.Parameter(k, requires_grad=False)
        proc.to_v_ip[i].weight = torch.nn.Parameter(v, requires_grad=False)
    return proc


@contextlib.contextmanager
def ip_attention(unet: Any, applied: tuple[AppliedIPAdapter, ...]) -> Iterator[None]:
    """`unet`'s cross-attention processors wrapped for the applied IP-Adapters; the originals restored on exit."""
    original = dict(unet.attn_processors)
    names = cross_attention_names(unet)
    wrapped = dict(original)
    for layer, name in enumerate(names):
        wrapped[name] = _IPProcessor(original[name], _ip_processor(layer, applied))
    unet.set_attn_processor(wrapped)
    try:
        yield
    finally:
        unet.set_attn_processor(original)


def call_arguments(applied: tuple[AppliedIPAdapter, ...], sides: list[int], batch: int,
                   timestep: float, cache: dict[tuple, list[torch.Tensor]]) -> dict[str, Any]:
    """The UNet keyword arguments giving a call's batch (units of `batch` items, each the negative
    side 0 or the positive side 1) the image tokens of every applied IP-Adapter; none when no
    adapter acts at this timestep (the UNet's own processors run). `cache` keeps the batched tokens."""
    scales = [a.weight if a.active(timestep) else 0.0 for a in applied]
    if not any(scales):
        return {}
    key = tuple(sides)
    if key not in cache:
        cache[key] = [torch.cat([(a.cond if side else a.uncond) for side in sides]).repeat_interleave(batch, dim=0)
                      for a in applied]
    return {"cross_attention_kwargs": {"ip_hidden_states": (cache[key], scales)}}
