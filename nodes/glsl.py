"""GLSLShader: ComfyUI's GLSL Shader node, a GLSL ES 3.00 fragment shader run over images, compiled and
drawn by OpenGL ES 3 in an offscreen EGL context (nodes/gl_context.py; on a machine without a GPU Mesa's
llvmpipe draws it on the CPU).

What the shader sees, as in ComfyUI: `v_texCoord` (0..1, y up: 0 is the image's bottom row), the images as
`u_image0`..`u_image4` (RGBA float textures, linear filtering, edges clamped; RGB images get alpha 1),
`u_resolution` (the output size), `u_float0`..`u_float4` and `u_int0`..`u_int4` (0 where not connected), and
with `#pragma passes N` the pass number `u_pass`, each pass after the first reading the previous one's
result as `u_image0`. It writes `fragColor` (or `fragColor0`..`fragColor3` for up to four outputs). The
output is the first image's size (size_mode from_input) or width x height (custom), RGBA floats as the
shader wrote them (not clamped). A shader written for desktop GLSL gets `#version 300 es` and a float
precision in place of its own header; what GLSL ES does not have fails to compile, in one line.
Opening a workflow never runs a shader: it runs when the graph runs, in the GL driver, as ComfyUI runs it.
"""
from __future__ import annotations

import ctypes
import re
from typing import Any

import numpy as np
import torch

from nodeforge.core.errors import NodeError

from .operation_specs import DEFAULT_SHADER, GLSL_SIZE_MODES as SIZE_MODES  # noqa: F401 (the node's defaults)

MAX_IMAGES, MAX_UNIFORMS, MAX_OUTPUTS = 5, 5, 4
# A triangle over the whole viewport, its corners made from the vertex number: no vertex buffer needed.
VERTEX_SHADER = """#version 300 es
out vec2 v_texCoord;
void main() {
    vec2 corner = vec2(float((gl_VertexID & 1) * 4 - 1), float((gl_VertexID & 2) * 2 - 1));
    v_texCoord = corner * 0.5 + 0.5;
    gl_Position = vec4(corner, 0.0, 1.0);
}
"""
GL_FRAGMENT_SHADER, GL_VERTEX_SHADER, GL_COMPILE_STATUS, GL_LINK_STATUS = 0x8B30, 0x8B31, 0x8B81, 0x8B82
GL_INFO_LOG_LENGTH, GL_TEXTURE_2D, GL_TEXTURE0 = 0x8B84, 0x0DE1, 0x84C0
GL_RGBA32F, GL_RGBA, GL_FLOAT = 0x8814, 0x1908, 0x1406
GL_TEXTURE_MIN_FILTER, GL_TEXTURE_MAG_FILTER, GL_LINEAR = 0x2801, 0x2800, 0x2601
GL_TEXTURE_WRAP_S, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE = 0x2802, 0x2803, 0x812F
GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_FRAMEBUFFER_COMPLETE = 0x8D40, 0x8CE0, 0x8CD5
GL_TRIANGLES, GL_COLOR_BUFFER_BIT, GL_BLEND = 0x0004, 0x4000, 0x0BE2


def es_source(source: str) -> str:
    """The shader as GLSL ES 3.00: its own #version line replaced, a float precision added if it has none."""
    body = re.sub(r"^[ \t]*#version[^\n]*\n?", "", source, flags=re.MULTILINE)
    if not re.search(r"precision\s+(lowp|mediump|highp)\s+float\s*;", body):
        body = "precision highp float;\n" + body
    return "#version 300 es\n" + body


def output_count(source: str) -> int:
    """How many outputs the shader writes: fragColor0..fragColorN (N < 4), else one."""
    found = [int(n) for n in re.findall(r"fragColor(\d+)", source)]
    return min(max(found) + 1, MAX_OUTPUTS) if found else 1


def pass_count(source: str) -> int:
    found = re.search(r"#pragma\s+passes\s+(\d+)", source)
    return max(1, int(found.group(1))) if found else 1


def _log(gl: Any, handle: int, getter: Any, reader: Any) -> str:
    length = ctypes.c_int(0)
    getter(handle, GL_INFO_LOG_LENGTH, ctypes.byref(length))
    text = ctypes.create_string_buffer(max(length.value, 1))
    reader(handle, len(text), None, text)
    lines = [line.strip() for line in text.value.decode(errors="replace").splitlines() if line.strip()]
    return lines[0] if lines else "no message from the driver"


def _shader(gl: Any, kind: int, source: str) -> int:
    shader = gl.glCreateShader(kind)
    text = ctypes.c_char_p(source.encode())
    gl.glShaderSource(shader, 1, ctypes.byref(text), None)
    gl.glCompileShader(shader)
    ok = ctypes.c_int(0)
    gl.glGetShaderiv(shader, GL_COMPILE_STATUS, ctypes.byref(ok))
    if not ok.value:
        reason = _log(gl, shader, gl.glGetShaderiv, gl.glGetShaderInfoLog)
        gl.glDeleteShader(shader)
        raise NodeError(f"the fragment shader does not compile: {reason}; fix it (GLSL ES 3.00, as ComfyUI's "
                        "GLSL Shader takes)", field="fragment_shader")
    return shader


