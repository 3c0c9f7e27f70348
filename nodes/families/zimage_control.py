"""Z-Image's Fun ControlNet Union (alibaba-pai's Z-Image-Turbo-Fun-Controlnet-Union 1.0, 2.0 and 2.1) as
ComfyUI loads it: a model patch file (models/model_patches, ModelPatchLoader) applied to the MODEL by
QwenImageDiffsynthControlnet (NodeForge's ZImageFunControlNet), run as diffusers' ZImageControlNetModel
inside ZImageControlNetPipeline's model call.

Files: one .safetensors in diffusers' own key layout (`control_all_x_embedder.2-1.`, `control_layers.N.`),
which is how alibaba-pai ships it. The config comes from a `<name>.config/config.json` beside it, else from
the weights as diffusers' from_single_file picks it: widths and head size from the tensors; 6 control
layers (1.0: every 5th of Z-Image-Turbo's 30 layers, 16 input channels) or 15 (2.x: every 2nd, 33 input
channels: the control latents, the inpainting mask and the masked image's latents); 2.0's noise-refiner
control blocks are unused (missing or all zero: they are dropped and its control layers run over the
refiner, diffusers' "control_layers"), 2.1's are trained ("control_noise_refiner").

Applying: at sampling the control image is scaled to the latent's size (ComfyUI's area scale after a
centre crop), encoded by the linked VAE (the distribution's mode, shifted and scaled), and for 2.x
padded with zeros to 33 channels, or, with a mask and the image to inpaint, given
ZImageControlNetInpaintPipeline's inpainting channels. Each model call runs the ControlNet (sharing the
transformer's embedders and refiners, as ZImageControlNetModel.from_transformer does) on the same
latents, timestep and prompts, and the transformer adds its outputs times the strength to the layers
they belong to. Several patches on one model add up.
"""
from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from nodeforge.core.errors import NodeError

from ..wrappers import OnModule

MARKER = "control_all_x_embedder.2-1.weight"
QWEN_DIFFSYNTH = "controlnet_blocks.0.y_rms.weight"
TURBO_LAYERS = 30          # Z-Image-Turbo's transformer layers, over which a file's control layers are spread
_KEY = "zimage_model_patches"
_lock = threading.Lock()
# The transformer parts the ControlNet borrows (ZImageControlNetModel.from_transformer).
SHARED = ("t_scale", "t_embedder", "all_x_embedder", "cap_embedder", "rope_embedder", "noise_refiner",
          "context_refiner", "x_pad_token", "cap_pad_token")


@dataclass(frozen=True, eq=False)
class ModelPatch(OnModule):
    """MODEL_PATCH: a Z-Image Fun ControlNet Union (diffusers' ZImageControlNetModel, not yet tied to a
    transformer) and which release it is."""

    module_field = "model"

    name: str
    model: Any
    version: str               # "1.0", "2.0" or "2.1"

    @property
    def inpaints(self) -> bool:
        """2.x reads an inpainting mask and the masked image beside the control image."""
        return int(self.model.config.control_in_dim) > 16

    def nodeforge_nbytes(self) -> int:
        return sum(t.nelement() * t.element_size() for t in self.model.parameters())


# -- loading ------------------------------------------------------------------------------------------------
def _other_patch(keys: set[str]) -> str | None:
    """What another model patch ComfyUI's ModelPatchLoader reads is, in words."""
    if "feature_embedder.mid_layer_norm.bias" in keys:
        return "a Flux USO style projector"
    if "audio_proj.proj1.weight" in keys:
        return "a Wan MultiTalk audio patch"
    return None


def _count(state: dict[str, torch.Tensor], prefix: str) -> int:
    return len({k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)})


def version_of(state: dict[str, torch.Tensor]) -> str:
    """The release: 1.0 reads the control latents alone (16 channels); of the 2.x files, which read 33,
    2.1 has trained noise-refiner control blocks (diffusers' single-file loader looks at the same ones)."""
    if state[MARKER].shape[1] <= 16 * 4:
        return "1.0"
    before = state.get("control_noise_refiner.0.before_proj.weight")
    return "2.0" if before is None or bool(torch.all(before == 0)) else "2.1"


