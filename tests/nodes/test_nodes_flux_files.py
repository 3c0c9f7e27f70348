"""Flux as users download it: the all-in-one single file (also in float8), the separate files
(DiffusionModelLoader + DualTextEncoderLoader + VAELoader, ComfyUI's layout) and GGUF transformers,
each checked to give the FluxPipeline folder's weights and latents (tests/nodes/tiny_flux.py), and
the files that cannot work refused in one line naming the file and the fix."""
from __future__ import annotations

import types

from pathlib import Path

import pytest
import torch

import tiny_flux as tf
from nodeforge.core.errors import NodeError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("fluxfiles")
    (root / "checkpoints").mkdir()
    parts = tf.make_flux_components(0)
    folder = tf.save_flux_folder(parts, root / "checkpoints" / "tiny-flux")
    found = {"root": root, "folder": folder, "parts": parts,
             "single": tf.save_flux_single_file(parts, folder, root / "checkpoints" / "tiny-flux-aio.safetensors"),
             "fp8": tf.save_flux_single_file(parts, folder, root / "checkpoints" / "tiny-flux-fp8.safetensors",
                                             dtype=torch.float8_e4m3fn)}
    found.update(tf.save_separate_files(parts, folder, root))
    return found


@pytest.fixture(scope="module")
def engine(make_engine, files, tmp_path_factory):
    return make_engine(tmp_path_factory.mktemp("fluxfilesout"), files["root"])