def _program(gl: Any, fragment: str) -> int:
    shaders = [_shader(gl, GL_VERTEX_SHADER, VERTEX_SHADER), _shader(gl, GL_FRAGMENT_SHADER, fragment)]
    program = gl.glCreateProgram()
    for shader in shaders:
        gl.glAttachShader(program, shader)
    gl.glLinkProgram(program)
    for shader in shaders:
        gl.glDeleteShader(shader)
    ok = ctypes.c_int(0)
    gl.glGetProgramiv(program, GL_LINK_STATUS, ctypes.byref(ok))
    if not ok.value:
        reason = _log(gl, program, gl.glGetProgramiv, gl.glGetProgramInfoLog)
        gl.glDeleteProgram(program)
        raise NodeError(f"the fragment shader does not link: {reason}; its inputs must be v_texCoord and its "
                        "outputs fragColor or fragColor0..3", field="fragment_shader")
    return program


def _textures(gl: Any, count: int) -> list[int]:
    names = (ctypes.c_uint * count)()
    gl.glGenTextures(count, names)
    for name in names:
        gl.glBindTexture(GL_TEXTURE_2D, name)
        for key, value in ((GL_TEXTURE_MIN_FILTER, GL_LINEAR), (GL_TEXTURE_MAG_FILTER, GL_LINEAR),
                           (GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE), (GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE)):
            gl.glTexParameteri(GL_TEXTURE_2D, key, value)
    return list(names)


def _upload(gl: Any, texture: int, pixels: np.ndarray | None, width: int, height: int) -> None:
    gl.glBindTexture(GL_TEXTURE_2D, texture)
    data = None if pixels is None else pixels.ctypes.data_as(ctypes.c_void_p)
    gl.glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA32F, width, height, 0, GL_RGBA, GL_FLOAT, data)


def _framebuffer(gl: Any, textures: list[int]) -> int:
    name = ctypes.c_uint(0)
    gl.glGenFramebuffers(1, ctypes.byref(name))
    gl.glBindFramebuffer(GL_FRAMEBUFFER, name.value)
    for i, texture in enumerate(textures):
        gl.glFramebufferTexture2D(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0 + i, GL_TEXTURE_2D, texture, 0)
    buffers = (ctypes.c_uint * len(textures))(*(GL_COLOR_ATTACHMENT0 + i for i in range(len(textures))))
    gl.glDrawBuffers(len(textures), buffers)
    if gl.glCheckFramebufferStatus(GL_FRAMEBUFFER) != GL_FRAMEBUFFER_COMPLETE:
        raise NodeError("the GL driver cannot draw into float RGBA images (no EXT_color_buffer_float); GLSL Shader "
                        "needs a driver that can (Mesa's llvmpipe or a GPU driver)", field="fragment_shader")
    return name.value


def _rgba(image: np.ndarray) -> np.ndarray:
    """An [h, w, c] image as the RGBA float rows GL reads, bottom row first."""
    h, w, c = image.shape
    rgba = np.ones((h, w, 4), dtype=np.float32)
    rgba[..., :min(c, 4)] = image[..., :4]
    if c == 1:
        rgba[..., 1:3] = image
    return np.ascontiguousarray(rgba[::-1])


def render(source: str, images: list[np.ndarray], width: int, height: int, floats: list[float],
           ints: list[int]) -> list[np.ndarray]:
    """The shader's outputs ([height, width, 4] float32 each, top row first) for one set of input images."""
    return render_batch(source, [images], width, height, floats, ints)[0]


