"""Background removal with BRIA's RMBG-1.4 (ComfyUI-Video-Matting's "BRIAAI Matting").

RMBG-1.4 is an IS-Net (Qin et al., "Highly Accurate Dichotomous Image Segmentation", 2022): a U-Net of residual
U-blocks (RSU-L: a small U-Net of depth L inside each stage, its output added to its input convolution; RSU-4F keeps
the resolution and dilates instead of pooling). A stride-2 convolution feeds six encoder stages (RSU-7, 6, 5, 4, 4F,
4F, max-pooled 2x between them), five decoder stages take the upsampled stage below concatenated with the encoder's
stage of that size, and a 3x3 convolution of the last decoder stage, upsampled to the input and through a sigmoid, is
the matte (the other stages' side outputs only served training). Written here from that description, with the
parameter names of briaai's model.safetensors (conv_in, stage1..6, stage5d..1d, side1..6; each convolution's
`rebnconv*.conv_s1` and batch norm `bn_s1`), so the file loads as it is; widths scale with conv_in's, so a tiny model
of the same layout builds for tests.

As the pack does: each picture is resized to 1024x1024 (bilinear), normalised (x - 0.5) / 1.0, the matte is min-max
normalised, resized back to the picture (nearest) and is the mask; the image is the picture over `bg_color` by the
mask. The pack normalises over each batch of `batch_size` pictures; here each picture alone (the same for one picture);
a flat matte (no contrast to stretch; the pack divides by zero there) stays as the model gave it.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nodeforge.core.errors import NodeError
from nodeforge.core.types import FileKind

from .loading import load_shared
from .weight_files import load_exact

SIZE = 1024          # the side RMBG-1.4 was trained at
BASE = 64            # conv_in's width in RMBG-1.4; every other width scales with it
# (encoder stages: depth, in, mid, out, dilated) in RMBG-1.4's widths, then the decoder's
ENCODER = ((7, 64, 32, 64, False), (6, 64, 32, 128, False), (5, 128, 64, 256, False), (4, 256, 128, 512, False),
           (4, 512, 256, 512, True), (4, 512, 256, 512, True))
DECODER = ((4, 1024, 256, 512, True), (4, 1024, 128, 256, False), (5, 512, 64, 128, False), (6, 256, 32, 64, False),
           (7, 128, 16, 64, False))
SIDES = (64, 64, 128, 256, 512, 512)
_lock = threading.Lock()


class ConvBNReLU(nn.Module):
    """3x3 convolution (dilated), batch norm, ReLU: the unit every stage is made of."""

    def __init__(self, cin: int, cout: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv_s1 = nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation)
        self.bn_s1 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn_s1(self.conv_s1(x)))


def _resized(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=False)


class ResidualUBlock(nn.Module):
    """RSU-`depth`: an input convolution, a U-Net of `depth` levels on it, their sum. Pooled: levels 1..depth-1 halve
    the size between them and the deepest is dilated 2; dilated (RSU-4F): no pooling, level i dilated 2^(i-1)."""

    def __init__(self, depth: int, cin: int, mid: int, cout: int, dilated: bool) -> None:
        super().__init__()
        self.depth, self.dilated = depth, dilated
        self.rebnconvin = ConvBNReLU(cin, cout)
        for level in range(1, depth + 1):
            rate = 2 ** (level - 1) if dilated else (2 if level == depth else 1)
            setattr(self, f"rebnconv{level}", ConvBNReLU(cout if level == 1 else mid, mid, rate))
        for level in range(depth - 1, 0, -1):
            rate = 2 ** (level - 1) if dilated else 1
            setattr(self, f"rebnconv{level}d", ConvBNReLU(2 * mid, cout if level == 1 else mid, rate))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        start = self.rebnconvin(x)
        levels, hx = [], start
        for level in range(1, self.depth + 1):
            hx = getattr(self, f"rebnconv{level}")(hx)
            levels.append(hx)
            if not self.dilated and level < self.depth - 1:
                hx = F.max_pool2d(hx, 2, stride=2, ceil_mode=True)
        up = levels[-1]
        for level in range(self.depth - 1, 0, -1):
            up = getattr(self, f"rebnconv{level}d")(torch.cat([up, levels[level - 1]], 1))
            if not self.dilated and level > 1:
                up = _resized(up, levels[level - 2])
        return up + start


class BriaRMBG(nn.Module):
    """IS-Net as RMBG-1.4 lays it out; `width` is conv_in's (64 in RMBG-1.4), the rest scale with it."""

    def __init__(self, width: int = BASE) -> None:
        super().__init__()
        size = lambda channels: channels * width // BASE   # noqa: E731
        self.conv_in = nn.Conv2d(3, width, 3, stride=2, padding=1)
        for index, (depth, cin, mid, cout, dilated) in enumerate(ENCODER, 1):
            setattr(self, f"stage{index}", ResidualUBlock(depth, size(cin), size(mid), size(cout), dilated))
        for index, (depth, cin, mid, cout, dilated) in zip(range(5, 0, -1), DECODER):
            setattr(self, f"stage{index}d", ResidualUBlock(depth, size(cin), size(mid), size(cout), dilated))
        for index, channels in enumerate(SIDES, 1):
            setattr(self, f"side{index}", nn.Conv2d(size(channels), 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The matte (sigmoid, 0..1) of pictures [B, 3, H, W] normalised as RMBG-1.4 takes them: [B, 1, H, W]."""
        hx = self.conv_in(x)
        encoded = []
        for index in range(1, 7):
            hx = getattr(self, f"stage{index}")(hx)
            encoded.append(hx)
            if index < 6:
                hx = F.max_pool2d(hx, 2, stride=2, ceil_mode=True)
        up = encoded[-1]
        for index in range(5, 0, -1):
            up = getattr(self, f"stage{index}d")(torch.cat([_resized(up, encoded[index - 1]), encoded[index - 1]], 1))
        return torch.sigmoid(_resized(self.side1(up), x))


def _weights_file(path: Path) -> Path:
    if path.is_dir():
        for name in ("model.safetensors", "model.pth"):
            if (path / name).is_file():
                return path / name
        raise NodeError(f"{path.name} holds no model.safetensors: put briaai/RMBG-1.4's model.safetensors in "
                        "models/rmbg/", field="model")
    return path


def build(state: dict[str, torch.Tensor], source: str) -> BriaRMBG:
    """An RMBG-1.4 network holding `state`, its widths read from conv_in; refused in one line when the file is not
    one."""
    conv = state.get("conv_in.weight")
    if conv is None or conv.ndim != 4 or conv.shape[1] != 3 or conv.shape[0] % 4:
        raise NodeError(f"{source} is not an RMBG-1.4 model (no 3-channel conv_in.weight): use model.safetensors from "
                        "briaai/RMBG-1.4", field="model")
    model = BriaRMBG(int(conv.shape[0]))
    return load_exact(model, state, source, "an RMBG-1.4 model", "use model.safetensors from briaai/RMBG-1.4")


def load_rmbg(path: Path, device: str, shared: dict[str, Any] | None = None) -> BriaRMBG:
    def read() -> BriaRMBG:
        from .loading import read_state_dict

        state, _ = read_state_dict(_weights_file(path), field="model")
        return build(state, path.name).to(device)
    return load_shared(shared, "nodes.rmbg", path, device, _lock, read)


def colour(text: str) -> torch.Tensor:
    """An RGB colour 0..1 from a name or #hex (PIL's names, as the pack reads bg_color)."""
    from PIL import ImageColor

    try:
        rgb = ImageColor.getrgb(text.strip())
    except ValueError:
        raise NodeError(f"bg_color {text!r} is not a colour: give a name such as 'green' or a hex value such as "
                        "'#7F7F7F'", field="bg_color") from None
    return torch.tensor(rgb[:3], dtype=torch.float32) / 255


def matte(model: BriaRMBG, pictures: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """The mask [B, H, W] of IMAGE pictures [B, H, W, 3]: RMBG's matte at `size`, min-max normalised per picture,
    resized back (nearest)."""
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    masks = []
    for picture in pictures:
        x = picture[..., :3].permute(2, 0, 1)[None].float()
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False) - 0.5
        with torch.inference_mode():
            out = model(x.to(device, dtype)).float().cpu()
        low, high = out.min(), out.max()
        out = (out - low) / (high - low) if high > low else out    # a flat matte stays as the model gave it
        masks.append(F.interpolate(out, size=picture.shape[:2], mode="nearest")[0, 0])
    return torch.stack(masks)


def run_remove_background(ctx: Any, image: torch.Tensor, model: str, bg_color: str) -> dict[str, Any]:
    background = colour(bg_color)
    network = load_rmbg(Path(ctx.resolve_file(FileKind.BACKGROUND_REMOVAL, model)), ctx.device, ctx.shared)
    mask = matte(network, image)
    alpha = mask.unsqueeze(-1)
    return {"image": image[..., :3].float() * alpha + background * (1 - alpha), "mask": mask}
