"""IP-Adapter through IPAdapterLoader, CLIPVisionLoader and IPAdapterApply: a tiny random CLIP vision
encoder and random IP-Adapter weights in h94's layout (built as diffusers' own tests build them,
`create_ip_adapter_state_dict`), checked against diffusers' StableDiffusionPipeline with
`load_ip_adapter` / `set_ip_adapter_scale` / `ip_adapter_image` on the tiny SD model."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from nodeforge.core.errors import WorkflowError

import tiny_models as tm

STEPS, SEED, CFG = 4, 5, 5.0
VISION = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=3, image_size=32,
              patch_size=4, projection_dim=24, hidden_act="gelu")


def _encoder(seed: int = 0):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    model = CLIPVisionModelWithProjection(CLIPVisionConfig(**VISION)).eval()
    for module in model.modules():   # trained encoders have non-zero layer-norm biases
        if isinstance(module, torch.nn.LayerNorm):
            torch.nn.init.normal_(module.bias, 0.0, 0.2)
    return model


def _processor():
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})


def ip_adapter_state(unet, embed_dim: int, seed: int = 1, gain: float = 3.0) -> dict[str, torch.Tensor]:
    """A plain IP-Adapter's weights in h94's flat layout, one to_k_ip/to_v_ip pair per cross-attention
    layer numbered 1, 3, 5... (diffusers' create_ip_adapter_state_dict, with larger random weights so
    the image visibly steers)."""
    gen = torch.Generator().manual_seed(seed)
    cross = unet.config.cross_attention_dim
    out = {"image_proj.proj.weight": torch.randn(4 * cross, embed_dim, generator=gen) * 0.3,
           "image_proj.proj.bias": torch.randn(4 * cross, generator=gen) * 0.1,
           "image_proj.norm.weight": 1 + torch.randn(cross, generator=gen) * 0.1,
           "image_proj.norm.bias": torch.randn(cross, generator=gen) * 0.1}
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        attn = unet.get_submodule(name[:-len(".processor")])
        hidden = attn.to_k.weight.shape[0]
        for part in ("to_k_ip", "to_v_ip"):
            out[f"ip_adapter.{key_id}.{part}.weight"] = torch.randn(hidden, cross, generator=gen) * gain / cross ** 0.5
        key_id += 2
    return out


def ip_adapter_plus_state(unet, hidden_size: int, seed: int = 3) -> dict[str, torch.Tensor]:
    """A Plus IP-Adapter (a 4-layer resampler over the encoder's hidden states, 8 tokens) in h94's
    names: diffusers' IPAdapterPlusImageProjection's weights renamed back (norm1/norm2, a fused
    to_kv, the feed-forward as 1.0/1.1/1.3), which its loader's converter undoes."""
    from diffusers.models.embeddings import IPAdapterPlusImageProjection

    torch.manual_seed(seed)
    proj = IPAdapterPlusImageProjection(embed_dims=hidden_size, output_dims=unet.config.cross_attention_dim,
                                        hidden_dims=64, heads=1, num_queries=8)
    sd = proj.state_dict()
    out = {f"image_proj.{k}": sd[k] for k in ("latents", "proj_in.weight", "proj_in.bias", "proj_out.weight",
                                              "proj_out.bias", "norm_out.weight", "norm_out.bias")}
    for i in range(4):
        src, dst = f"layers.{i}.", f"image_proj.layers.{i}."
        for a, b in (("ln0", "0.norm1"), ("ln1", "0.norm2"), ("ff.0", "1.0")):
            out[dst + b + ".weight"], out[dst + b + ".bias"] = sd[src + a + ".weight"], sd[src + a + ".bias"]
        out[dst + "0.to_q.weight"] = sd[src + "attn.to_q.weight"]
        out[dst + "0.to_kv.weight"] = torch.cat([sd[src + "attn.to_k.weight"], sd[src + "attn.to_v.weight"]])
        out[dst + "0.to_out.weight"] = sd[src + "attn.to_out.0.weight"]
        out[dst + "1.1.weight"], out[dst + "1.3.weight"] = sd[src + "ff.1.net.0.proj.weight"], sd[src + "ff.1.net.2.weight"]
    plain = ip_adapter_state(unet, 8, seed=seed)
    out.update({k: v for k, v in plain.items() if k.startswith("ip_adapter.")})
    return {k: v.contiguous() for k, v in out.items()}


def ip_adapter_full_face_state(unet, hidden_size: int, seed: int = 5) -> dict[str, torch.Tensor]:
    """A Full Face IP-Adapter: a feed-forward over every hidden-state token (proj.0, proj.2) and a layer
    norm (proj.3), in h94's names."""
    gen = torch.Generator().manual_seed(seed)
    cross = unet.config.cross_attention_dim
    out = {"image_proj.proj.0.weight": torch.randn(hidden_size, hidden_size, generator=gen) * 0.3,
           "image_proj.proj.0.bias": torch.randn(hidden_size, generator=gen) * 0.1,
           "image_proj.proj.2.weight": torch.randn(cross, hidden_size, generator=gen) * 0.3,
           "image_proj.proj.2.bias": torch.randn(cross, generator=gen) * 0.1,
           "image_proj.proj.3.weight": 1 + torch.randn(cross, generator=gen) * 0.1,
           "image_proj.proj.3.bias": torch.randn(cross, generator=gen) * 0.1}
    out.update({k: v for k, v in ip_adapter_state(unet, 8, seed=seed).items() if k.startswith("ip_adapter.")})
    return out


@pytest.fixture(scope="module")
def ip_root(tmp_path_factory, models_dir):
    from diffusers import UNet2DConditionModel

    root = tmp_path_factory.mktemp("ipa")
    unet = UNet2DConditionModel.from_pretrained(str(models_dir / "checkpoints" / "tiny-sd" / "unet"))
    (root / "ipadapter").mkdir()
    (root / "clip_vision").mkdir()
    state = ip_adapter_state(unet, VISION["projection_dim"])
    save_file(state, str(root / "ipadapter" / "ip-tiny.safetensors"))
    save_file(ip_adapter_state(unet, VISION["projection_dim"], seed=2), str(root / "ipadapter" / "ip-tiny-b.safetensors"))
    nested = {"image_proj": {k[len("image_proj."):]: v for k, v in state.items() if k.startswith("image_proj.")},
              "ip_adapter": {k[len("ip_adapter."):]: v for k, v in state.items() if k.startswith("ip_adapter.")}}
    torch.save(nested, root / "ipadapter" / "ip-tiny-nested.bin")
    save_file(ip_adapter_plus_state(unet, VISION["hidden_size"]), str(root / "ipadapter" / "ip-tiny-plus.safetensors"))
    save_file(ip_adapter_full_face_state(unet, VISION["hidden_size"]),
              str(root / "ipadapter" / "ip-tiny-full-face.safetensors"))   # h94's .bin layout, weights only
    xl = tm.make_components(0, sdxl=True)   # a tiny SDXL and an adapter for it
    tm.save_diffusers(xl, root / "checkpoints" / "tiny-xl")
    save_file(ip_adapter_state(xl["unet"], VISION["projection_dim"], seed=4), str(root / "ipadapter" / "for-xl.safetensors"))
    encoder = _encoder()
    encoder.save_pretrained(str(root / "clip_vision" / "tiny-vision"))
    _processor().save_pretrained(str(root / "clip_vision" / "tiny-vision"))
    save_file({k: v.contiguous() for k, v in encoder.state_dict().items()},
              str(root / "clip_vision" / "tiny-vision-file.safetensors"))
    (root / "clip_vision" / "tiny-vision-file.safetensors.config").mkdir()
    (root / "clip_vision" / "tiny-vision-file.safetensors.config" / "config.json").write_text(
        json.dumps(encoder.config.to_dict()))
    return root


@pytest.fixture(scope="module")
def ip_engine(models_dir, ip_root, registry, tmp_path_factory):
    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths

    return Engine(device="cpu", output_dir=tmp_path_factory.mktemp("out"), registry=registry,
                  model_paths=ModelPaths(roots=[models_dir, ip_root]))


def _image(seed: int, size: int = 40) -> torch.Tensor:
    pixels = torch.randint(0, 256, (1, size, size + 8, 3), generator=torch.Generator().manual_seed(seed))
    return pixels.float() / 255


def _pil(image: torch.Tensor):
    from PIL import Image

    return Image.fromarray((image[0].numpy() * 255).round().astype(np.uint8))


def _workflow(folder, applies=(), batch_size=1, cfg=CFG, checkpoint="tiny-sd"):
    """txt2img with IPAdapterApply for each (adapter, encoder, image, weight, start, end), chained."""
    wf = tm.txt2img(checkpoint, seed=SEED, steps=STEPS, cfg=cfg, batch_size=batch_size)
    unet = ("ckpt", "unet")
    for i, (adapter, encoder, image, weight, start, end) in enumerate(applies):
        path = folder / f"ip-{i}-{abs(hash(image.numpy().tobytes()))}.png"
        _pil(image).save(path)
        wf.add("LoadImage", {"path": str(path)}, node_id=f"img{i}")
        wf.add("IPAdapterLoader", {"ipadapter": adapter}, node_id=f"ipa{i}")
        wf.add("CLIPVisionLoader", {"clip_vision": encoder}, node_id=f"vision{i}")
        wf.add("IPAdapterApply", {"weight": weight, "start_percent": start, "end_percent": end},
               {"unet": unet, "ipadapter": (f"ipa{i}", "ipadapter"), "clip_vision": (f"vision{i}", "clip_vision"),
                "image": (f"img{i}", "image")}, node_id=f"apply{i}")
        unet = (f"apply{i}", "unet")
    wf.nodes["denoise"].inputs["unet"] = unet
    return wf


def _pipeline(models_dir, ip_root, adapters, scale, xl=False):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if xl:
        pipe = StableDiffusionXLPipeline.from_pretrained(
            str(ip_root / "checkpoints" / "tiny-xl"), image_encoder=_encoder(), feature_extractor=_processor(),
            local_files_only=True)
    else:
        pipe = StableDiffusionPipeline.from_pretrained(
            str(models_dir / "checkpoints" / "tiny-sd"), image_encoder=_encoder(), feature_extractor=_processor(),
            local_files_only=True, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_ip_adapter(str(ip_root / "ipadapter"), subfolder="", weight_name=list(adapters),
                         image_encoder_folder=None)
    pipe.set_ip_adapter_scale(scale)
    return pipe


def _theirs(pipe, images, cfg=CFG, batch=1):
    return pipe("a red circle", negative_prompt="", ip_adapter_image=images, num_inference_steps=STEPS,
                guidance_scale=cfg, height=32, width=32, generator=[torch.Generator().manual_seed(SEED + i)
                                                                   for i in range(batch)],
                num_images_per_prompt=batch, output_type="latent").images


@pytest.mark.parametrize("encoder", ["tiny-vision", "tiny-vision-file"])
def test_an_image_prompt_steers_the_denoise_exactly_as_diffusers_ip_adapter_pipeline(ip_engine, ip_root, models_dir,
                                                                                    tmp_path, encoder):
    image = _image(1)
    ours = tm.denoised(ip_engine, _workflow(tmp_path, [("ip-tiny", encoder, image, 0.7, 0.0, 1.0)]))
    pipe = _pipeline(models_dir, ip_root, ["ip-tiny.safetensors"], 0.7)
    theirs = _theirs(pipe, [_pil(image)])
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    plain = tm.denoised(ip_engine, _workflow(tmp_path))
    assert (ours - plain).abs().max() > 1e-2   # the image steers
    other = tm.denoised(ip_engine, _workflow(tmp_path, [("ip-tiny", encoder, _image(2), 0.7, 0.0, 1.0)]))
    assert (ours - other).abs().max() > 1e-3   # and another image steers elsewhere


@pytest.mark.parametrize("adapter", ["ip-tiny-plus", "ip-tiny-full-face"])
def test_plus_and_full_face_adapters_read_hidden_states_exactly_as_diffusers(ip_engine, ip_root, models_dir,
                                                                              tmp_path, adapter):
    image = _image(7)
    ours = tm.denoised(ip_engine, _workflow(tmp_path, [(adapter, "tiny-vision", image, 0.8, 0.0, 1.0)]))
    pipe = _pipeline(models_dir, ip_root, [f"{adapter}.safetensors"], 0.8)
    torch.testing.assert_close(ours, _theirs(pipe, [_pil(image)]), atol=1e-4, rtol=1e-4)
    assert (ours - tm.denoised(ip_engine, _workflow(tmp_path))).abs().max() > 1e-2


def test_an_sdxl_model_with_its_adapter_matches_diffusers_sdxl_pipeline(ip_engine, ip_root, models_dir, tmp_path):
    image = _image(9)
    wf = _workflow(tmp_path, [("for-xl", "tiny-vision", image, 0.9, 0.0, 1.0)], checkpoint="tiny-xl")
    ours = tm.denoised(ip_engine, wf)
    pipe = _pipeline(models_dir, ip_root, ["for-xl.safetensors"], 0.9, xl=True)
    torch.testing.assert_close(ours, _theirs(pipe, [_pil(image)]), atol=1e-4, rtol=1e-4)
    assert (ours - tm.denoised(ip_engine, _workflow(tmp_path, checkpoint="tiny-xl"))).abs().max() > 1e-2


def test_two_adapters_stack_and_a_batch_without_cfg_matches_diffusers(ip_engine, ip_root, models_dir, tmp_path):
    a, b = _image(3), _image(4)
    applies = [("ip-tiny", "tiny-vision", a, 0.6, 0.0, 1.0), ("ip-tiny-b", "tiny-vision", b, 1.2, 0.0, 1.0)]
    pipe = _pipeline(models_dir, ip_root, ["ip-tiny.safetensors", "ip-tiny-b.safetensors"], [0.6, 1.2])
    ours = tm.denoised(ip_engine, _workflow(tmp_path, applies, batch_size=2))
    torch.testing.assert_close(ours, _theirs(pipe, [_pil(a), _pil(b)], batch=2), atol=1e-4, rtol=1e-4)
    ours = tm.denoised(ip_engine, _workflow(tmp_path, applies, cfg=1.0))
    torch.testing.assert_close(ours, _theirs(pipe, [_pil(a), _pil(b)], cfg=1.0), atol=1e-4, rtol=1e-4)


def test_weight_zero_and_end_percent_zero_are_bitwise_the_plain_model(ip_engine, tmp_path):
    plain = tm.denoised(ip_engine, _workflow(tmp_path, batch_size=2))
    for weight, start, end in ((0.0, 0.0, 1.0), (1.0, 0.0, 0.0)):
        if end <= start:   # validate refuses it; the node's own rule says it never acts
            from nodes.ipadapter import AppliedIPAdapter

            assert not AppliedIPAdapter(None, None, None, weight, start, end).active(500.0)
            continue
        ours = tm.denoised(ip_engine, _workflow(tmp_path, [("ip-tiny", "tiny-vision", _image(1), weight, start, end)],
                                                batch_size=2))
        assert torch.equal(ours, plain)


def test_end_percent_keeps_the_adapter_to_the_start_of_the_schedule(ip_engine, ip_root, models_dir, tmp_path):
    # 4 steps at timesteps 751, 501, 251, 1: end 0.5 (timestep 499.5) acts on the first two, as ControlNets;
    # diffusers has no range, so the reference sets the scale to 0 from step 2 on with a step-end callback
    image = _image(5)
    ours = tm.denoised(ip_engine, _workflow(tmp_path, [("ip-tiny", "tiny-vision", image, 0.9, 0.0, 0.5)]))
    pipe = _pipeline(models_dir, ip_root, ["ip-tiny.safetensors"], 0.9)

    def callback(pipeline, step, timestep, kwargs):
        if step == 1:
            pipeline.set_ip_adapter_scale(0.0)
        return kwargs

    theirs = pipe("a red circle", negative_prompt="", ip_adapter_image=[_pil(image)], num_inference_steps=STEPS,
                  guidance_scale=CFG, height=32, width=32, generator=torch.Generator().manual_seed(SEED),
                  output_type="latent", callback_on_step_end=callback).images
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    full = tm.denoised(ip_engine, _workflow(tmp_path, [("ip-tiny", "tiny-vision", image, 0.9, 0.0, 1.0)]))
    assert (ours - full).abs().max() > 1e-3


def test_the_nested_bin_layout_loads_as_weights_only_and_equals_the_safetensors(ip_engine, tmp_path):
    image = _image(6)
    a = tm.denoised(ip_engine, _workflow(tmp_path, [("ip-tiny", "tiny-vision", image, 0.8, 0.0, 1.0)]))
    b = tm.denoised(ip_engine, _workflow(tmp_path, [("ip-tiny-nested.bin", "tiny-vision", image, 0.8, 0.0, 1.0)]))
    assert torch.equal(a, b)


def test_the_base_model_is_left_unchanged(ip_engine, tmp_path):
    wf = _workflow(tmp_path, [("ip-tiny", "tiny-vision", _image(1), 1.0, 0.0, 1.0)])
    out = ip_engine.run(wf, outputs=["ckpt", "apply0"]).outputs
    base, applied = out["ckpt"]["unet"], out["apply0"]["unet"]
    assert base.ip_adapters == () and len(applied.ip_adapters) == 1 and applied.unet is base.unet
    tm.denoised(ip_engine, wf)
    assert all(type(p).__name__ != "_IPProcessor" for p in base.unet.attn_processors.values())


# -- files that are not what they claim ---------------------------------------------------------------------
def _error(engine, wf) -> str:
    with pytest.raises(WorkflowError) as info:
        engine.run(wf, outputs=["denoise"])
    return str(info.value)


def _one_line(message: str) -> str:
    assert "\n" not in message.strip() and "Traceback" not in message
    return message


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_hostile_files_are_one_line_naming_the_file_and_the_fix(ip_engine, ip_root, tmp_path, models_dir):
    folder = ip_root / "ipadapter"
    save_file({"proj.weight": torch.zeros(4, 4)}, str(folder / "wrong-keys.safetensors"))
    torch.save({"image_proj": _Evil()}, folder / "pickle.bin")
    (folder / "html.safetensors").write_text("<html>not found</html>")
    save_file({"vision_model.whatever": torch.zeros(2)}, str(ip_root / "clip_vision" / "not-clip.safetensors"))
    save_file({"visual.transformer.resblocks.0.attn.in_proj_weight": torch.zeros(2)},
              str(ip_root / "clip_vision" / "openclip.safetensors"))
    image = _image(1)
    cases = [("wrong-keys", "tiny-vision", "wrong-keys.safetensors is not an IP-Adapter in the h94/diffusers layout"),
             ("pickle.bin", "tiny-vision", "cannot read pickle.bin safely"),
             ("html", "tiny-vision", "cannot read html.safetensors"),
             ("ip-tiny", "not-clip", "not-clip.safetensors is not a CLIP vision encoder"),
             ("ip-tiny", "openclip", "openclip.safetensors is a CLIP vision encoder in OpenCLIP's layout")]
    for adapter, encoder, expected in cases:
        message = _one_line(_error(ip_engine, _workflow(tmp_path, [(adapter, encoder, image, 1.0, 0.0, 1.0)])))
        assert expected in message, message
    # an adapter for another encoder width, and for another UNet
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(str(models_dir / "checkpoints" / "tiny-sd" / "unet"))
    save_file(ip_adapter_state(unet, 48), str(folder / "wide-encoder.safetensors"))
    message = _one_line(_error(ip_engine, _workflow(tmp_path, [("wide-encoder", "tiny-vision", image, 1.0, 0.0, 1.0)])))
    assert "reads image embeddings 48 wide, but tiny-vision gives 24" in message, message
    message = _one_line(_error(ip_engine, _workflow(tmp_path, [("for-xl", "tiny-vision", image, 1.0, 0.0, 1.0)])))
    assert "for-xl was made for a UNet with" in message and "pick the IP-Adapter made for this model" in message


def test_start_after_end_is_refused_before_running(ip_engine, tmp_path):
    wf = _workflow(tmp_path, [("ip-tiny", "tiny-vision", _image(1), 1.0, 0.6, 0.4)])
    message = _one_line(_error(ip_engine, wf))
    assert "start_percent" in message


# -- IPAdapter_plus's ComfyUI graphs ----------------------------------------------------------------------
DATA = __import__("pathlib").Path(__file__).resolve().parents[1] / "interop" / "data"
COMFY_MAP = {"v1-5-pruned-emaonly.safetensors": "tiny-sd", "ip-adapter-plus_sd15.safetensors": "ip-tiny-plus",
             "ip-adapter_sd15.safetensors": "ip-tiny", "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors": "tiny-vision"}


def _imported(engine, name: str, tmp_path, image, edit=None):
    """A ComfyUI fixture imported onto the tiny models, shrunk to the tests' size and sampler settings."""
    from nodeforge.interop import read_workflow

    prompt = json.loads((DATA / name).read_text())
    if edit is not None:
        edit(prompt)
    path = tmp_path / name     # with its reference.png beside it, as a user keeps a shared graph
    path.write_text(json.dumps(prompt))
    _pil(image).save(tmp_path / "reference.png")
    imported = read_workflow(path, registry=engine.registry, model_map=COMFY_MAP, model_paths=engine.model_paths)
    wf = imported.workflow
    assert all(n.type != "comfyui.Placeholder" for n in wf.nodes.values())
    wf.nodes["5"].params.update(width=32, height=32)
    wf.nodes["3"].params.update(seed=SEED, steps=STEPS, cfg=CFG, schedule="default")
    return imported


@pytest.mark.parametrize("name", ["comfy-ipadapter-api.json", "comfy-ipadapter-0.4.json"])
def test_ipadapter_plus_graphs_import_and_run_as_the_same_nodeforge_graph(ip_engine, tmp_path, name):
    # UnifiedLoader (preset PLUS) -> IPAdapter 0.8, then ModelLoader + CLIPVisionLoader -> IPAdapterAdvanced
    # 0.6 until 0.7 of the schedule: the same latents as the two Apply IP-Adapter nodes built by hand
    image = _image(8, size=32)
    imported = _imported(ip_engine, name, tmp_path, image)
    wf = imported.workflow
    assert (wf.nodes["10"].type, wf.nodes["10"].params) == (
        "IPAdapterLoaderWithEncoder", {"ipadapter": "ip-tiny-plus", "clip_vision": "tiny-vision"})
    assert (wf.nodes["15"].params, dict(wf.nodes["15"].inputs)) == (
        {"weight": 0.6, "start_percent": 0.0, "end_percent": 0.7},
        {"unet": ("12", "unet"), "ipadapter": ("13", "ipadapter"), "image": ("11", "image"),
         "clip_vision": ("14", "clip_vision")})
    assert ip_engine.validate(wf) == []
    ours = ip_engine.run(wf, outputs=["3"]).outputs["3"]["latent"]["samples"]
    by_hand = tm.denoised(ip_engine, _workflow(tmp_path, [("ip-tiny-plus", "tiny-vision", image, 0.8, 0.0, 1.0),
                                                          ("ip-tiny", "tiny-vision", image, 0.6, 0.0, 0.7)]))
    assert torch.equal(ours, by_hand)


def test_export_gives_back_the_ipadapter_plus_classes(ip_engine, registry, tmp_path):
    from nodeforge.interop import export_comfyui_api, read_workflow

    original = json.loads((DATA / "comfy-ipadapter-api.json").read_text())
    imported = read_workflow(DATA / "comfy-ipadapter-api.json", registry=registry)
    exported = export_comfyui_api(imported.workflow, registry=registry)
    for nid in ("10", "12", "13", "14", "15"):
        assert exported[nid]["class_type"] == original[nid]["class_type"]
        assert exported[nid]["inputs"] == original[nid]["inputs"], nid


def test_unified_loader_with_files_of_no_preset_exports_as_model_and_clip_vision_loaders(ip_engine, tmp_path):
    # the unified loader mapped onto ip-tiny-plus + tiny-vision (no IPAdapter_plus preset finds those): the
    # UI file gets IPAdapterModelLoader + CLIPVisionLoader linked into the apply node (IPAdapter, which takes no
    # encoder, becomes IPAdapterAdvanced) and the model wired past it; read back, it runs to the same latents
    from nodeforge.interop import export_comfyui_api, export_comfyui_ui, read_workflow

    image = _image(8, size=32)
    wf = _imported(ip_engine, "comfy-ipadapter-0.4.json", tmp_path, image).workflow
    ours = ip_engine.run(wf, outputs=["3"]).outputs["3"]["latent"]["samples"]
    warnings: list[str] = []
    ui = json.loads(json.dumps(export_comfyui_ui(wf, registry=ip_engine.registry, warnings=warnings)))
    assert not [w for w in warnings if "preset" in w]
    by_id = {n["id"]: n for n in ui["nodes"]}
    encoder = next(n for n in ui["nodes"] if n["type"] == "CLIPVisionLoader" and n["widgets_values"] == ["tiny-vision"]
                   and n["id"] not in (14,))
    assert (by_id[10]["type"], by_id[10]["widgets_values"]) == ("IPAdapterModelLoader", ["ip-tiny-plus"])
    assert by_id[12]["type"] == "IPAdapterAdvanced" and by_id[12]["widgets_values"][0] == 0.8
    links = {link[0]: link for link in ui["links"]}
    into = {port["name"]: links[port["link"]][1:3] for port in by_id[12]["inputs"] if port.get("link")}
    assert into == {"model": [4, 0], "ipadapter": [10, 0], "image": [11, 0], "clip_vision": [encoder["id"], 0]}
    path = tmp_path / "exported.json"
    path.write_text(json.dumps(ui))
    again = read_workflow(path, registry=ip_engine.registry, model_paths=ip_engine.model_paths).workflow
    assert again.nodes["10"].type == "IPAdapterLoader"
    again.nodes["3"].params.update(schedule="default")    # ComfyUI has no 'default' schedule: exported as 'simple'
    assert torch.equal(ip_engine.run(again, outputs=["3"]).outputs["3"]["latent"]["samples"], ours)
    # exported again, the file is the same; the API prompt is split alike
    assert export_comfyui_ui(again, registry=ip_engine.registry)["nodes"] == ui["nodes"]
    prompt = export_comfyui_api(wf, registry=ip_engine.registry)
    assert prompt["10"] == {"inputs": {"ipadapter_file": "ip-tiny-plus"}, "class_type": "IPAdapterModelLoader",
                            "_meta": {"title": "IPAdapter Model Loader"}}
    assert prompt["12"]["inputs"]["clip_vision"] == ["10.clip_vision", 0]
    assert prompt["12"]["inputs"]["model"] == ["4", 0]
    # with a preset's own files it stays the unified loader
    wf.nodes["10"].params.update(ipadapter="ip-adapter-plus_sd15.safetensors",
                                 clip_vision="CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors")
    prompt = export_comfyui_api(wf, registry=ip_engine.registry)
    assert prompt["10"]["class_type"] == "IPAdapterUnifiedLoader"
    assert prompt["10"]["inputs"]["preset"] == "PLUS (high strength)" and "10.clip_vision" not in prompt


def test_options_nodeforge_does_not_have_are_named_on_import(ip_engine, tmp_path):
    def edit(prompt):
        prompt["15"]["inputs"].update(weight_type="style transfer", embeds_scaling="K+V")
        prompt["10"]["inputs"]["preset"] = "FACEID PLUS V2"

    warnings = _imported(ip_engine, "comfy-ipadapter-api.json", tmp_path, _image(8), edit).warnings
    text = "\n".join(warnings)
    assert "weight_type 'style transfer' is not in NodeForge: it runs as 'linear'" in text
    assert "embeds_scaling 'K+V' is not in NodeForge" in text
    assert "preset 'FACEID PLUS V2' is not one NodeForge maps" in text


def test_apply_without_an_encoder_says_which_to_link(ip_engine, tmp_path):
    wf = _workflow(tmp_path, [("ip-tiny", "tiny-vision", _image(1), 1.0, 0.0, 1.0)])
    del wf.nodes["apply0"].inputs["clip_vision"]
    problems = ip_engine.validate(wf)   # refused before anything loads
    assert [(p.node_id, p.field) for p in problems] == [("apply0", "clip_vision")]
    assert "link Load CLIP Vision to clip_vision" in problems[0].message
    message = _one_line(_error(ip_engine, wf))
    assert "link Load CLIP Vision to clip_vision" in message
    # the unified loader's adapter carries its encoder: no link needed
    wf.add("IPAdapterLoaderWithEncoder", {"ipadapter": "ip-tiny", "clip_vision": "tiny-vision"},
           {"unet": ("ckpt", "unet")}, node_id="unified")
    wf.nodes["apply0"].inputs.update(unet=("unified", "unet"), ipadapter=("unified", "ipadapter"))
    assert ip_engine.validate(wf) == []
    linked = _workflow(tmp_path, [("ip-tiny", "tiny-vision", _image(1), 1.0, 0.0, 1.0)])
    assert torch.equal(tm.denoised(ip_engine, wf), tm.denoised(ip_engine, linked))


V1_MAP = {"v1-5-pruned-emaonly.safetensors": "tiny-sd", "ip-adapter_sd15.bin": "ip-tiny-nested.bin",
          "IPAdapter_image_encoder_sd15.safetensors": "tiny-vision-file"}


@pytest.mark.parametrize("name, oldest", [("comfy-ipadapter-v1-api.json", False), ("comfy-ipadapter-v1-0.4.json", False),
                                          ("comfy-ipadapter-v1-0.4.json", True)])
def test_ipadapter_plus_v1_apply_imports_as_apply_ip_adapter_and_runs(ip_engine, tmp_path, name, oldest):
    # IPAdapter_plus's first IPAdapterApply (weight, noise, weight_type, start_at, end_at, unfold_batch; the
    # oldest files, as the corpus's cubiq IPAdapter_canny.json, list only weight and noise)
    from nodeforge.interop import export_comfyui_api, read_workflow

    image = _image(10, size=32)
    original = json.loads((DATA / name).read_text())
    if oldest:
        next(n for n in original["nodes"] if n["id"] == 40)["widgets_values"] = [0.7, 0]
    (tmp_path / name).write_text(json.dumps(original))
    _pil(image).save(tmp_path / "reference.png")
    imported = read_workflow(tmp_path / name, registry=ip_engine.registry, model_map=V1_MAP,
                             model_paths=ip_engine.model_paths)
    wf = imported.workflow
    assert (wf.nodes["40"].type, wf.nodes["40"].params) == ("IPAdapterApply", {"weight": 0.7} if oldest else
                                                           {"weight": 0.7, "start_percent": 0.0, "end_percent": 1.0})
    assert ip_engine.validate(wf) == []
    wf.nodes["5"].params.update(width=32, height=32)
    wf.nodes["3"].params.update(seed=SEED, steps=STEPS, cfg=CFG, schedule="default")
    ours = ip_engine.run(wf, outputs=["3"]).outputs["3"]["latent"]["samples"]
    by_hand = tm.denoised(ip_engine, _workflow(tmp_path, [("ip-tiny", "tiny-vision", image, 0.7, 0.0, 1.0)]))
    torch.testing.assert_close(ours, by_hand, atol=1e-5, rtol=1e-5)   # the single file's encoder, the .bin adapter
    exported = export_comfyui_api(wf, registry=ip_engine.registry)["40"]
    assert exported["class_type"] == "IPAdapterApply" and exported["inputs"]["weight"] == 0.7
    assert exported["inputs"]["clip_vision"] == ["38", 0] and exported["inputs"]["model"] == ["4", 0]


@pytest.mark.parametrize("form", ["api", "ui"])
def test_the_older_ipadapter_comfyui_packs_node_is_named_with_its_fix(ip_engine, tmp_path, form):
    # laksjdjf's IPAdapter-ComfyUI used the class name IPAdapter for a node taking the adapter file as a
    # widget (weight, model_name, dtype) and a CLIP_VISION link: not mapped onto start/end, the fix is named
    from nodeforge.interop import read_workflow

    if form == "api":
        prompt = json.loads((DATA / "comfy-ipadapter-v1-api.json").read_text())
        prompt["40"] = {"class_type": "IPAdapter", "inputs": {
            "weight": 1.0, "model_name": "ip-adapter_sd15.bin", "dtype": "fp16", "model": ["4", 0],
            "image": ["24", 0], "clip_vision": ["38", 0]}}
    else:
        prompt = json.loads((DATA / "comfy-ipadapter-v1-0.4.json").read_text())
        node = next(n for n in prompt["nodes"] if n["id"] == 40)
        node.update(type="IPAdapter", widgets_values=[1, "ip-adapter_sd15.bin", "fp16"])
        by_name = {i["name"]: i for i in node["inputs"]}   # its inputs: model, image, clip_vision, mask
        dropped = by_name["ipadapter"]["link"]
        node["inputs"] = [by_name["model"], by_name["image"], by_name["clip_vision"],
                          {"name": "mask", "type": "MASK", "link": None}]
        prompt["links"] = [link for link in prompt["links"] if link[0] != dropped]
        for link in prompt["links"]:
            if link[3] == 40:
                link[4] = [i["link"] for i in node["inputs"]].index(link[0])
    (tmp_path / "old.json").write_text(json.dumps(prompt))
    _pil(_image(1)).save(tmp_path / "reference.png")
    imported = read_workflow(tmp_path / "old.json", registry=ip_engine.registry, model_map=V1_MAP,
                             model_paths=ip_engine.model_paths)
    node = imported.workflow.nodes["40"]
    assert node.type == "IPAdapterApply" and node.params == {"weight": 1.0}
    text = "\n".join(imported.warnings)
    assert "IPAdapter-ComfyUI pack's IPAdapter (adapter file 'ip-adapter_sd15.bin' as a widget)" in text
    problems = ip_engine.validate(imported.workflow)
    assert [(p.node_id, p.field) for p in problems] == [("40", "ipadapter")]
