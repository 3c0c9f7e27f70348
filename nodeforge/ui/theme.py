"""Colours, fonts and the stylesheet: one dark theme fit for judging images."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QColor, QIcon
from PySide6.QtWidgets import QApplication

from nodeforge.paths import builtin_dir

# Port colours follow ComfyUI's so artists read a graph at a glance.
PORT_COLORS = {
    "MODEL": "#b39ddb",
    "CLIP": "#ffd54f",
    "VAE": "#ef6f6c",
    "CONDITIONING": "#ffa94d",
    "LATENT": "#f48fb1",
    "IMAGE": "#64b5f6",
    "MASK": "#81c784",
    "CONTROLNET": "#00d78d",
    "UPSCALE_MODEL": "#a1887f",
    "SIGMAS": "#cddc39",
    "SAMPLER": "#ecb4b4",
    "GUIDER": "#66ffff",
    "NOISE": "#b0b0b0",
    "IPADAPTER": "#7e57c2",
    "CLIP_VISION": "#a8dadc",
    "MODEL_PATCH": "#b5838d",
    "CLIP_VISION_OUTPUT": "#74b3b6",
    "SAMPLER_SETTING": "#d4a373",
}
CANVAS_BG = "#1b1c1f"
GRID_MINOR = "#222327"
GRID_MAJOR = "#2a2c31"
NODE_BG = "#2b2d33"
NODE_HEADER = "#3a3d46"
NODE_BORDER = "#121316"
NODE_TEXT = "#e6e6e6"
NODE_SUBTEXT = "#a4a7ae"
SELECTED = "#f0b429"
RUNNING = "#4fc3f7"
CACHED = "#7c8a99"
ERROR = "#ff5252"
BYPASSED = "#8e44ad"
MUTED = "#555861"
PLACEHOLDER = "#7a2020"


def port_color(port_type: str) -> QColor:
    return QColor(PORT_COLORS.get(str(port_type), "#cfd8dc"))


def resources_dir() -> Path:
    return builtin_dir("resources")


def icon(name: str) -> QIcon:
    path = resources_dir() / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.exists() else QIcon()


def stylesheet() -> str:
    path = resources_dir() / "styles" / "dark.qss"
    try:
        # url() in the sheet refers to the resources folder wherever it is installed.
        return path.read_text(encoding="utf-8").replace("RESOURCES/", resources_dir().as_posix() + "/")
    except OSError:
        return ""


def apply(app: QApplication) -> None:
    app.setStyle("Fusion")
    app.setStyleSheet(stylesheet())
    app.setWindowIcon(icon("nodeforge"))