def render_batch(source: str, batches: list[list[np.ndarray]], width: int, height: int, floats: list[float],
                 ints: list[int]) -> list[list[np.ndarray]]:
    from .gl_context import GLUnavailable, gl_context

    try:
        context = gl_context()
    except GLUnavailable as exc:
        raise NodeError(f"no OpenGL ES 3 context can be made here ({exc}); GLSL Shader needs EGL with an OpenGL ES "
                        "3 driver", field="fragment_shader") from None
    outputs, passes = output_count(source), pass_count(source)
    with context.current() as gl:
        program = _program(gl, es_source(source))
        made_textures: list[int] = []
        made_buffers: list[int] = []
        try:
            gl.glUseProgram(program)
            inputs = _textures(gl, len(batches[0]))
            targets = _textures(gl, outputs)
            made_textures += inputs + targets
            for texture in targets:
                _upload(gl, texture, None, width, height)
            main = _framebuffer(gl, targets)
            made_buffers.append(main)
            steps: list[tuple[int, int]] = []      # (framebuffer, its texture) of the passes before the last
            if passes > 1:
                between = _textures(gl, 2)
                made_textures += between
                for texture in between:
                    _upload(gl, texture, None, width, height)
                    steps.append((_framebuffer(gl, [texture]), texture))
                made_buffers += [fb for fb, _ in steps]
            _uniforms(gl, program, len(inputs), width, height, floats, ints)
            at_pass = gl.glGetUniformLocation(program, b"u_pass")
            gl.glViewport(0, 0, width, height)
            gl.glDisable(GL_BLEND)
            results = []
            for images in batches:
                for unit, (texture, image) in enumerate(zip(inputs, images)):
                    gl.glActiveTexture(GL_TEXTURE0 + unit)
                    _upload(gl, texture, _rgba(image), image.shape[1], image.shape[0])
                for step in range(passes):
                    last = step == passes - 1
                    gl.glBindFramebuffer(GL_FRAMEBUFFER, main if last else steps[step % 2][0])
                    gl.glActiveTexture(GL_TEXTURE0)
                    gl.glBindTexture(GL_TEXTURE_2D, inputs[0] if step == 0 else steps[(step - 1) % 2][1])
                    if at_pass >= 0:
                        gl.glUniform1i(at_pass, step)
                    gl.glClearColor(0.0, 0.0, 0.0, 0.0)
                    gl.glClear(GL_COLOR_BUFFER_BIT)
                    gl.glDrawArrays(GL_TRIANGLES, 0, 3)
                results.append([_read(gl, i, width, height) for i in range(outputs)])
            return results
        finally:
            gl.glBindFramebuffer(GL_FRAMEBUFFER, 0)
            gl.glUseProgram(0)
            if made_textures:
                gl.glDeleteTextures(len(made_textures), (ctypes.c_uint * len(made_textures))(*made_textures))
            if made_buffers:
                gl.glDeleteFramebuffers(len(made_buffers), (ctypes.c_uint * len(made_buffers))(*made_buffers))
            gl.glDeleteProgram(program)


def _uniforms(gl: Any, program: int, images: int, width: int, height: int, floats: list[float],
              ints: list[int]) -> None:
    for unit in range(images):
        where = gl.glGetUniformLocation(program, f"u_image{unit}".encode())
        if where >= 0:
            gl.glUniform1i(where, unit)
    where = gl.glGetUniformLocation(program, b"u_resolution")
    if where >= 0:
        gl.glUniform2f(where, float(width), float(height))
    for i, value in enumerate(floats):
        where = gl.glGetUniformLocation(program, f"u_float{i}".encode())
        if where >= 0:
            gl.glUniform1f(where, float(value))
    for i, value in enumerate(ints):
        where = gl.glGetUniformLocation(program, f"u_int{i}".encode())
        if where >= 0:
            gl.glUniform1i(where, int(value))


def _read(gl: Any, attachment: int, width: int, height: int) -> np.ndarray:
    gl.glReadBuffer(GL_COLOR_ATTACHMENT0 + attachment)
    pixels = np.empty((height, width, 4), dtype=np.float32)
    gl.glReadPixels(0, 0, width, height, GL_RGBA, GL_FLOAT, pixels.ctypes.data_as(ctypes.c_void_p))
    return pixels[::-1].copy()


def run_glsl_shader(ctx: Any, image0: torch.Tensor, fragment_shader: str = DEFAULT_SHADER,
                    size_mode: str = "from_input", width: int = 512, height: int = 512,
                    **connected: Any) -> dict[str, Any]:
    """`connected`: image1..image4 (None where not linked), u_float0..4 and u_int0..4."""
    images = [image0] + [connected.get(f"image{i}") for i in range(1, MAX_IMAGES)]
    images = [image for image in images if image is not None]
    batch = image0.shape[0]
    short = next((i for i, image in enumerate(images) if image.shape[0] < batch), None)
    if short is not None:
        raise NodeError(f"image{short} holds {images[short].shape[0]} image(s) and image0 {batch}; give every image "
                        "input at least image0's batch (RepeatImageBatch)", field=f"image{short}")
    floats = [float(connected.get(f"u_float{i}") or 0.0) for i in range(MAX_UNIFORMS)]
    ints = [int(connected.get(f"u_int{i}") or 0) for i in range(MAX_UNIFORMS)]
    if size_mode == "custom":
        out_w, out_h = int(width), int(height)
    else:
        out_h, out_w = int(image0.shape[1]), int(image0.shape[2])
    batches = [[image[b].detach().float().cpu().numpy() for image in images] for b in range(batch)]
    rendered = render_batch(fragment_shader, batches, out_w, out_h, floats, ints)
    out = {}
    for i in range(MAX_OUTPUTS):      # outputs the shader does not write are black, as in ComfyUI
        frames = [torch.from_numpy(r[i]) if i < len(r) else torch.zeros(out_h, out_w, 4) for r in rendered]
        out[f"image{i}"] = torch.stack(frames).to(image0.device)
    return out
