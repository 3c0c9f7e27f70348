"""The UNet generation as a family: SD 1.x, 2.x and SDXL (base and refiner), epsilon or v prediction.

Its work lives where it always has (nodes/loading.py, nodes/prompt.py, and nodes/sampling.py, whose
base SamplingBehaviour is this family's way to sample); this module is the family's face in the
table of nodes/families/__init__.py.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

MODEL_FAMILIES = ("sd1", "sd2", "sdxl", "custom")


def claims_folder(path: Path) -> bool:
    return (path / "unet").is_dir() or (path / "model_index.json").is_file() and not (path / "transformer").is_dir()


def claims_state(keys: Any) -> bool:
    return any(k.startswith("model.diffusion_model.input_blocks.") for k in keys)


def load_folder(path: Path, device: str) -> Any:
    from ..loading import load_diffusers_folder

    return load_diffusers_folder(path, device)


def load_file(path: Path, device: str, state: dict, metadata: dict) -> Any:
    from ..loading import load_single_file

    return load_single_file(path, device, (state, metadata))


def encode(clip: Any, text: str, embeddings: Any = None, **texts: str) -> dict[str, Any]:
    from ..prompt import encode as encode_unet

    return encode_unet(clip, text, embeddings, text_l=texts.get("text_l"))



MODEL_SAMPLINGS = ("eps", "v_prediction", "lcm", "x0", "img_to_img")
_PREDICTIONS = {"eps": "epsilon", "v_prediction": "v_prediction"}


def run_model_sampling_discrete(ctx: Any, unet: Any, sampling: str, zsnr: bool) -> dict[str, Any]:
    """ComfyUI's ModelSamplingDiscrete on a UNet model: what its output predicts (noise or v) and, with
    zsnr, the noise schedule rescaled to zero terminal SNR (diffusers' rescale_betas_zero_snr), for
    models trained so (v-prediction SDXL finetunes); the input model is unchanged."""
    import dataclasses

    from nodeforge.core.errors import NodeError

    if unet.prediction_type not in ("epsilon", "v_prediction"):
        raise NodeError(f"{unet.name} is a {unet.family} model predicting {unet.prediction_type}; ModelSamplingDiscrete "
                        "applies to SD 1.x/2.x/XL UNet models (for SD3 use ModelSamplingSD3)", field="unet")
    if sampling not in _PREDICTIONS:
        raise NodeError(f"sampling {sampling!r} is not supported yet (only eps and v_prediction); use eps or "
                        "v_prediction, or for an LCM model the lcm sampler of UNet Denoise", field="sampling")
    config = dict(unet.scheduler_config, prediction_type=_PREDICTIONS[sampling], rescale_betas_zero_snr=bool(zsnr))
    return {"unet": dataclasses.replace(unet, scheduler_config=config, prediction_type=_PREDICTIONS[sampling])}
