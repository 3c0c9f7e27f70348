"""Z-Image's Fun ControlNet Union as a model patch (Load Model Patch + Apply Z-Image Fun ControlNet, ComfyUI's
ModelPatchLoader + QwenImageDiffsynthControlnet), checked against diffusers' ZImageControlNetPipeline and
ZImageControlNetInpaintPipeline on a tiny Z-Image (tests/nodes/tiny_zimage.py) and tiny ZImageControlNetModels
in the 1.0, 2.0 and 2.1 layouts; and the files it refuses."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import tiny_models as tm
import tiny_zimage as tz
from nodeforge.core.errors import NodeError
from tiny_models import latent_of

PROMPT = "a red circle on a blue background"
DATA = Path(__file__).parent.parent / "interop" / "data"
# (file stem, add_control_noise_refiner, control_in_dim): the three releases' shapes, tiny.
RELEASES = {"fun-1.0": (None, 16), "fun-2.0": ("control_layers", 33), "fun-2.1": ("control_noise_refiner", 33)}


def make_controlnet(refiner: str | None, in_dim: int, seed: int):
    from diffusers import ZImageControlNetModel

    torch.manual_seed(seed)
    net = ZImageControlNetModel(control_layers_places=[0, 1], control_refiner_layers_places=[0],
                                control_in_dim=in_dim, add_control_noise_refiner=refiner, dim=32,
                                n_refiner_layers=1, n_heads=2, n_kv_heads=2)
    return tm.trained_looking(net)


def save_patch(net, path: Path, zero_refiner: bool = False) -> Path:
    """The ControlNet as alibaba-pai ships it (one .safetensors in diffusers' keys) with its config beside it;
    2.0's file also holds its unused, all-zero noise-refiner control blocks."""
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    if zero_refiner:
        state.update({f"control_noise_refiner.0.{k}": torch.zeros_like(v)
                      for k, v in net.control_layers[0].state_dict().items()})
    save_file(state, str(path))
    net.save_config(str(path.with_suffix(".config")))
    return path


@pytest.fixture(scope="module")
def zc_dir(tmp_path_factory) -> Path:
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("zimagecontrol")
    for sub in ("checkpoints", "model_patches"):
        (root / sub).mkdir()
    parts = tz.make_zimage_components(0)
    folder = tz.save_zimage_folder(parts, root / "checkpoints" / "tiny-zimage")
    tz.save_separate_files(parts, folder, root)     # ComfyUI's layout, for the imported graph
    for i, (stem, (refiner, in_dim)) in enumerate(RELEASES.items()):
        save_patch(make_controlnet(refiner, in_dim, 10 + i), root / "model_patches" / f"{stem}.safetensors",
                   zero_refiner=stem == "fun-2.0")
    rgb = np.zeros((32, 32, 3), dtype=np.uint8)
    rgb[8:24, 8:24] = 255
    rgb[:, :4, 1] = 128
    Image.fromarray(rgb).save(root / "edges.png")
    photo = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    Image.fromarray(photo).save(root / "photo.png")
    mask = np.zeros((32, 32, 3), dtype=np.uint8)
    mask[4:20, 12:28] = 255
    Image.fromarray(mask).save(root / "mask.png")
    return root


@pytest.fixture(scope="module")
def zc_engine(make_engine, zc_dir, tmp_path_factory):
    return make_engine(tmp_path_factory.mktemp("zimagecontrolout"), zc_dir)


def controlled(zc_dir, patch: str, strength: float, seed: int, cfg: float = 1.0, inpaint: bool = False):
    """The shipped txt2img graph on the tiny Z-Image with the patch applied between the checkpoint and the sampler."""
    wf = tm.shipped_txt2img("tiny-zimage", steps=4, seed=seed, cfg=cfg)
    wf.add("LoadImage", {"path": str(zc_dir / "edges.png")}, node_id="img")
    wf.add("ModelPatchLoader", {"model_patch": patch}, node_id="patch")
    inputs = {"unet": ("1", "unet"), "model_patch": ("patch", "model_patch"), "vae": ("1", "vae"),
              "image": ("img", "image")}
    if inpaint:
        wf.add("LoadImage", {"path": str(zc_dir / "photo.png")}, node_id="photo")
        wf.add("LoadImage", {"path": str(zc_dir / "mask.png")}, node_id="maskimg")
        wf.add("ImageToMask", {"channel": "red"}, {"image": ("maskimg", "image")}, node_id="mask")
        inputs.update(mask=("mask", "mask"), inpaint_image=("photo", "image"))
    wf.add("ZImageFunControlNet", {"strength": strength}, inputs, node_id="fun")
    wf.nodes["5"].inputs["unet"] = ("fun", "unet")
    return wf


def theirs(zc_dir, patch: str, strength: float, seed: int, cfg: float = 1.0, inpaint: bool = False) -> torch.Tensor:
    import diffusers

    folder = zc_dir / "model_patches"
    refiner, in_dim = RELEASES[patch]
    net = diffusers.ZImageControlNetModel.from_config(diffusers.ZImageControlNetModel.load_config(
        str(folder / f"{patch}.config")))
    from safetensors.torch import load_file

    state = load_file(str(folder / f"{patch}.safetensors"))
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith("control_noise_refiner.")
                         or refiner != "control_layers"})
    base = tm.pipeline(zc_dir / "checkpoints" / "tiny-zimage", "ZImagePipeline")
    cls = diffusers.ZImageControlNetInpaintPipeline if inpaint else diffusers.ZImageControlNetPipeline
    pipe = cls(**base.components, controlnet=net)
    pipe.set_progress_bar_config(disable=True)
    extra = {}
    if inpaint:
        extra = dict(image=Image.open(zc_dir / "photo.png"), mask_image=Image.open(zc_dir / "mask.png"))
    return pipe(PROMPT, control_image=Image.open(zc_dir / "edges.png"), controlnet_conditioning_scale=strength,
                num_inference_steps=4, height=32, width=32, guidance_scale=cfg - 1.0, negative_prompt="",
                generator=torch.Generator().manual_seed(seed), output_type="latent", **extra).images


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


