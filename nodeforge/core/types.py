"""The closed sets of port types and param kinds that node declarations use."""
from __future__ import annotations

from enum import Enum


class PortType(str, Enum):
    """Types of values that travel along wires. Names are part of the file format."""

    MODEL = "MODEL"
    CLIP = "CLIP"
    VAE = "VAE"
    CONDITIONING = "CONDITIONING"
    LATENT = "LATENT"
    IMAGE = "IMAGE"
    MASK = "MASK"
    CONTROLNET = "CONTROLNET"
    UPSCALE_MODEL = "UPSCALE_MODEL"

    def __str__(self) -> str:
        return self.value


class ParamKind(str, Enum):
    """Kinds of widget values a node takes as params."""

    INT = "INT"
    FLOAT = "FLOAT"
    STRING = "STRING"
    BOOL = "BOOL"
    CHOICE = "CHOICE"

    def __str__(self) -> str:
        return self.value


class FileKind(str, Enum):
    """What a file-naming STRING/CHOICE param points at; decides where names are looked up."""

    CHECKPOINT = "checkpoint"
    LORA = "lora"
    IMAGE = "image"
    VAE = "vae"
    EMBEDDING = "embedding"
    CONTROLNET = "controlnet"
    UPSCALE_MODEL = "upscale_model"

    def __str__(self) -> str:
        return self.value


def ports_compatible(output_type: str, input_type: str) -> bool:
    """Whether a wire may run from an output of one type to an input of another.

    "*" is a wildcard that accepts anything (used by reroute dots in the editor).
    """
    return output_type == input_type or "*" in (output_type, input_type)