def same_weights(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def separate_txt2img(seed: int = 3):
    """workflows/txt2img.json with CheckpointLoader replaced by the three separate loaders."""
    from nodeforge import load_workflow

    wf = load_workflow(REPO / "workflows" / "txt2img.json")
    wf.add("DiffusionModelLoader", {"model": "flux-tiny"}, node_id="unet")
    wf.add("DualTextEncoderLoader", {"text_encoder_1": "t5xxl_fp16", "text_encoder_2": "clip_l", "family": "flux"},
           node_id="clip")
    wf.add("VAELoader", {"vae": "ae"}, node_id="vae")
    for node, port in (("2", "clip"), ("3", "clip")):
        wf.nodes[node].inputs[port] = ("clip", "clip")
    wf.nodes["5"].inputs["unet"] = ("unet", "unet")
    wf.nodes["6"].inputs["vae"] = ("vae", "vae")
    del wf.nodes["1"]
    wf.nodes["4"].params.update(width=32, height=32)
    wf.nodes["5"].params.update(seed=seed, steps=4, cfg=1.0)
    return wf


# -- the all-in-one file -------------------------------------------------------------------------------------
def test_the_single_file_in_bfl_layout_gives_the_folders_weights(files):
    from nodes.loading import load_checkpoint

    folder = load_checkpoint(files["folder"], "cpu").wrappers()
    single = load_checkpoint(files["single"], "cpu").wrappers()
    for a, b in ((folder[0].unet, single[0].unet), (folder[1].text_encoder, single[1].text_encoder),
                 (folder[1].text_encoder_2, single[1].text_encoder_2), (folder[2].vae, single[2].vae)):
        same_weights(a, b)
    assert single[0].family == "flux" and single[0].unet.config.guidance_embeds
    assert single[0].scheduler_config == folder[0].scheduler_config


def test_an_fp8_file_is_upcast_on_load(files):
    from nodes.loading import load_checkpoint

    unet, clip, _ = load_checkpoint(files["fp8"], "cpu").wrappers()
    assert unet.unet.dtype == torch.float32
    weight = unet.unet.x_embedder.weight
    original = files["parts"]["transformer"].x_embedder.weight.detach()
    torch.testing.assert_close(weight, original.to(torch.float8_e4m3fn).float())   # exact values of the fp8 file
    assert (weight - original).abs().max() > 0 and (weight - original).abs().max() < 0.07 * original.abs().max()


def test_a_scaled_fp8_weight_is_multiplied_out():
    from nodes.loading import upcast_float8

    weight = torch.tensor([[1.0, -2.0]]).to(torch.float8_e4m3fn)
    state = upcast_float8({"layer.weight": weight, "layer.scale_weight": torch.tensor([0.5]),
                           "scaled_fp8": torch.zeros(0, dtype=torch.float8_e4m3fn), "other.bias": torch.ones(2)})
    assert set(state) == {"layer.weight", "other.bias"}
    assert state["layer.weight"].tolist() == [[0.5, -1.0]] and state["other.bias"].dtype == torch.float32


# -- the separate files ------------------------------------------------------------------------------------------
def test_separate_files_run_the_shipped_graph_as_the_folder(engine, files):
    from nodes.families.separate import _read_diffusion_model, _read_flux_text_encoders
    from nodes.loading import load_checkpoint

    unet = _read_diffusion_model(files["transformer"], "cpu").wrapper()
    clip = _read_flux_text_encoders((files["t5xxl"], files["clip_l"]), "cpu").wrapper()
    folder = load_checkpoint(files["folder"], "cpu").wrappers()
    same_weights(unet.unet, folder[0].unet)
    same_weights(clip.text_encoder, folder[1].text_encoder)
    same_weights(clip.text_encoder_2, folder[1].text_encoder_2)
    assert (unet.vae_factor, unet.latent_channels) == (2, 16)
    separate = separate_txt2img(seed=3)
    ours = engine.run(separate, outputs=["5"]).outputs["5"]["latent"]["samples"]
    whole = separate_txt2img(seed=3)
    whole.add("CheckpointLoader", {"checkpoint": "tiny-flux"}, node_id="1")
    for node, port, out in (("2", "clip", "clip"), ("3", "clip", "clip"), ("5", "unet", "unet"), ("6", "vae", "vae")):
        whole.nodes[node].inputs[port] = ("1", out)
    torch.testing.assert_close(ours, engine.run(whole, outputs=["5"]).outputs["5"]["latent"]["samples"])


def test_vae_loader_takes_the_flux_ae_file_with_flux_scaling(files):
    from nodes.vae_loading import standard_config

    vae_state = {"encoder.conv_in.weight": torch.zeros(128, 3, 3, 3), "encoder.conv_out.weight": torch.zeros(32, 512, 3, 3)}
    assert standard_config(Path("ae.safetensors"), vae_state, {}).parent.name == "flux"
    assert standard_config(Path("sd3_vae.safetensors"), vae_state, {}).parent.name == "sd3"


def test_a_transformer_only_file_given_as_a_checkpoint_names_the_separate_loaders(files, tmp_path):
    import shutil

    from nodes.loading import load_checkpoint

    path = tmp_path / "flux1-dev.safetensors"
    shutil.copy(files["transformer"], path)
    with pytest.raises(NodeError) as info:
        load_checkpoint(path, "cpu")
    message = str(info.value)
    assert "flux1-dev.safetensors" in message and "CLIP-L, T5-XXL, VAE" in message
    assert "DiffusionModelLoader" in message and "DualTextEncoderLoader" in message and "\n" not in message


def test_a_missing_t5_is_named_with_the_fix(engine, files):
    wf = separate_txt2img()
    wf.nodes["clip"].params["text_encoder_1"] = "clip_l"
    with pytest.raises(Exception) as info:
        engine.run(wf, outputs=["2"])
    message = str(info.value)
    assert "clip_l.safetensors" in message and "T5-XXL" in message and "t5xxl_fp16" in message


def test_an_sd3_file_given_to_the_diffusion_model_loader_is_refused(files, tmp_path):
    from safetensors.torch import save_file

    from nodes.families.separate import _read_diffusion_model

    # A whole SD3 checkpoint (with its VAE) goes to CheckpointLoader; an SD3 transformer alone loads
    # (tests/nodes/test_nodes_sd3.py), one missing its weights is refused naming the file.
    path = tmp_path / "sd3_medium.safetensors"
    block = {"model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight": torch.zeros(6, 2)}
    save_file({**block, "first_stage_model.decoder.conv_in.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(NodeError) as info:
        _read_diffusion_model(path, "cpu")
    assert "sd3_medium.safetensors" in str(info.value) and "sd3" in str(info.value) and "CheckpointLoader" in str(info.value)
    save_file(block, str(path))
    with pytest.raises(NodeError) as info:
        _read_diffusion_model(path, "cpu")
    assert "sd3_medium.safetensors is an incomplete SD3 transformer" in str(info.value) and "\n" not in str(info.value)


# -- GGUF ----------------------------------------------------------------------------------------------------
def write_gguf(transformer, path: Path, quantize: tuple[str, ...] = ()) -> Path:
    """A GGUF file of the transformer in diffusers' key layout, F32 except the tensors named in
    `quantize` (Q8_0, quantised with gguf's own quantiser)."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "flux")
    for key, value in transformer.state_dict().items():
        data = value.detach().float().numpy()
        if key in quantize:
            writer.add_tensor(key, gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0),
                              raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(key, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_gguf_transformer_loads_through_diffusers_gguf_support(files, tmp_path):
    pytest.importorskip("gguf", reason="the optional gguf package (pip install gguf) is not installed")
    from nodes.families.separate import _read_diffusion_model

    transformer = files["parts"]["transformer"]
    quantised = ("transformer_blocks.0.ff.net.2.weight",)
    path = write_gguf(transformer, tmp_path / "flux-tiny-Q8_0.gguf", quantised)
    tf._config_beside(files["folder"], path)
    unet = _read_diffusion_model(path, "cpu").wrapper()
    assert type(unet.unet.transformer_blocks[0].ff.net[2]).__name__ == "GGUFLinear"
    loaded = unet.unet.state_dict()
    plain = transformer.state_dict()
    torch.testing.assert_close(loaded["x_embedder.weight"], plain["x_embedder.weight"])
    packed = torch.randn(1, 16, 64, generator=torch.Generator().manual_seed(0))
    ids, txt = torch.zeros(16, 3), torch.zeros(4, 3)
    kw = dict(hidden_states=packed, timestep=torch.tensor([0.5]), guidance=torch.tensor([3.5]),
              pooled_projections=torch.randn(1, 32), encoder_hidden_states=torch.randn(1, 4, 32), txt_ids=txt,
              img_ids=ids, return_dict=False)
    with torch.no_grad():
        ours, theirs = unet.unet(**kw)[0], transformer(**kw)[0]
    assert (ours - theirs).abs().max() < 0.02 * theirs.abs().max()   # Q8_0 of one layer: close, not equal


# the layers tiny_flux.flux_loras changes, quantised: a LoRA on them runs unmerged (added to their output)
LORA_LAYERS = ("transformer_blocks.0.attn.to_q.weight", "transformer_blocks.0.attn.to_k.weight",
               "transformer_blocks.0.attn.to_v.weight", "transformer_blocks.0.ff.net.0.proj.weight",
               "single_transformer_blocks.0.proj_out.weight")


@pytest.mark.parametrize("layout", ["diffusers", "kohya"])
def test_a_lora_on_a_gguf_transformer_equals_diffusers_peft_lora_on_it(files, tmp_path, layout):
    pytest.importorskip("gguf", reason="the optional gguf package (pip install gguf) is not installed")
    from nodes.families.separate import _read_diffusion_model
    from nodes.lora import run_lora_loader

    transformer = files["parts"]["transformer"]
    path = write_gguf(transformer, tmp_path / "flux-tiny-Q8_0.gguf", LORA_LAYERS)
    tf._config_beside(files["folder"], path)
    loras = tf.flux_loras(transformer, tmp_path / "loras")

    class Ctx:
        def resolve_file(self, kind, name):
            return str(loras[layout])

    unet = _read_diffusion_model(path, "cpu").wrapper()
    assert type(unet.unet.transformer_blocks[0].attn.to_q).__name__ == "GGUFLinear"
    no_clip = types.SimpleNamespace(text_encoder=None, text_encoder_2=None, text_encoder_3=None)
    with_lora = run_lora_loader(Ctx(), unet, no_clip, f"flux-{layout}", 0.8, 1.0)["unet"]
    reference = _read_diffusion_model(path, "cpu").wrapper().unet      # diffusers' own: PEFT on the GGUF layers
    from safetensors.torch import load_file

    reference.load_lora_adapter(load_file(str(loras["diffusers"])), prefix="transformer", adapter_name="x")
    reference.set_adapters(["x"], weights=[0.8])
    packed = torch.randn(1, 16, 64, generator=torch.Generator().manual_seed(0))
    kw = dict(hidden_states=packed, timestep=torch.tensor([0.5]), guidance=torch.tensor([3.5]),
              pooled_projections=torch.randn(1, 32, generator=torch.Generator().manual_seed(1)),
              encoder_hidden_states=torch.randn(1, 4, 32, generator=torch.Generator().manual_seed(2)),
              txt_ids=torch.zeros(4, 3), img_ids=torch.zeros(16, 3), return_dict=False)
    with torch.no_grad(), with_lora.patched():
        ours = with_lora.unet(**kw)[0]
    with torch.no_grad():
        bare, theirs = unet.unet(**kw)[0], reference(**kw)[0]
    print(f"GGUF LoRA {layout}: max abs vs PEFT {float((ours - theirs).abs().max()):.2e}")
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    assert (ours - bare).abs().max() > 1e-2                 # the LoRA changed the output
    assert torch.equal(unet.unet(**kw)[0], bare)            # and is gone outside `patched`


def test_a_gguf_file_with_a_bad_header_is_one_line(tmp_path):
    from nodes.families.separate import _check_gguf_header

    path = tmp_path / "flux1-dev-Q4_0.gguf"
    path.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(NodeError) as info:
        _check_gguf_header(path)
    assert "flux1-dev-Q4_0.gguf" in str(info.value) and "download it again" in str(info.value)


def test_without_gguf_installed_the_refusal_says_how_to_install(monkeypatch, tmp_path):
    import sys

    from nodes.families.separate import load_gguf_transformer

    monkeypatch.setitem(sys.modules, "gguf", None)   # import gguf raises ImportError
    path = tmp_path / "flux1-dev-Q4_0.gguf"
    path.write_bytes(b"GGUF\x03\x00\x00\x00")
    with pytest.raises(NodeError) as info:
        load_gguf_transformer(path, tmp_path, torch.float32)
    assert "flux1-dev-Q4_0.gguf" in str(info.value) and "pip install gguf" in str(info.value)