# -- the same latents as diffusers --------------------------------------------------------------------------
@pytest.mark.parametrize("patch", list(RELEASES))
def test_fun_controlnet_gives_zimage_controlnet_pipelines_latents(zc_engine, zc_dir, patch):
    ours = latent_of(zc_engine, controlled(zc_dir, patch, 0.8, seed=5))
    assert _max_diff(ours, theirs(zc_dir, patch, 0.8, seed=5)) < 1e-4
    plain = latent_of(zc_engine, tm.shipped_txt2img("tiny-zimage", steps=4, seed=5, cfg=1.0))
    assert _max_diff(ours, plain) > 1e-3       # the control image steered


def test_fun_controlnet_with_cfg_runs_the_control_on_both_prompts(zc_engine, zc_dir):
    ours = latent_of(zc_engine, controlled(zc_dir, "fun-2.1", 1.0, seed=2, cfg=3.0))
    assert _max_diff(ours, theirs(zc_dir, "fun-2.1", 1.0, seed=2, cfg=3.0)) < 1e-4


@pytest.mark.parametrize("patch", ["fun-2.0", "fun-2.1"])
def test_a_2x_patch_inpaints_as_the_controlnet_inpaint_pipeline(zc_engine, zc_dir, patch):
    ours = latent_of(zc_engine, controlled(zc_dir, patch, 0.9, seed=4, inpaint=True))
    assert _max_diff(ours, theirs(zc_dir, patch, 0.9, seed=4, inpaint=True)) < 1e-4
    assert _max_diff(ours, latent_of(zc_engine, controlled(zc_dir, patch, 0.9, seed=4))) > 1e-3


def test_strength_0_is_the_model_without_the_controlnet(zc_engine, zc_dir):
    ours = latent_of(zc_engine, controlled(zc_dir, "fun-2.1", 0.0, seed=6))
    plain = latent_of(zc_engine, tm.shipped_txt2img("tiny-zimage", steps=4, seed=6, cfg=1.0))
    assert torch.equal(ours, plain)
    run = zc_engine.run(controlled(zc_dir, "fun-1.0", 0.0, seed=6), outputs=["5"])
    assert torch.equal(run.outputs["5"]["latent"]["samples"], plain)


def test_releases_are_told_apart_from_their_weights_as_diffusers_does(zc_dir):
    from safetensors.torch import load_file

    from nodes.families.zimage_control import config_from_state, read_model_patch, version_of

    for stem in RELEASES:
        patch = read_model_patch(zc_dir / "model_patches" / f"{stem}.safetensors", "cpu")
        assert patch.version == stem[4:] and patch.inpaints == (stem != "fun-1.0")
    # Without a config beside it, the shape comes from the weights, spread over Z-Image-Turbo's 30 layers.
    config = config_from_state(load_file(str(zc_dir / "model_patches" / "fun-2.1.safetensors")))
    assert (config["dim"], config["n_heads"], config["control_in_dim"], config["add_control_noise_refiner"]) == \
        (32, 2, 33, "control_noise_refiner")
    assert config["control_layers_places"] == [0, 15]
    full = {"control_all_x_embedder.2-1.weight": torch.zeros(3840, 33 * 4),
            "control_layers.0.attention.norm_q.weight": torch.zeros(128),
            **{f"control_layers.{i}.adaLN_modulation.0.weight": torch.zeros(1) for i in range(15)}}
    assert version_of(full) == "2.0"
    config = config_from_state(full)
    assert config["control_layers_places"] == list(range(0, 30, 2)) and config["n_heads"] == 30