def config_from_state(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """A ZImageControlNetModel config from a Fun ControlNet Union's weights (Z-Image-Turbo's 30 layers)."""
    dim, patch_in = state[MARKER].shape
    head = state["control_layers.0.attention.norm_q.weight"].shape[0]
    layers = _count(state, "control_layers.")
    version = version_of(state)
    refiner = {"1.0": None, "2.0": "control_layers", "2.1": "control_noise_refiner"}[version]
    step = max(1, TURBO_LAYERS // max(layers, 1))
    return {"control_layers_places": list(range(0, layers * step, step)),
            "control_refiner_layers_places": [0, 1], "control_in_dim": int(patch_in) // 4,
            "add_control_noise_refiner": refiner, "all_patch_size": [2], "all_f_patch_size": [1], "dim": int(dim),
            "n_refiner_layers": _count(state, "control_noise_refiner.") or 2, "n_heads": int(dim) // int(head),
            "n_kv_heads": int(dim) // int(head), "norm_eps": 1e-5, "qk_norm": True}


def read_model_patch(path: Path, device: str) -> ModelPatch:
    from diffusers import ZImageControlNetModel

    from ..loading import _finish, model_from_state, pick_dtype, read_state_dict

    if path.suffix.lower() != ".safetensors":
        raise NodeError(f"{path.name} is not a .safetensors file; model patches are read from .safetensors only "
                        "(the Fun ControlNet ships as one)", field="model_patch")
    state, _ = read_state_dict(path, "model_patch")
    keys = set(state)
    if QWEN_DIFFSYNTH in keys:
        raise NodeError(f"{path.name} is a Qwen-Image DiffSynth ControlNet patch: NodeForge does not run Qwen-Image "
                        "DiffSynth patches yet (it runs Z-Image's Fun ControlNet Union files)", field="model_patch")
    if MARKER not in keys:
        other = _other_patch(keys)
        what = f"{other}, which NodeForge does not run" if other else "not a model patch NodeForge knows"
        raise NodeError(f"{path.name} is {what}; ModelPatchLoader here loads Z-Image Fun ControlNet Union files "
                        "(Z-Image-Turbo-Fun-Controlnet-Union*.safetensors)", field="model_patch")
    config_file = path.with_name(path.stem + ".config") / "config.json"
    try:
        config = json.loads(config_file.read_text()) if config_file.is_file() else config_from_state(state)
    except (KeyError, ValueError, ZeroDivisionError) as exc:
        raise NodeError(f"{path.name} looks like a Z-Image Fun ControlNet but lacks {exc}; the file may be damaged",
                        field="model_patch") from None
    version = version_of(state)
    if config.get("add_control_noise_refiner") == "control_layers":   # 2.0: its refiner blocks are unused
        state = {k: v for k, v in state.items() if not k.startswith("control_noise_refiner.")}
    try:
        model = model_from_state(ZImageControlNetModel, config, state, "Z-Image Fun ControlNet", field="model_patch")
    except NodeError as exc:
        raise NodeError(f"{path.name}: {exc}", field="model_patch") from None
    _finish([model], device, pick_dtype(device))
    return ModelPatch(path.stem, model, version)


def load_model_patch(path: Path, device: str, shared: dict[str, Any] | None = None) -> ModelPatch:
    from ..loading import load_shared

    return load_shared(shared, _KEY, path, device, _lock, lambda: read_model_patch(path, device))


def run_model_patch_loader(ctx: Any, model_patch: str) -> dict[str, Any]:
    from nodeforge.core.types import FileKind

    path = Path(ctx.resolve_file(FileKind.MODEL_PATCH, model_patch))
    return {"model_patch": load_model_patch(path, ctx.device, ctx.shared)}


# -- applying -----------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ZImageControl:
    """One ZImageFunControlNet: the patch, its images and strength; the control latents are made at
    sampling, for the latent's size, and kept per size."""

    patch: ModelPatch
    vae: Any
    image: torch.Tensor                  # IMAGE [B, H, W, 3]
    strength: float
    mask: torch.Tensor | None = None     # MASK [B, H, W], 1: repaint
    inpaint_image: torch.Tensor | None = None

    def context(self, height: int, width: int) -> torch.Tensor:
        """The ControlNet's input for a latent height x width: [B, control_in_dim, 1, h, w]."""
        cache = self.__dict__.setdefault("_contexts", {})
        if (height, width) not in cache:
            cache[(height, width)] = self._make_context(height, width)
        return cache[(height, width)]

    def _make_context(self, height: int, width: int) -> torch.Tensor:
        from ..geometry import scale_image
        from ..vae import encode

        size = (height * self.vae.factor, width * self.vae.factor)

        def at_size(image: torch.Tensor, method: str) -> torch.Tensor:
            image = image[..., :3].float()
            return image if tuple(image.shape[1:3]) == size else scale_image(image, size[1], size[0], method, "center")

        control = encode(self.vae, at_size(self.image, "area"))
        channels = int(self.patch.model.config.control_in_dim)
        if self.mask is None:
            extra = torch.zeros(control.shape[0], channels - control.shape[1], height, width)
            return torch.cat([control, extra], dim=1).unsqueeze(2)
        import torch.nn.functional as F

        mask = self.mask[None] if self.mask.ndim == 2 else self.mask
        mask = F.interpolate(mask[:, None].float(), size=size, mode="bilinear", align_corners=False)
        mask = (mask >= 0.5).float()        # binarised, as the inpainting pipeline's mask processor does
        image = at_size(self.inpaint_image, "area")
        if image.shape[0] != mask.shape[0]:
            batch = max(image.shape[0], mask.shape[0])
            image, mask = image.expand(batch, -1, -1, -1), mask.expand(batch, -1, -1, -1)
        kept = (image * 2 - 1) * (mask < 0.5).permute(0, 2, 3, 1)      # the repainted area grey (0 in -1..1)
        masked = encode(self.vae, (kept + 1) / 2)
        keep = F.interpolate(1 - mask, size=(height, width), mode="nearest")
        batch = max(control.shape[0], masked.shape[0])
        parts = [t.expand(batch, -1, -1, -1) if t.shape[0] == 1 else t for t in (control, keep, masked)]
        return torch.cat(parts, dim=1).unsqueeze(2)


def _image_batch(images: list[torch.Tensor], batch: int, repeats: int) -> list[torch.Tensor]:
    """One [C, 1, h, w] context per model input (`batch` latents, `repeats` prompts each, in that order)."""
    picked = [images[i if len(images) == batch else 0] for i in range(batch)]
    return picked * repeats


@contextlib.contextmanager
def tied(net: Any, transformer: Any, device: Any) -> Iterator[Any]:
    """The ControlNet borrowing the transformer's parts for one call, and giving them back after (so the
    patch holds no transformer between runs and one patch serves several models). The pad tokens, the
    transformer's own parameters, which sequential offload moves only inside its forward, come as
    copies on `device`."""
    for name in SHARED:
        part = getattr(transformer, name)
        if name.endswith("_pad_token"):
            part = torch.nn.Parameter(part.detach().to(device), requires_grad=False)
        setattr(net, name, part)
    try:
        yield net
    finally:
        for name in SHARED:
            setattr(net, name, None)


def block_samples(controls: tuple[ZImageControl, ...], transformer: Any, frames: list[torch.Tensor],
                  timestep: torch.Tensor, prompts: list[torch.Tensor], batch: int) -> dict[int, torch.Tensor] | None:
    """The summed ControlNet outputs of every applied patch for one transformer call, keyed by layer."""
    total: dict[int, torch.Tensor] = {}
    height, width = frames[0].shape[-2:]
    for control in controls:
        net = control.patch.model
        contexts = control.context(height, width).to(frames[0].device, frames[0].dtype)
        images = _image_batch(list(contexts.unbind(0)), batch, len(frames) // batch)
        with tied(net, transformer, frames[0].device):
            samples = net(frames, timestep, prompts, images, conditioning_scale=control.strength)
        for layer, value in samples.items():
            total[layer] = value if layer not in total else total[layer] + value
    return total or None


def run_zimage_fun_controlnet(ctx: Any, unet: Any, model_patch: ModelPatch, vae: Any, image: torch.Tensor,
                              strength: float, mask: torch.Tensor | None = None,
                              inpaint_image: torch.Tensor | None = None) -> dict[str, Any]:
    import dataclasses

    from .specs import fun_controlnet_refusal

    refusal = fun_controlnet_refusal(unet.family, unet.name)
    if refusal is not None:
        raise NodeError(refusal, field="unet")
    width, theirs = int(unet.unet.config.dim), int(model_patch.model.config.dim)
    if width != theirs:
        raise NodeError(f"{model_patch.name} was made for a Z-Image transformer {theirs} wide, but {unet.name} is "
                        f"{width} wide: use the Fun ControlNet made for this model", field="model_patch")
    if (mask is None) != (inpaint_image is None) and mask is not None:
        raise NodeError("a mask needs the image to inpaint as well: link it to inpaint_image (or unlink the mask)",
                        field="inpaint_image")
    if inpaint_image is not None and mask is None:
        raise NodeError("inpaint_image needs the mask of the area to repaint: link a mask (or unlink the image)",
                        field="mask")
    if mask is not None and not model_patch.inpaints:
        raise NodeError(f"{model_patch.name} (Fun ControlNet Union {model_patch.version}) cannot inpaint: unlink the "
                        "mask, or use the 2.0/2.1 file, which reads a mask", field="mask")
    if strength == 0:     # nothing added: the same model
        return {"unet": unet}
    applied = ZImageControl(model_patch, vae, image, float(strength),
                            None if mask is None else mask.detach().float().cpu(),
                            None if inpaint_image is None else inpaint_image.detach().float().cpu())
    return {"unet": dataclasses.replace(unet, zimage_controls=unet.zimage_controls + (applied,))}
