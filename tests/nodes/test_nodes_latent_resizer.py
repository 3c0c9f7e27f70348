"""LatentUpscaleNN (Ttl's NNLatentUpscale): a random resizer saved with the pack's key names loads by its
layout, and the node's output is the network's as written out here with functional ops on the state dict,
on the VAE's values x 0.13025 as the pack gives it (NodeForge's latents being scaled by their VAE's factor)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from nodeforge.core.errors import NodeError
from nodeforge.core.registry import builtin_module


@pytest.fixture(scope="module")
def resizer_root(tmp_path_factory):
    torch.manual_seed(0)
    model = builtin_module("latent_resizer").LatentResizer(3, 2, 32, True)
    root = tmp_path_factory.mktemp("latentupscale")
    (root / "latent_upscale_models").mkdir()
    torch.save(model.state_dict(), root / "latent_upscale_models" / "tiny_resizer.pt")
    return root


def _ctx(root):
    from nodeforge.core.models import ModelPaths

    paths = ModelPaths(roots=[root], include_builtin=False)
    return SimpleNamespace(resolve_file=lambda kind, name: paths.resolve(kind, name), device="cpu", shared={})


def _reference(sd, x, scale):
    """The resizer written out on its state dict: embed, conv_in, blocks, bilinear resize, blocks, head."""
    def lin(p, h):
        return F.linear(h, sd[p + ".weight"], sd[p + ".bias"])

    def conv(p, h, pad=1):
        return F.conv2d(h, sd[p + ".weight"], sd[p + ".bias"], padding=pad)

    def norm(p, h):
        return F.group_norm(h, 32, sd[p + ".weight"], sd[p + ".bias"])

    emb = lin("embed.2", F.silu(lin("embed.0", torch.tensor([[scale - 1.0]]))))

    def block(p, h):
        if p + ".q.weight" in sd:
            b, c, hh, ww = h.shape
            n = norm(p + ".norm", h)
            q, k, v = (conv(p + "." + name, n, 0).reshape(b, c, -1) for name in "qkv")
            weights = torch.softmax(q.transpose(1, 2) @ k / c ** 0.5, dim=-1)         # [b, queries, keys]
            return h + conv(p + ".proj_out", (v @ weights.transpose(1, 2)).reshape(b, c, hh, ww), 0)
        a = conv(p + ".in_layers.2", F.silu(norm(p + ".in_layers.0", h))) + lin(p + ".emb_layers.1", F.silu(emb))[..., None, None]
        return h + conv(p + ".out_layers.3", F.silu(norm(p + ".out_layers.0", a)))

    def stack(name, h):
        count = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith(name + "."))
        for i in range(count):
            h = block(f"{name}.{i}", h)
        return h

    h = stack("in_blocks", conv("conv_in", x))
    h = F.interpolate(h, size=(round(x.shape[2] * scale), round(x.shape[3] * scale)), mode="bilinear")
    return conv("conv_out", F.silu(norm("norm_out", stack("out_blocks", h))))


def test_the_layout_comes_from_the_file_and_the_output_is_the_networks(resizer_root):
    mod = builtin_module("latent_resizer")
    sd = torch.load(resizer_root / "latent_upscale_models" / "tiny_resizer.pt", weights_only=True)
    assert mod.layout(sd) == (3, 2, 32, True)
    assert sorted({k.split(".")[1] for k in sd if k.startswith("in_blocks.")}) == ["0", "1", "2", "3", "4"]
    torch.manual_seed(1)
    samples = torch.randn(2, 4, 8, 12)
    out = mod.run_latent_upscale_nn(_ctx(resizer_root), {"samples": samples, "factor": 8, "noise_mask": torch.ones(1)},
                                    "tiny_resizer.pt", 1.5)["latent"]
    assert set(out) == {"samples", "factor"} and out["samples"].shape == (2, 4, 12, 18)
    with torch.no_grad():
        expected = _reference(sd, samples, 1.5)      # SDXL's latents: already the pack's VAE values x 0.13025
    torch.testing.assert_close(out["samples"], expected, atol=1e-4, rtol=1e-4)
    same = mod.run_latent_upscale_nn(_ctx(resizer_root), {"samples": samples}, "tiny_resizer.pt", 1.04)["latent"]
    assert same["samples"] is samples           # round(8 x 1.04) = 8, round(12 x 1.04) = 12: unchanged


def test_other_files_and_latents_are_refused_with_what_to_use(resizer_root, tmp_path):
    mod = builtin_module("latent_resizer")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(NodeError, match="other.pt is not an NN latent upscaler .*sdxl_resizer.pt"):
        mod.read_resizer(tmp_path / "other.pt", "cpu")
    with pytest.raises(NodeError, match="takes SD 1.x and SDXL latents \\(4 channels\\); this one has 16 channels"):
        mod.run_latent_upscale_nn(_ctx(resizer_root), {"samples": torch.zeros(1, 16, 8, 8)}, "tiny_resizer.pt", 1.5)


@pytest.mark.parametrize("name,metadata,vae_scale", [
    ("sdxl_resizer.pt", None, 0.13025),                  # SDXL's latents go in as they are
    ("sd15_resizer.pt", None, 0.18215),                  # SD 1.x's: VAE values x 0.13025 = samples x 0.13025 / 0.18215
    ("shapes.safetensors", {"nodeforge_vae_scaling_factor": "0.37924"}, 0.37924),   # the demo model's, from the file
])
def test_the_network_sees_the_vae_values_times_0_13025_whatever_the_latents_scale(tmp_path, name, metadata, vae_scale):
    from safetensors.torch import save_file

    mod = builtin_module("latent_resizer")
    torch.manual_seed(2)
    sd = mod.LatentResizer(2, 2, 32, True).state_dict()
    (tmp_path / "latent_upscale_models").mkdir()
    path = tmp_path / "latent_upscale_models" / name
    if name.endswith(".pt"):
        torch.save(sd, path)
    else:
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path), metadata=metadata)
    raw = torch.randn(1, 4, 8, 8)                         # the VAE's own values (ComfyUI's latent)
    out = mod.run_latent_upscale_nn(_ctx(tmp_path), {"samples": raw * vae_scale}, name, 2.0)["latent"]["samples"]
    with torch.no_grad():
        expected = _reference(sd, raw * 0.13025, 2.0) / 0.13025 * vae_scale
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)


def test_a_file_naming_a_broken_scaling_factor_is_refused(tmp_path):
    from safetensors.torch import save_file

    mod = builtin_module("latent_resizer")
    sd = mod.LatentResizer(1, 1, 32, False).state_dict()
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "bad.safetensors"),
              metadata={"nodeforge_vae_scaling_factor": "-1"})
    with pytest.raises(NodeError, match="bad.safetensors names a VAE scaling factor of '-1' in its metadata"):
        mod.read_resizer(tmp_path / "bad.safetensors", "cpu")