# -- refusals -------------------------------------------------------------------------------------------------
def _refusal(tmp_path: Path, name: str, state: dict[str, torch.Tensor] | None = None, raw: bytes | None = None) -> str:
    from safetensors.torch import save_file

    from nodes.families.zimage_control import read_model_patch

    path = tmp_path / name
    if raw is not None:
        path.write_bytes(raw)
    else:
        save_file(state, str(path))
    with pytest.raises(NodeError) as info:
        read_model_patch(path, "cpu")
    message = str(info.value)
    assert "\n" not in message and name in message and info.value.field == "model_patch"
    return message


def test_a_qwen_image_diffsynth_patch_is_refused_in_one_line(tmp_path):
    message = _refusal(tmp_path, "qwen_image_canny_diffsynth_controlnet.safetensors",
                       {"controlnet_blocks.0.y_rms.weight": torch.ones(8), "img_in.weight": torch.ones(8, 64)})
    assert "NodeForge does not run Qwen-Image DiffSynth" in message


def test_other_files_are_refused_in_one_line_naming_them(tmp_path):
    assert "not a model patch NodeForge knows" in _refusal(
        tmp_path, "some-lora.safetensors", {"lora_unet_x.lora_down.weight": torch.ones(2, 2)})
    assert "USO" in _refusal(tmp_path, "uso.safetensors", {"feature_embedder.mid_layer_norm.bias": torch.ones(2)})
    assert ".safetensors only" in _refusal(tmp_path, "fun.ckpt", raw=b"\x80\x04 not a pickle to open")
    assert "fun-cut.safetensors" in _refusal(tmp_path, "fun-cut.safetensors", raw=b"\x10\x00\x00\x00garbage")
    lopsided = {"control_all_x_embedder.2-1.weight": torch.ones(32, 64),
                "control_layers.0.attention.norm_q.weight": torch.ones(16)}
    assert "does not match" in _refusal(tmp_path, "fun-lopsided.safetensors", lopsided)


def test_a_mask_is_refused_on_a_1_0_patch_and_without_the_image_to_inpaint(zc_engine, zc_dir):
    from nodeforge.core.errors import WorkflowError

    wf = controlled(zc_dir, "fun-1.0", 1.0, seed=1, inpaint=True)
    with pytest.raises(WorkflowError, match="cannot inpaint: unlink the mask"):
        zc_engine.run(wf, outputs=["5"])
    wf = controlled(zc_dir, "fun-2.1", 1.0, seed=1, inpaint=True)
    del wf.nodes["fun"].inputs["inpaint_image"]
    with pytest.raises(WorkflowError, match="link it to inpaint_image"):
        zc_engine.run(wf, outputs=["5"])


def test_a_patch_on_another_family_is_refused(zc_engine, zc_dir):
    from nodeforge.core.errors import WorkflowError

    wf = controlled(zc_dir, "fun-2.1", 1.0, seed=1)
    wf.nodes["1"].params["checkpoint"] = "tiny-sd"
    problems = [(p.node_id, p.field, p.message) for p in zc_engine.validate(wf) if p.node_id == "fun"]
    assert len(problems) == 1 and problems[0][:2] == ("fun", "unet")
    assert "sd1 model; the Z-Image Fun ControlNet steers Z-Image models" in problems[0][2]
    with pytest.raises(WorkflowError, match="the Z-Image Fun ControlNet steers Z-Image models: link a Z-Image"):
        zc_engine.run(wf, outputs=["5"])
    with pytest.raises(NodeError, match="tiny-sd is a sd1 model; the Z-Image Fun ControlNet steers"):
        from nodes.families.zimage_control import run_zimage_fun_controlnet
        from nodes.loading import load_checkpoint

        unet = load_checkpoint(zc_engine.model_paths.roots[0] / "checkpoints" / "tiny-sd", "cpu").wrappers()[0]
        run_zimage_fun_controlnet(None, unet, None, None, torch.zeros(1, 8, 8, 3), 1.0)


def test_model_patches_are_a_model_kind_with_its_folder():
    from nodeforge.core.models import KIND_NAMES, SUBFOLDERS
    from nodeforge.core.types import FileKind

    assert SUBFOLDERS[FileKind.MODEL_PATCH] == "model_patches" and KIND_NAMES[FileKind.MODEL_PATCH] == "model patch"


