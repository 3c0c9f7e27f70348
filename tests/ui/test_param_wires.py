"""A plain value wired into a param in the editor: Get Image Size's width into Empty Latent's width connects (and
shows a port for the param while the wire is there), an IMAGE into it is refused, and undo takes the wire away."""
from __future__ import annotations

from tests.ui.helpers import add


def test_an_int_output_wires_into_an_int_param_and_shows_its_port(studio):
    image, size, latent = add(studio, "EmptyImage"), add(studio, "GetImageSize", 300), add(studio, "EmptyLatent", 600)
    controller = studio.controller
    assert controller.connect(image, "image", size, "image")
    assert not controller.connect(image, "image", latent, "width")          # an IMAGE is no whole number
    assert controller.connect(size, "width", latent, "width")
    assert studio.model.nodes[latent].inputs == {"width": (size, "width")}
    item = studio.scene.nodes[latent]
    assert item.inputs["width"].port_type == "INT" and item.inputs["width"].connected
    assert (latent, "width") in studio.scene.edges
    studio.stack.undo()
    assert "width" not in studio.model.nodes[latent].inputs and (latent, "width") not in studio.scene.edges
    assert "width" not in studio.scene.nodes[latent].inputs      # the param's port went with its wire
