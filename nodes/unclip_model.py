"""SD 2.1 unCLIP models (Stability's stable-diffusion-2-1-unclip, -h with OpenCLIP ViT-H/14, -l with OpenAI
CLIP ViT-L/14): an SD 2.1 UNet whose class embedding ("projection", diffusers' `class_labels`) reads an
image's CLIP embedding, noise-augmented, beside the prompt.

Their parts besides the SD 2.x ones: the image encoder, and the noise augmentor (`NoiseAugmentor`: the CLIP
embedding's mean and std and a 1000-step squaredcos_cap_v2 schedule). A diffusers folder in
StableUnCLIPImg2ImgPipeline's layout keeps them in image_encoder/ + feature_extractor/, image_normalizer/
and image_noising_scheduler/; a single file (sd21-unclip-h.ckpt, as Stability ships it) keeps the encoder
in OpenCLIP's layout under `embedder.model.visual.` and the schedule's buffers under `noise_augmentor.`
(`noise_augmentor.betas`: its length is the number of levels; the file holds no mean and std, so they are
0 and 1, as ComfyUI loads it), its configs from resources/configs/sd2-unclip-h or -l (told apart by the
UNet's class-embedding width) or a `<name>.config/` folder beside it.

The class label a prompt gives (`NoiseAugmentor.class_label`) is ComfyUI's unCLIP rule: for each image
(each row of each unCLIPConditioning's embedding) the embedding normalised, q-sampled at level
round(999 x noise_augmentation), unnormalised and followed by the level's sinusoidal embedding, all times
the strength; several images are summed and the sum's embedding part is augmented again at level
round(999 x 0.05); a prompt without images gives zeros (the negative, as diffusers' and ComfyUI's). One
image at strength 1 is diffusers' StableUnCLIPImg2ImgPipeline `noise_image_embeddings` at noise_level =
that level. The noise comes from a generator seeded with 0 (ComfyUI seeds it with the sampler's seed - 10,
so augmented images differ from ComfyUI's, as the SDXL unCLIP path's do).
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nodeforge.core.errors import NodeError
from nodeforge.core.types import FileKind

VISION_PREFIX = "embedder.model.visual."
AUGMENTOR_PREFIX = "noise_augmentor."
MERGE_AUGMENTATION = 0.05      # the level several summed images are augmented at again (ComfyUI's default)
# configs/sd2-unclip-<variant> by the width of the image embedding the UNet's class embedding reads
VARIANTS = {1024: "h", 768: "l"}


@dataclass(frozen=True, eq=False)
class NoiseAugmentor:
    """The unCLIP model's noise augmentor: the image embedding's mean and std [1, D] and its schedule's
    diffusers DDPMScheduler config."""

    mean: torch.Tensor
    std: torch.Tensor
    scheduler_config: dict

    @property
    def width(self) -> int:
        return int(self.mean.shape[-1])

    @property
    def levels(self) -> int:
        return int(self.scheduler_config.get("num_train_timesteps", 1000))

    @functools.cached_property
    def _scheduler(self) -> Any:
        from diffusers import DDPMScheduler

        return DDPMScheduler.from_config(self.scheduler_config)

    def level(self, noise_augmentation: float) -> int:
        return round((self.levels - 1) * float(noise_augmentation))

    def augment(self, embeds: torch.Tensor, level: int, generator: torch.Generator) -> torch.Tensor:
        """[N, D] embeddings -> [N, 2D]: normalised, q-sampled at `level`, unnormalised, then the level's
        sinusoidal embedding (as diffusers' noise_image_embeddings)."""
        from diffusers.models.embeddings import get_timestep_embedding

        embeds = embeds.float()
        noise = torch.randn(embeds.shape, generator=generator, dtype=torch.float32)
        levels = torch.tensor([level] * embeds.shape[0])
        scaled = (embeds - self.mean) * 1.0 / self.std
        noised = self._scheduler.add_noise(scaled, noise, levels) * self.std + self.mean
        stamp = get_timestep_embedding(levels, self.width, flip_sin_to_cos=True, downscale_freq_shift=0)
        return torch.cat([noised, stamp.to(noised.dtype)], 1)

    def class_label(self, items: tuple, field: str) -> torch.Tensor:
        """A prompt's class label [1, 2D] from its unCLIPConditioning items ((embeds, strength,
        noise_augmentation) each); zeros without any."""
        if not items:
            return torch.zeros(1, 2 * self.width)
        generator = torch.Generator().manual_seed(0)
        rows = []
        for embeds, strength, noise in items:
            if embeds.shape[-1] != self.width:
                raise NodeError(f"the image embedding is {embeds.shape[-1]} wide but this unCLIP model reads {self.width}: "
                                "encode the image with the clip_vision of its own unCLIP Checkpoint Loader (ViT-H for "
                                "sd21-unclip-h, ViT-L for sd21-unclip-l)", field=field)
            rows += [self.augment(row[None], self.level(noise), generator) * float(strength) for row in embeds]
        if len(rows) == 1:
            return rows[0]
        total = torch.stack(rows).sum(0)
        return self.augment(total[:, :self.width], self.level(MERGE_AUGMENTATION), generator)


@dataclass(frozen=True, eq=False)
class AbsentClipVision:
    """unCLIP Checkpoint Loader's clip_vision for a checkpoint that has none: the model loads (as in ComfyUI,
    whose output is then empty), and whatever uses the encoder says so in one line."""

    name: str

    def nodeforge_holds(self) -> tuple:
        return ()

    def _refuse(self) -> NodeError:
        from .ipadapter_specs import absent_encoder

        return NodeError(absent_encoder(self.name), field="clip_vision")

    @property
    def model(self) -> Any:
        raise self._refuse()

    @property
    def processor(self) -> Any:
        raise self._refuse()

    def pixels(self, image: torch.Tensor) -> torch.Tensor:
        raise self._refuse()


# -- detection ---------------------------------------------------------------------------------------------
def is_unclip_folder(path: Path) -> bool:
    return (path / "image_normalizer").is_dir() and (path / "image_noising_scheduler").is_dir()


def is_unclip_state(keys: Any) -> bool:
    return any(k.startswith(VISION_PREFIX) for k in keys)


def shipped_config(path: Path, state: dict[str, torch.Tensor]) -> Path:
    """resources/configs/sd2-unclip-h or -l, by the width of the class embedding's input."""
    from .loading import UNET_PREFIX, configs_dir

    weight = state.get(UNET_PREFIX + "label_emb.0.0.weight")
    width = int(weight.shape[1]) // 2 if weight is not None and weight.ndim == 2 else 0
    if width not in VARIANTS:
        raise NodeError(f"{path.name} is an unCLIP checkpoint whose UNet reads a {width}-wide image embedding; only SD 2.1 "
                        "unCLIP -h (1024) and -l (768) have shipped configs: put its diffusers-layout configs in a "
                        f"folder named '{path.stem}.config' beside it", field="checkpoint")
    return configs_dir() / f"sd2-unclip-{VARIANTS[width]}"


# -- the parts ---------------------------------------------------------------------------------------------
def folder_augmentor(path: Path) -> NoiseAugmentor:
    """image_normalizer/ (mean, std) and image_noising_scheduler/ of a StableUnCLIPImg2ImgPipeline folder."""
    from .loading import read_state_dict

    files = sorted((path / "image_normalizer").glob("*.safetensors"))
    if not files:
        raise NodeError(f"{path.name}/image_normalizer holds no .safetensors weights (the CLIP embedding's mean and "
                        "std); copy that folder from the model again", field="checkpoint")
    state, _ = read_state_dict(files[0])
    if "mean" not in state or "std" not in state:
        raise NodeError(f"{path.name}/image_normalizer/{files[0].name} has no mean and std; copy that folder from the "
                        "model again", field="checkpoint")
    sched = json.loads((path / "image_noising_scheduler" / "scheduler_config.json").read_text())
    return NoiseAugmentor(state["mean"].float().reshape(1, -1), state["std"].float().reshape(1, -1), sched)


def file_augmentor(state: dict[str, torch.Tensor], config: Path, width: int) -> NoiseAugmentor:
    """A single file's noise augmentor: its number of levels from `noise_augmentor.betas` where it has them,
    its mean and std where it holds them (Stability's files do not: 0 and 1)."""
    file = config / "image_noising_scheduler" / "scheduler_config.json"
    sched = json.loads(file.read_text()) if file.is_file() else {"beta_schedule": "squaredcos_cap_v2"}
    betas = state.get(AUGMENTOR_PREFIX + "betas")
    if betas is not None:
        sched = dict(sched, num_train_timesteps=int(betas.shape[0]))
    mean = state.get(AUGMENTOR_PREFIX + "data_mean", torch.zeros(1, width)).float().reshape(1, -1)
    std = state.get(AUGMENTOR_PREFIX + "data_std", torch.ones(1, width)).float().reshape(1, -1)
    return NoiseAugmentor(mean, std, sched)


def open_clip_vision_state(state: dict[str, torch.Tensor], prefix: str = VISION_PREFIX) -> dict[str, torch.Tensor]:
    """An OpenCLIP / OpenAI CLIP vision tower (`<prefix>conv1.weight`, `transformer.resblocks.N.attn.in_proj_weight`,
    `proj` ...) in transformers' CLIPVisionModelWithProjection names."""
    visual = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    out = {"vision_model.embeddings.class_embedding": visual["class_embedding"],
           "vision_model.embeddings.position_embedding.weight": visual["positional_embedding"],
           "vision_model.embeddings.patch_embedding.weight": visual["conv1.weight"],
           "visual_projection.weight": visual["proj"].T.contiguous()}
    for ours, theirs in (("pre_layrnorm", "ln_pre"), ("post_layernorm", "ln_post")):
        for p in ("weight", "bias"):
            out[f"vision_model.{ours}.{p}"] = visual[f"{theirs}.{p}"]
    layers = {int(k.split(".")[2]) for k in visual if k.startswith("transformer.resblocks.")}
    for i in sorted(layers):
        src, dst = f"transformer.resblocks.{i}.", f"vision_model.encoder.layers.{i}."
        for p in ("weight", "bias"):
            for name, part in zip("qkv", visual[f"{src}attn.in_proj_{p}"].chunk(3)):
                out[f"{dst}self_attn.{name}_proj.{p}"] = part.contiguous()
            for ours, theirs in (("self_attn.out_proj", "attn.out_proj"), ("layer_norm1", "ln_1"),
                                 ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")):
                out[f"{dst}{ours}.{p}"] = visual[f"{src}{theirs}.{p}"]
    return out


def file_clip_vision(path: Path, state: dict[str, torch.Tensor], config: Path, device: str) -> Any:
    """The single file's image encoder (its OpenCLIP-layout `embedder.model.visual.*`) as a CLIP_VISION."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from .ipadapter import ClipVision, _image_processor
    from .loading import _finish, _load_into, pick_dtype

    try:
        converted = open_clip_vision_state(state)
    except KeyError as exc:
        raise NodeError(f"{path.name}'s image encoder (embedder.model.visual.*) lacks {exc.args[0]}: the file is "
                        "incomplete or damaged, download it again", field="checkpoint") from None
    vision_config = CLIPVisionConfig.from_pretrained(str(config / "image_encoder"), local_files_only=True)
    with torch.device("meta"):
        model = CLIPVisionModelWithProjection(vision_config)
    _load_into(model, converted, "image encoder")
    _finish([model], device, pick_dtype(device))
    processor_folder = config / "feature_extractor"
    return ClipVision(model, _image_processor(processor_folder if processor_folder.is_dir() else None,
                                              int(vision_config.image_size)), path.stem)


def folder_clip_vision(path: Path, device: str) -> Any:
    """A StableUnCLIPImg2ImgPipeline folder's image_encoder/ with feature_extractor/'s processor; absent
    (StableUnCLIPPipeline, text-to-image with a prior) when it has none."""
    from transformers import CLIPVisionModelWithProjection

    from .ipadapter import ClipVision, _image_processor
    from .loading import _finish, _from_pretrained, pick_dtype

    if not (path / "image_encoder").is_dir():
        return AbsentClipVision(path.name)
    model = _from_pretrained(CLIPVisionModelWithProjection, path, "image_encoder")
    _finish([model], device, pick_dtype(device))
    processor_folder = path / "feature_extractor"
    return ClipVision(model, _image_processor(processor_folder if processor_folder.is_dir() else None,
                                              int(model.config.image_size)), path.name)


# -- the node ----------------------------------------------------------------------------------------------
def run_unclip_checkpoint_loader(ctx: Any, checkpoint: str) -> dict[str, Any]:
    from .loading import load_checkpoint

    path = Path(ctx.resolve_file(FileKind.CHECKPOINT, checkpoint))
    loaded = load_checkpoint(path, ctx.device, ctx.shared)
    unet, clip, vae = loaded.wrappers()
    clip_vision = loaded.extra.get("clip_vision") or AbsentClipVision(path.stem if path.is_file() else path.name)
    return {"unet": unet, "clip": clip, "vae": vae, "clip_vision": clip_vision}