# -- ComfyUI's graph --------------------------------------------------------------------------------------------
COMFY_MAP = {"ZImageTurbo\\z_image_turbo_bf16.safetensors": "z-image-tiny",
             "Z-Image-Turbo-Fun-Controlnet-Union-2.1.safetensors": "fun-2.1"}


def test_comfyuis_fun_controlnet_graph_imports_runs_and_exports_back(zc_engine, zc_dir, tmp_path):
    # modelled on a shared ComfyUI graph: separate Z-Image files, ModelPatchLoader + QwenImageDiffsynthControlnet,
    # ModelSamplingAuraFlow, the latent sized from the control image; euler here, to compare with diffusers;
    # beside it the newer ZImageFunControlnet class, which nothing samples
    import json

    from nodeforge.interop import export_comfyui_api, read_workflow

    import shutil

    path = tmp_path / "comfy-zimage-fun-controlnet-api.json"    # with its control image beside it
    shutil.copy(DATA / path.name, path)
    shutil.copy(zc_dir / "edges.png", tmp_path / "control_input.png")
    imported = read_workflow(path, registry=zc_engine.registry, model_paths=zc_engine.model_paths,
                             model_map=COMFY_MAP)
    wf = imported.workflow
    assert all(n.type != "comfyui.Placeholder" for n in wf.nodes.values())
    assert (wf.nodes["64"].type, wf.nodes["64"].params) == ("ModelPatchLoader", {"model_patch": "fun-2.1"})
    assert (wf.nodes["60"].type, wf.nodes["60"].params, dict(wf.nodes["60"].inputs)) == (
        "ZImageFunControlNet", {"strength": 0.75},
        {"unet": ("46", "unet"), "model_patch": ("64", "model_patch"), "vae": ("40", "vae"), "image": ("58", "image")})
    assert zc_engine.validate(wf) == []
    ours = zc_engine.run(wf, outputs=["44"]).outputs["44"]["latent"]["samples"]
    assert _max_diff(ours, theirs(zc_dir, "fun-2.1", 0.75, seed=9)) < 1e-4

    original = json.loads(path.read_text())
    exported = export_comfyui_api(read_workflow(path, registry=zc_engine.registry).workflow,
                                  registry=zc_engine.registry)
    for nid in ("64", "60", "61"):
        assert exported[nid]["class_type"] == original[nid]["class_type"]
        assert exported[nid]["inputs"] == original[nid]["inputs"], nid


def test_comfyuis_zimage_fun_controlnet_class_imports_with_its_inpaint_image_and_exports_back(zc_engine):
    from nodeforge.interop import export_comfyui_api, read_workflow

    prompt = {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": "z_image_turbo_bf16.safetensors",
                                                           "weight_dtype": "default"}},
              "2": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
              "3": {"class_type": "ModelPatchLoader", "inputs": {"name": "fun-2.1.safetensors"}},
              "4": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
              "5": {"class_type": "ZImageFunControlnet",
                    "inputs": {"model": ["1", 0], "model_patch": ["3", 0], "vae": ["2", 0], "strength": 0.6,
                               "image": ["4", 0], "inpaint_image": ["4", 0], "mask": ["4", 1]}}}
    wf = read_workflow(prompt, registry=zc_engine.registry).workflow
    assert dict(wf.nodes["5"].inputs) == {"unet": ("1", "unet"), "model_patch": ("3", "model_patch"),
                                          "vae": ("2", "vae"), "image": ("4", "image"),
                                          "inpaint_image": ("4", "image"), "mask": ("4", "mask")}
    back = export_comfyui_api(wf, registry=zc_engine.registry)["5"]
    assert (back["class_type"], back["inputs"]) == ("ZImageFunControlnet", prompt["5"]["inputs"])


def test_the_ui_form_imports_as_the_api_form(registry):
    from nodeforge.interop import read_workflow

    ui = read_workflow(DATA / "comfy-zimage-fun-controlnet-0.4.json", registry=registry).workflow
    assert (ui.nodes["3"].type, ui.nodes["3"].params) == (
        "ModelPatchLoader", {"model_patch": "Z-Image-Turbo-Fun-Controlnet-Union-2.1.safetensors"})
    assert (ui.nodes["5"].type, ui.nodes["5"].params, dict(ui.nodes["5"].inputs)) == (
        "ZImageFunControlNet", {"strength": 0.75},
        {"unet": ("1", "unet"), "model_patch": ("3", "model_patch"), "vae": ("2", "vae"), "image": ("4", "image")})
    assert (ui.nodes["6"].params, dict(ui.nodes["6"].inputs)) == (
        {"strength": 0.5}, {"unet": ("5", "unet"), "model_patch": ("3", "model_patch"), "vae": ("2", "vae"),
                            "image": ("4", "image"), "inpaint_image": ("4", "image"), "mask": ("4", "mask")})
