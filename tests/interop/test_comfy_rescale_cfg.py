"""ComfyUI's RescaleCFG (issue 30) comes in as NodeForge's RescaleCFG with its multiplier and link,
from a UI 0.4 file and an API prompt alike, warns that eps models differ from ComfyUI, and goes back
under its ComfyUI name with the same values (comfy-rescale-cfg-*.json, one graph in both forms)."""
from __future__ import annotations

import pytest

from nodeforge.interop import comfy_packs, comfy_table

FORMATS = ["comfy-rescale-cfg-0.4.json", "comfy-rescale-cfg-api.json"]
NOTE = ("node 10 (RescaleCFG): NodeForge rescales the UNet's noise prediction as diffusers' guidance_rescale does; "
        "ComfyUI rescales in v-prediction form, so on eps models (most SD 1.x and XL) the image differs slightly")


@pytest.mark.parametrize("name", FORMATS)
def test_rescale_cfg_comes_in_with_its_multiplier_between_the_loader_and_the_sampler(read, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    assert (nodes["10"].type, nodes["10"].params, nodes["10"].inputs) == (
        "RescaleCFG", {"multiplier": 0.65}, {"unet": ("4", "unet")})
    assert nodes["3"].inputs["unet"] == ("10", "unet") and nodes["3"].params["cfg"] == 9
    assert all(n.type != "comfyui.Placeholder" for n in nodes.values())
    assert [line for line in imported.warnings if not line.startswith("missing ")] == [NOTE]


@pytest.mark.parametrize("name", FORMATS)
def test_rescale_cfg_validates_and_exports_back_with_the_same_values(exported_back, name):
    back = exported_back(name, "comfy-rescale-cfg-api.json", valid=True)
    back.assert_kept(["10"], "RescaleCFG")
    assert back.prompt["10"]["inputs"] == {"multiplier": 0.65, "model": ["4", 0]}
    assert back.prompt["3"]["inputs"]["model"] == ["10", 0]


def test_rescale_cfg_is_mapped_and_no_longer_listed_as_unsupported():
    assert "RescaleCFG" in comfy_table.BY_COMFY and "RescaleCFG" not in comfy_packs.CORE
