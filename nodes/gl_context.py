"""An offscreen OpenGL ES 3 context through EGL, called with ctypes (no PyOpenGL, no window, no display):
Mesa's surfaceless platform first (llvmpipe renders on the CPU when there is no GPU), else EGL's default
display. One context for the process, made current only while a caller holds it (`current()`), so any
thread may use it in turn. `GLES` holds the few GLES 3 entry points the GLSL Shader node calls.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import threading
from typing import Any, Iterator

EGL_PLATFORM_SURFACELESS_MESA = 0x31DD
EGL_NONE, EGL_RENDERABLE_TYPE, EGL_OPENGL_ES3_BIT = 0x3038, 0x3040, 0x0040
EGL_SURFACE_TYPE, EGL_PBUFFER_BIT, EGL_WIDTH, EGL_HEIGHT = 0x3033, 0x0001, 0x3057, 0x3056
EGL_OPENGL_ES_API, EGL_CONTEXT_MAJOR_VERSION = 0x30A0, 0x3098
INSTALL = "Debian/Ubuntu: sudo apt-get install libegl1 libgles2 libgl1-mesa-dri"

c_uint, c_int, c_float = ctypes.c_uint, ctypes.c_int, ctypes.c_float
c_void_p, c_char_p = ctypes.c_void_p, ctypes.c_char_p
_SIGNATURES: dict[str, tuple[Any, tuple]] = {
    "glGetString": (c_char_p, (c_uint,)),
    "glGetError": (c_uint, ()),
    "glCreateShader": (c_uint, (c_uint,)),
    "glShaderSource": (None, (c_uint, c_int, ctypes.POINTER(c_char_p), c_void_p)),
    "glCompileShader": (None, (c_uint,)),
    "glGetShaderiv": (None, (c_uint, c_uint, ctypes.POINTER(c_int))),
    "glGetShaderInfoLog": (None, (c_uint, c_int, c_void_p, c_char_p)),
    "glDeleteShader": (None, (c_uint,)),
    "glCreateProgram": (c_uint, ()),
    "glAttachShader": (None, (c_uint, c_uint)),
    "glLinkProgram": (None, (c_uint,)),
    "glGetProgramiv": (None, (c_uint, c_uint, ctypes.POINTER(c_int))),
    "glGetProgramInfoLog": (None, (c_uint, c_int, c_void_p, c_char_p)),
    "glUseProgram": (None, (c_uint,)),
    "glDeleteProgram": (None, (c_uint,)),
    "glGetUniformLocation": (c_int, (c_uint, c_char_p)),
    "glUniform1i": (None, (c_int, c_int)),
    "glUniform1f": (None, (c_int, c_float)),
    "glUniform2f": (None, (c_int, c_float, c_float)),
    "glGenTextures": (None, (c_int, ctypes.POINTER(c_uint))),
    "glDeleteTextures": (None, (c_int, ctypes.POINTER(c_uint))),
    "glBindTexture": (None, (c_uint, c_uint)),
    "glActiveTexture": (None, (c_uint,)),
    "glTexParameteri": (None, (c_uint, c_uint, c_int)),
    "glTexImage2D": (None, (c_uint, c_int, c_int, c_int, c_int, c_int, c_uint, c_uint, c_void_p)),
    "glGenFramebuffers": (None, (c_int, ctypes.POINTER(c_uint))),
    "glDeleteFramebuffers": (None, (c_int, ctypes.POINTER(c_uint))),
    "glBindFramebuffer": (None, (c_uint, c_uint)),
    "glFramebufferTexture2D": (None, (c_uint, c_uint, c_uint, c_uint, c_int)),
    "glCheckFramebufferStatus": (c_uint, (c_uint,)),
    "glDrawBuffers": (None, (c_int, ctypes.POINTER(c_uint))),
    "glReadBuffer": (None, (c_uint,)),
    "glReadPixels": (None, (c_int, c_int, c_int, c_int, c_uint, c_uint, c_void_p)),
    "glGenVertexArrays": (None, (c_int, ctypes.POINTER(c_uint))),
    "glBindVertexArray": (None, (c_uint,)),
    "glViewport": (None, (c_int, c_int, c_int, c_int)),
    "glDisable": (None, (c_uint,)),
    "glClearColor": (None, (c_float, c_float, c_float, c_float)),
    "glClear": (None, (c_uint,)),
    "glDrawArrays": (None, (c_uint, c_int, c_int)),
    "glFinish": (None, ()),
}


class GLUnavailable(RuntimeError):
    """No OpenGL ES 3 context can be made on this machine (the message says why)."""


class GLES:
    """The GLES 3 functions, typed, from libGLESv2."""

    def __init__(self, library: Any) -> None:
        for name, (restype, argtypes) in _SIGNATURES.items():
            function = getattr(library, name)
            function.restype, function.argtypes = restype, list(argtypes)
            setattr(self, name, function)


class _Context:
    def __init__(self) -> None:
        egl_name, gles_name = ctypes.util.find_library("EGL"), ctypes.util.find_library("GLESv2")
        if not egl_name or not gles_name:
            raise GLUnavailable(f"libEGL or libGLESv2 is not installed ({INSTALL})")
        egl = ctypes.CDLL(egl_name)
        for name, restype, argtypes in (
                ("eglGetProcAddress", c_void_p, [c_char_p]), ("eglGetDisplay", c_void_p, [c_void_p]),
                ("eglInitialize", c_uint, [c_void_p, c_void_p, c_void_p]), ("eglBindAPI", c_uint, [c_uint]),
                ("eglChooseConfig", c_uint, [c_void_p, c_void_p, c_void_p, c_int, ctypes.POINTER(c_int)]),
                ("eglCreateContext", c_void_p, [c_void_p, c_void_p, c_void_p, c_void_p]),
                ("eglCreatePbufferSurface", c_void_p, [c_void_p, c_void_p, c_void_p]),
                ("eglMakeCurrent", c_uint, [c_void_p, c_void_p, c_void_p, c_void_p]),
                ("eglGetError", c_int, [])):
            function = getattr(egl, name)
            function.restype, function.argtypes = restype, argtypes
        self.egl = egl
        self.display = self._display()
        config = ctypes.c_void_p()
        count = c_int(0)
        wanted = (c_int * 5)(EGL_RENDERABLE_TYPE, EGL_OPENGL_ES3_BIT, EGL_SURFACE_TYPE, EGL_PBUFFER_BIT, EGL_NONE)
        if not egl.eglBindAPI(EGL_OPENGL_ES_API) or not egl.eglChooseConfig(
                self.display, wanted, ctypes.byref(config), 1, ctypes.byref(count)) or count.value < 1:
            raise GLUnavailable(f"EGL offers no OpenGL ES 3 configuration (error {hex(egl.eglGetError())}; {INSTALL})")
        version = (c_int * 3)(EGL_CONTEXT_MAJOR_VERSION, 3, EGL_NONE)
        self.context = egl.eglCreateContext(self.display, config, None, version)
        if not self.context:
            raise GLUnavailable(f"EGL cannot make an OpenGL ES 3 context (error {hex(egl.eglGetError())})")
        size = (c_int * 5)(EGL_WIDTH, 1, EGL_HEIGHT, 1, EGL_NONE)
        self.surface = egl.eglCreatePbufferSurface(self.display, config, size)   # for drivers without surfaceless
        self.gl = GLES(ctypes.CDLL(gles_name))
        self.lock = threading.Lock()
        with self.current():
            vao = c_uint(0)      # the full-screen triangle needs a vertex array bound, and nothing in it
            self.gl.glGenVertexArrays(1, ctypes.byref(vao))
            self.vao = vao.value
            self.renderer = (self.gl.glGetString(0x1F01) or b"?").decode(errors="replace")

    def _display(self) -> Any:
        egl = self.egl
        found = egl.eglGetProcAddress(b"eglGetPlatformDisplayEXT")
        tried = []
        if found:
            platform_display = ctypes.CFUNCTYPE(c_void_p, c_uint, c_void_p, c_void_p)(found)
            tried.append(platform_display(EGL_PLATFORM_SURFACELESS_MESA, None, None))
        tried.append(egl.eglGetDisplay(None))
        for display in tried:
            if display and egl.eglInitialize(display, None, None):
                return display
        raise GLUnavailable(f"EGL has no display it can initialise (error {hex(egl.eglGetError())}; {INSTALL})")

    @contextlib.contextmanager
    def current(self) -> Iterator[GLES]:
        with self.lock:
            surface = self.surface or None
            if not self.egl.eglMakeCurrent(self.display, surface, surface, self.context):
                raise GLUnavailable(f"EGL cannot make its context current (error {hex(self.egl.eglGetError())})")
            try:
                if getattr(self, "vao", None) is not None:
                    self.gl.glBindVertexArray(self.vao)
                yield self.gl
            finally:
                self.egl.eglMakeCurrent(self.display, None, None, None)


_CONTEXT: _Context | None = None
_FAILED: str | None = None
_MADE = threading.Lock()


def gl_context() -> _Context:
    """The process's context, made on first use; GLUnavailable (its reason) where none can be."""
    global _CONTEXT, _FAILED
    with _MADE:
        if _CONTEXT is None and _FAILED is None:
            try:
                _CONTEXT = _Context()
            except (GLUnavailable, OSError, AttributeError) as exc:
                _FAILED = str(exc)
        if _CONTEXT is None:
            raise GLUnavailable(_FAILED or "no OpenGL ES 3 context")
        return _CONTEXT


def gl_available() -> bool:
    try:
        gl_context()
        return True
    except GLUnavailable:
        return False
