"""VAELoader: a separate VAE (diffusers folder, or a single file in the original or diffusers
layout) decodes in place of the checkpoint's, to the same numbers as diffusers' own model."""
from __future__ import annotations

import json

import pytest
import torch

from nodeforge.core.errors import NodeError
from nodeforge.core.registry import builtin_module


@pytest.fixture(scope="module")
def vae_root(tmp_path_factory):
    """A models root with a vae/ folder: the tiny checkpoint's own VAE and another one in every layout."""
    from diffusers import AutoencoderKL
    from safetensors.torch import save_file

    import tiny_models as tm

    root = tmp_path_factory.mktemp("vae-models")
    folder = root / "vae"
    folder.mkdir()
    tm.make_components(0)["vae"].save_pretrained(str(folder / "same-vae"))   # = tiny-sd's VAE
    other = tm.make_components(7)["vae"]
    other.save_pretrained(str(folder / "other-vae"))
    ldm = {k[len("first_stage_model."):]: v for k, v in tm.vae_ldm_state(other).items()}
    files = {"other-ldm.safetensors": ldm,
             "other-in-checkpoint.safetensors": {"first_stage_model." + k: v for k, v in ldm.items()},
             "other-diffusers.safetensors": {k: v.contiguous() for k, v in other.state_dict().items()}}
    for name, state in files.items():
        save_file(state, str(folder / name))
    torch.save(ldm, str(folder / "other-ldm-pt.pt"))
    for name in [*files, "other-ldm-pt.pt"]:
        config = folder / (name.rsplit(".", 1)[0] + ".config")
        config.mkdir()
        (config / "config.json").write_text(json.dumps(dict(other.config)))
    AutoencoderKL(block_out_channels=(16, 32, 32), layers_per_block=1, latent_channels=8, norm_num_groups=8,
                  down_block_types=("DownEncoderBlock2D",) * 3,
                  up_block_types=("UpDecoderBlock2D",) * 3).save_pretrained(str(folder / "eight-channel-vae"))
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(2, 4)}, str(folder / "not-a-vae.safetensors"))
    return root


@pytest.fixture(scope="module")
def vae_engine(make_engine, vae_root, tmp_path_factory):
    return make_engine(tmp_path_factory.mktemp("out"), vae_root)


def _decoded_with(engine, make_txt2img, vae_name):
    wf = make_txt2img(seed=6)
    wf.add("VAELoader", {"vae": vae_name}, node_id="vae")
    wf.add("VAEDecode", {}, {"vae": ("vae", "vae"), "latent": ("denoise", "latent")}, node_id="own")
    out = engine.run(wf, outputs=["decode", "own", "denoise", "vae"]).outputs
    return out["decode"]["image"], out["own"]["image"], out["denoise"]["latent"]["samples"], out["vae"]["vae"]


def test_the_checkpoints_own_vae_loaded_on_its_own_decodes_bitwise_the_same(vae_engine, make_txt2img):
    checkpoint_image, image, _, vae = _decoded_with(vae_engine, make_txt2img, "same-vae")
    assert torch.equal(image, checkpoint_image)
    assert (vae.scaling_factor, vae.factor, vae.latent_channels) == (0.5, 4, 4)


@pytest.mark.parametrize("name", ["other-vae", "other-ldm", "other-in-checkpoint", "other-diffusers",
                                  "other-ldm-pt.pt"])
def test_another_vae_replaces_the_checkpoints_in_every_layout(vae_engine, make_txt2img, name):
    import tiny_models as tm

    checkpoint_image, image, latent, _ = _decoded_with(vae_engine, make_txt2img, name)
    other = tm.make_components(7)["vae"].eval()
    with torch.no_grad():
        expected = (other.decode(latent / 0.5).sample / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)
    torch.testing.assert_close(image, expected, atol=1e-5, rtol=0)
    assert (image - checkpoint_image).abs().max() > 0.01


def test_loading_a_vae_leaves_the_checkpoints_vae_as_it_was(vae_engine, make_txt2img):
    out = vae_engine.run(make_txt2img(), outputs=["ckpt"]).outputs
    before = {k: v.clone() for k, v in out["ckpt"]["vae"].vae.state_dict().items()}
    _decoded_with(vae_engine, make_txt2img, "other-ldm")
    after = out["ckpt"]["vae"].vae.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_vae_of_other_latent_channels_is_refused_at_decode(vae_engine, make_txt2img):
    from nodeforge.core.errors import WorkflowError

    with pytest.raises(WorkflowError, match="the latent has 4 channels but this VAE takes 8"):
        _decoded_with(vae_engine, make_txt2img, "eight-channel-vae")


def test_a_file_that_is_not_a_vae_and_a_missing_name_are_reported(vae_engine, make_txt2img, vae_root):
    from nodeforge.core.errors import WorkflowError

    with pytest.raises(WorkflowError, match="not-a-vae.safetensors holds no VAE"):
        _decoded_with(vae_engine, make_txt2img, "not-a-vae")
    wf = make_txt2img()
    wf.add("VAELoader", {"vae": "nowhere"}, node_id="vae")
    [problem] = vae_engine.validate(wf)
    assert problem.node_id == "vae" and problem.field == "vae"
    assert "'nowhere' not found" in problem.message and str(vae_root / "vae") in problem.message


def test_vae_names_list_folders_and_files(vae_root):
    from nodeforge.core.models import ModelPaths
    from nodeforge.core.types import FileKind

    names = ModelPaths(roots=[vae_root], include_builtin=False).names(FileKind.VAE)
    assert {"same-vae", "other-vae", "other-ldm.safetensors", "other-ldm-pt.pt"} <= set(names)
    assert "other-ldm.config" not in names


def test_a_standard_vae_file_is_sdxl_when_its_name_or_metadata_says_so(tmp_path):
    vae_loading = builtin_module("vae_loading")
    state = {"encoder.conv_in.weight": torch.zeros(128, 3, 3, 3), "encoder.conv_out.weight": torch.zeros(8, 512, 3, 3)}
    pick = lambda name, meta=None: vae_loading.standard_config(tmp_path / name, state, meta or {}).parent.name  # noqa: E731
    assert pick("sdxl_vae.safetensors") == "sdxl"
    assert pick("sdxl-vae-fp16-fix.safetensors") == "sdxl"
    assert pick("fixed.safetensors", {"modelspec.architecture": "stable-diffusion-xl-v1-base/vae"}) == "sdxl"
    assert pick("vae-ft-mse-840000-ema-pruned.safetensors") == "sd1"
    config = json.loads((vae_loading.standard_config(tmp_path / "sdxl_vae.safetensors", state, {}) / "config.json")
                        .read_text())
    assert config["scaling_factor"] == 0.13025
    wide = dict(state, **{"encoder.conv_out.weight": torch.zeros(32, 512, 3, 3)})   # 16 channels: Flux's ae (issue 29)
    assert vae_loading.standard_config(tmp_path / "flux-ae.safetensors", wide, {}).parent.name == "flux"
    odd = dict(state, **{"encoder.conv_out.weight": torch.zeros(24, 512, 3, 3)})
    with pytest.raises(NodeError, match="latent channels 12.*'odd-ae.config' beside it"):
        vae_loading.standard_config(tmp_path / "odd-ae.safetensors", odd, {})
