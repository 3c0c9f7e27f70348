"""Pieces of the demo model's training recipe that decide what the model can draw."""
import math

import pytest

torch = pytest.importorskip("torch")

from nodeforge.training import data, models, shapes  # noqa: E402


def test_edge_weight_marks_the_outline_and_leaves_flat_regions_alone():
    sample = data.ShapeSample("square", "red", "blue", "large", 20.0, (32.0, 32.0), math.pi / 8)
    x = shapes.to_tensor(data.render(sample)[None].copy())
    w = shapes.edge_weight(x, 5.0)[0, 0]
    assert w.shape == (64, 64)
    assert w[0, 0] == 1.0 and w[32, 32] == 1.0  # background corner, inside the square
    outline = w > 1.0
    assert set(w.unique().tolist()) == {1.0, 6.0}
    # A band of a few pixels around the square's perimeter (4 sides of 20 * sqrt(2) pixels).
    perimeter = 4 * 20 * math.sqrt(2)
    assert 2 * perimeter < outline.sum().item() < 5 * perimeter


def test_edge_weighted_loss_is_the_plain_mean_at_weight_zero_and_favours_outline_errors():
    torch.manual_seed(0)
    x = shapes.to_tensor(data.generate(4, seed=3)[0])
    rec = x + 0.1 * torch.randn_like(x)
    plain = torch.nn.functional.mse_loss(rec, x) + 0.1 * torch.nn.functional.l1_loss(rec, x)
    assert torch.allclose(shapes.recon_loss(rec, x, 0.0), plain)
    # An error on the outline costs more than the same error on the background once weighted.
    outline = shapes.edge_weight(x, 1.0) > 1.0
    on_edge, off_edge = x.clone(), x.clone()
    on_edge += 0.5 * outline
    off_edge += 0.5 * (~outline & (torch.rand_like(x[:, :1]) < outline.float().mean()))
    assert shapes.recon_loss(on_edge, x, 5.0) > 2 * shapes.recon_loss(off_edge, x, 5.0)


@pytest.mark.parametrize("attention_from, expected", [
    (0, ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")),
    (1, ("DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")),
])
def test_unet_attention_levels_mirror_between_down_and_up_paths(attention_from, expected):
    unet = models.make_unet((16, 32, 32), attention_from=attention_from)
    assert unet.config.down_block_types == expected
    assert unet.config.up_block_types == tuple(b.replace("Down", "Up") for b in reversed(expected))
    z = torch.randn(2, 4, 16, 16)
    out = unet(z, torch.tensor([10, 900]), encoder_hidden_states=torch.randn(2, 77, models.TEXT_HIDDEN)).sample
    assert out.shape == z.shape and torch.isfinite(out).all()

