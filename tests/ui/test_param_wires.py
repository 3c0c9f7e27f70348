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


def test_a_value_dropped_on_a_params_row_wires_it_and_greys_its_editor_until_disconnected(studio):
    size, latent = add(studio, "GetImageSize"), add(studio, "EmptyLatent", 400)
    scene, model = studio.scene, studio.model
    item = scene.nodes[latent]
    item.ensure_panel()
    row = next(rect for rect, param in item._param_rows() if param.name == "height")
    editor = item.panel.editors["height"]
    assert editor.isEnabled()
    scene.wires.begin(scene.nodes[size].outputs["batch_size"])
    scene.wires.finish(item.mapToScene(row.center()))            # dropped on Empty Latent's height row
    assert model.nodes[latent].inputs == {"height": (size, "batch_size")}
    assert not editor.isEnabled() and "wire from node" in editor.toolTip()
    assert item.inputs["height"].connected
    studio.stack.undo()                                           # one undo step takes it away again
    assert model.nodes[latent].inputs == {} and editor.isEnabled()
    assert "height" not in item.inputs                            # its port goes with the wire
    image = add(studio, "EmptyImage", 0, 400)
    scene.wires.begin(scene.nodes[image].outputs["image"])
    scene.wires.finish(item.mapToScene(row.center()))             # an IMAGE is no number: nothing happens
    assert model.nodes[latent].inputs == {} and editor.isEnabled()


def test_show_value_draws_what_it_received_in_its_node_after_a_run(studio, qtbot):
    image, size, show = add(studio, "EmptyImage"), add(studio, "GetImageSize", 300), add(studio, "ShowValue", 600)
    controller = studio.controller
    controller.set_param(image, "width", 96)
    assert controller.connect(image, "image", size, "image") and controller.connect(size, "width", show, "value")
    item = studio.scene.nodes[show]
    before = item.height
    with qtbot.waitSignal(studio.runner.runFinished, timeout=60_000):
        studio.run()
    assert item.shown_text == "96" and item._text_lines() == ["96"]
    assert item.height > before and "96" in item.toolTip()       # the node grows by the line it draws
    item.set_shown_text("\n".join(f"line {i}" for i in range(20)))
    lines = item._text_lines()
    assert len(lines) == 8 and lines[-1] == "… 13 more lines"     # long text is cut; the tooltip has it all
