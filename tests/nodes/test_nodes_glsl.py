"""GLSL Shader (ComfyUI's GLSLShader) compiled and drawn by OpenGL ES 3 through EGL (Mesa's llvmpipe on a
machine without a GPU): the default shader gives the image back (alpha 1), uniforms and several outputs
reach the shader and come back as written, v_texCoord has y up as in ComfyUI, an HSL desaturation written
here gives the numbers worked out by hand, `#pragma passes` runs each pass on the last one's result, custom
sizes, and a shader that does not compile or mismatched batches are refused in one line."""
from __future__ import annotations

import pytest
import torch

from nodes.gl_context import gl_available

needs_gl = pytest.mark.skipif(not gl_available(), reason="no OpenGL ES 3 context through EGL on this machine")

HEADER = """#version 300 es
precision highp float;
uniform sampler2D u_image0;
uniform sampler2D u_image1;
uniform vec2 u_resolution;
uniform float u_float0;
uniform float u_float1;
uniform int u_int0;
uniform int u_pass;
in vec2 v_texCoord;
"""


def _run(shader: str, image: torch.Tensor, **more):
    from nodes.glsl import run_glsl_shader

    return run_glsl_shader(None, image, shader, **more)


@needs_gl
def test_the_default_shader_gives_the_image_back_with_alpha_1():
    from nodes.operation_specs import DEFAULT_SHADER

    image = torch.rand(2, 6, 9, 3)
    out = _run(DEFAULT_SHADER, image)
    assert set(out) == {"image0", "image1", "image2", "image3"}
    assert out["image0"].shape == (2, 6, 9, 4)
    assert (out["image0"][..., :3] - image).abs().max() < 2e-3
    assert torch.equal(out["image0"][..., 3], torch.ones(2, 6, 9))
    assert torch.equal(out["image3"], torch.zeros(2, 6, 9, 4))      # outputs the shader does not write: black


@needs_gl
def test_uniforms_and_two_outputs_reach_the_shader_and_y_runs_up():
    shader = HEADER + """layout(location = 0) out vec4 fragColor0;
layout(location = 1) out vec4 fragColor1;
void main() {
    vec4 c = texture(u_image0, v_texCoord);
    fragColor0 = vec4(c.rgb * u_float0 + float(u_int0) / 10.0, 1.0);
    fragColor1 = vec4(v_texCoord, u_resolution);
}
"""
    image = torch.rand(1, 5, 8, 3)
    out = _run(shader, image, u_float0=2.0, u_int0=3)
    assert (out["image0"][..., :3] - (image * 2 + 0.3)).abs().max() < 3e-3
    coords = out["image1"][0]
    assert torch.allclose(coords[..., 2:], torch.tensor([8.0, 5.0]).expand(5, 8, 2))
    # pixel centres: x = (col + 0.5) / 8 left to right; y = 1 - (row + 0.5) / 5 (the top row has y near 1)
    assert torch.allclose(coords[0, :, 0], (torch.arange(8) + 0.5) / 8, atol=1e-4)
    assert torch.allclose(coords[:, 0, 1], 1 - (torch.arange(5) + 0.5) / 5, atol=1e-4)


@needs_gl
def test_an_hsl_desaturation_gives_the_numbers_worked_out_by_hand():
    # fragColor (no index) as 041's Hue and Saturation shader writes it; no #version: one is added
    shader = """precision highp float;
uniform sampler2D u_image0;
uniform float u_float0;
in vec2 v_texCoord;
out vec4 fragColor;
void main() {
    vec3 c = texture(u_image0, v_texCoord).rgb;
    float hi = max(max(c.r, c.g), c.b), lo = min(min(c.r, c.g), c.b);
    float l = (hi + lo) * 0.5;
    fragColor = vec4(mix(c, vec3(l), u_float0 / 100.0), 1.0);
}
"""
    colours = torch.tensor([[[1.0, 0.0, 0.0], [0.2, 0.6, 0.4], [0.9, 0.9, 0.1]]])[None]   # 1 x 1 x 3 pixels
    grey = _run(shader, colours, u_float0=100.0)["image0"][0, 0, :, :3]
    assert torch.allclose(grey, torch.tensor([[0.5] * 3, [0.4] * 3, [0.5] * 3]), atol=2e-3)
    half = _run(shader, colours, u_float0=50.0)["image0"][0, 0, :, :3]
    assert torch.allclose(half, torch.tensor([[0.75, 0.25, 0.25], [0.3, 0.5, 0.4], [0.7, 0.7, 0.3]]), atol=2e-3)


