"""Model offload (issue 29 item 2, nodes/placement.py) exercised on a CPU: the same pixels with and
without it, and which parts are on the execution device while each runs. On a CPU both places are
the CPU, so the test names the offload place "cpu:0" and a recorder of the moves keeps track of
where each part would be."""
from __future__ import annotations

import pytest
import torch

from tiny_models import shipped_txt2img, with_lora


def graph(lora: bool = False):
    """The shipped txt2img on the tiny Flux folder (conftest's flux_dir; with a kohya LoRA on the
    transformer and CLIP-L)."""
    wf = shipped_txt2img("tiny-flux", seed=3, steps=3, cfg=2.0)
    return with_lora(wf, "flux-kohya", 1.0, 1.0) if lora else wf


def pixels(make_engine, flux_dir, tmp_path, offload: str, lora: bool = False) -> torch.Tensor:
    from nodeforge import Engine

    base = make_engine(tmp_path, flux_dir)
    engine = Engine(device="cpu", output_dir=tmp_path, registry=base.registry, model_paths=base.model_paths,
                    settings={"offload": offload})
    wf = graph(lora)
    decode = next(nid for nid, node in wf.nodes.items() if node.type == "VAEDecode")
    return engine.run(wf, outputs=[decode]).outputs[decode]["image"]


@pytest.mark.parametrize("lora", [False, True])
def test_offload_gives_the_same_pixels(make_engine, flux_dir, tmp_path, lora):
    plain = pixels(make_engine, flux_dir, tmp_path / "none", "none", lora)
    for mode in ("model", "sequential"):
        offloaded = pixels(make_engine, flux_dir, tmp_path / mode, mode, lora)
        assert torch.equal(offloaded, plain), mode
    if lora:   # the LoRA reached the weights in every mode
        assert not torch.equal(plain, pixels(make_engine, flux_dir, tmp_path / "bare", "none"))


class Recorder:
    """Where each module's own weights would be: "device" after a move to the execution device
    ("cpu"), "home" after a move to the offload place ("cpu:0")."""

    def __init__(self, original) -> None:
        self.original = original
        self.where: dict[int, str] = {}
        self.whole_moves: list[tuple[str, str]] = []

    def __call__(self, target, device, dtype=None, recurse=True):
        place = "home" if str(device) == "cpu:0" else "device"
        for module in (target.modules() if recurse else [target]):
            self.where[id(module)] = place
        if recurse:
            self.whole_moves.append((type(target).__name__, place))
        return self.original(target, device, dtype, recurse)

    def on_device(self, modules: dict[str, torch.nn.Module]) -> set[str]:
        return {name for name, m in modules.items() if self.where.get(id(m)) == "device"}


def _run_recorded(make_engine, flux_dir, tmp_path, monkeypatch, mode: str, watch) -> tuple[Recorder, list]:
    """Run the graph under `mode` with the recorder; `watch(parts, recorder, seen)` adds forward hooks
    to the loaded parts."""
    from nodeforge import Engine
    from nodeforge.core.registry import builtin_module

    loading, placement = builtin_module("loading"), builtin_module("placement")   # the engine's copy

    recorder = Recorder(placement._move)
    monkeypatch.setattr(placement, "_move", recorder)
    monkeypatch.setattr(placement, "OFFLOAD_DEVICE", "cpu:0")
    base = make_engine(tmp_path, flux_dir)
    engine = Engine(device="cpu", output_dir=tmp_path, registry=base.registry, model_paths=base.model_paths,
                    settings={"offload": mode})
    seen: list = []
    real_load = loading.load_checkpoint

    def load_and_watch(*args, **kwargs):
        loaded = real_load(*args, **kwargs)
        unet, clip, vae = loaded.wrappers()
        parts = {"transformer": unet.unet, "clip_l": clip.text_encoder, "t5": clip.text_encoder_2, "vae": vae.vae}
        watch(parts, recorder, seen)
        return loaded

    monkeypatch.setattr(loading, "load_checkpoint", load_and_watch)
    engine.run(graph())
    return recorder, seen


def test_model_offload_keeps_only_the_running_model_on_the_device(make_engine, flux_dir, tmp_path, monkeypatch):
    def watch(parts, recorder, seen):
        assert recorder.on_device(parts) == set()     # loaded into CPU memory
        del parts["vae"]._hf_hook     # as diffusers without accelerate: decode does not call it; the decoder moves it
        for name, module in (("transformer", parts["transformer"]), ("clip_l", parts["clip_l"]),
                             ("t5", parts["t5"]), ("vae", parts["vae"].decoder)):
            module.register_forward_pre_hook(lambda m, a, name=name: seen.append((name, recorder.on_device(parts))))

    recorder, seen = _run_recorded(make_engine, flux_dir, tmp_path, monkeypatch, "model", watch)
    assert {name for name, _ in seen} == {"transformer", "clip_l", "t5", "vae"}
    for name, on_device in seen:
        if name == "transformer":
            assert on_device == {"transformer"}
        elif name == "vae":
            assert on_device == {"vae"}
        else:     # one TextEncoder node runs CLIP-L then T5: the two stay together during it
            assert name in on_device and on_device <= {"clip_l", "t5"}
    assert ("FluxTransformer2DModel", "device") in recorder.whole_moves


def test_sequential_offload_moves_each_layer_for_its_forward_only(make_engine, flux_dir, tmp_path, monkeypatch):
    def watch(parts, recorder, seen):
        transformer = parts["transformer"]
        layers = {"x_embedder": transformer.x_embedder, "proj_out": transformer.proj_out,
                  "context_embedder": transformer.context_embedder}
        for name in ("x_embedder", "proj_out"):
            layers[name].register_forward_pre_hook(
                lambda m, a, name=name: seen.append((name, recorder.on_device(layers))))

    recorder, seen = _run_recorded(make_engine, flux_dir, tmp_path, monkeypatch, "sequential", watch)
    assert [name for name, _ in seen] == ["x_embedder", "proj_out"] * 6    # 3 steps, true CFG: 2 calls each
    for name, on_device in seen:
        assert on_device == {name}
    assert all(place == "home" for _, place in recorder.whole_moves)   # never a whole model on the device


def test_an_unknown_offload_setting_is_one_line(tmp_path, flux_dir, make_engine):
    from nodeforge import Engine

    base = make_engine(tmp_path, flux_dir)
    engine = Engine(device="cpu", output_dir=tmp_path, registry=base.registry, model_paths=base.model_paths,
                    settings={"offload": "gpu"})
    with pytest.raises(Exception) as info:
        engine.run(graph())
    assert "offload setting 'gpu'" in str(info.value) and "model or sequential" in str(info.value)


def test_nodeforge_run_offload_gives_the_same_picture(tmp_path):
    import numpy as np
    from PIL import Image

    from nodeforge.cli import main
    from nodeforge.paths import builtin_dir

    pictures = {}
    for mode in ("none", "model", "sequential"):
        out = tmp_path / mode
        assert main(["run", str(builtin_dir("workflows") / "txt2img.json"), "--device", "cpu", "--offload", mode,
                     "--out", str(out), "--set", "5.steps=4"]) == 0
        pictures[mode] = np.asarray(Image.open(next(out.glob("*.png"))))
    assert np.array_equal(pictures["model"], pictures["none"]) and np.array_equal(pictures["sequential"], pictures["none"])
