"""Fitting a model's step previews (nodeforge.training.preview) gives a file the loader reads and
whose previews follow the VAE's decodes."""
from __future__ import annotations

import shutil

import numpy as np
import torch

from nodeforge.paths import builtin_dir

MODEL = builtin_dir("resources") / "models" / "nodeforge-shapes"


def test_a_fitted_preview_file_loads_and_previews_like_the_decoder(tmp_path):
    from nodeforge.core.registry import builtin_module
    from nodeforge.training.preview import sample_latents, write_latent_preview

    assert (MODEL / "model_index.json").is_file(), f"the demo model {MODEL} is missing"
    model = tmp_path / "model"
    shutil.copytree(MODEL, model)
    torch.set_num_threads(2)
    spec = write_latent_preview(model, samples=16, seed=3, log=lambda _m: None, fit_steps=600)
    assert spec["mean_abs_error_255"] < 25
    own = builtin_module("loading").read_preview_rgb(model / "latent_preview.json", 4)
    assert own is not None and len(own) == 3            # the linear map and the decoder
    latents, pooled = sample_latents(model, 2, seed=11)   # latents the fit did not see
    preview = np.asarray(builtin_module("latents").preview_image(latents[:1], "sd1", own), dtype=np.float32)
    target = (pooled[0].permute(1, 2, 0).numpy() + 1) * 127.5
    assert preview.shape == (16, 16, 3) and np.abs(preview - target).mean() < 30