@needs_gl
def test_each_pass_reads_the_last_ones_result():
    shader = "#pragma passes 3\n" + HEADER + """out vec4 fragColor0;
void main() {
    vec4 c = texture(u_image0, v_texCoord);
    fragColor0 = vec4(c.rgb + 0.1, float(u_pass));
}
"""
    image = torch.rand(1, 4, 4, 3) * 0.5
    out = _run(shader, image)["image0"]
    assert (out[..., :3] - (image + 0.3)).abs().max() < 3e-3
    assert torch.equal(out[..., 3], torch.full((1, 4, 4), 2.0))       # the last pass is number 2


@needs_gl
def test_a_second_image_and_a_custom_size():
    shader = HEADER + """out vec4 fragColor0;
void main() {
    fragColor0 = texture(u_image0, v_texCoord) - texture(u_image1, v_texCoord);
}
"""
    flat = torch.full((1, 4, 4, 3), 0.75)
    out = _run(shader, flat, image1=torch.full((1, 2, 2, 3), 0.25), size_mode="custom", width=3, height=7)
    assert out["image0"].shape == (1, 7, 3, 4)
    assert torch.allclose(out["image0"][..., :3], torch.full((1, 7, 3, 3), 0.5), atol=2e-3)
    assert torch.allclose(out["image0"][..., 3], torch.zeros(1, 7, 3), atol=1e-6)      # 1 - 1


@needs_gl
def test_a_shader_that_does_not_compile_and_short_batches_are_refused_in_one_line():
    from nodeforge.core.errors import NodeError

    with pytest.raises(NodeError) as refused:
        _run(HEADER + "out vec4 fragColor0;\nvoid main() { fragColor0 = vec4(nothing_here); }\n", torch.rand(1, 2, 2, 3))
    message = str(refused.value)
    assert refused.value.field == "fragment_shader" and "\n" not in message
    assert message.startswith("the fragment shader does not compile: ") and "nothing_here" in message
    with pytest.raises(NodeError) as refused:
        _run(HEADER + "out vec4 fragColor0;\nvoid main() { fragColor0 = vec4(1.0); }\n", torch.rand(2, 2, 2, 3),
             image1=torch.rand(1, 2, 2, 3))
    assert refused.value.field == "image1" and "image0 2" in str(refused.value)


@needs_gl
def test_an_imported_comfyui_graph_runs_its_shader_on_the_loaded_image(engine):
    """comfy-glsl-shader-0.4.json (LoadImage -> GLSLShader with u_float0 0.5 and u_int0 2 from linked
    constants): the shader's output is the image x 0.5 + 0.2, its alpha kept."""
    from nodeforge.interop import read_workflow

    from tiny_models import REPO

    wf = read_workflow(REPO / "tests" / "interop" / "data" / "comfy-glsl-shader-0.4.json").workflow
    wf.nodes["1"].params["path"] = str(REPO / "workflows" / "inputs" / "red-circle.png")
    wf.origins.pop(("1", "path"))      # as the user choosing the image in the editor
    outputs = engine.run(wf, outputs=["1", "4"]).outputs
    image, shaded = outputs["1"]["image"], outputs["4"]["image0"]
    assert shaded.shape[:3] == image.shape[:3] and shaded.shape[-1] == 4
    assert (shaded[..., :3] - (image[..., :3] * 0.5 + 0.2)).abs().max() < 3e-3
    assert torch.equal(shaded[..., 3], torch.ones_like(shaded[..., 3]))


def test_a_machine_without_egl_gets_one_line_naming_what_to_install(monkeypatch):
    import ctypes.util

    from nodeforge.core.errors import NodeError
    from nodes import gl_context
    from nodes.glsl import run_glsl_shader
    from nodes.operation_specs import DEFAULT_SHADER

    monkeypatch.setattr(gl_context, "_CONTEXT", None)
    monkeypatch.setattr(gl_context, "_FAILED", None)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    with pytest.raises(NodeError) as refused:
        run_glsl_shader(None, torch.rand(1, 2, 2, 3), DEFAULT_SHADER)
    message = str(refused.value)
    assert refused.value.field == "fragment_shader" and "\n" not in message
    assert message.startswith("no OpenGL ES 3 context can be made here (libEGL or libGLESv2 is not installed")
    assert "sudo apt-get install libegl1 libgles2 libgl1-mesa-dri" in message
