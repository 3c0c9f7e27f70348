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


class ParamRole(str, Enum):
    """What a param means to the rest of the program, declared instead of guessed from its name.

    The editor gives a SEED param its keep/increment/randomize control, the batch layer varies
    it, and the metadata extractor (`nodeforge.core.metadata`) reads the others to say how an
    image was made. A param naming a file has the role MODEL or IMAGE_PATH by itself, from
    its `file` kind (which also says which kind of model).
    """

    SEED = "seed"
    PROMPT = "prompt"
    STEPS = "steps"
    CFG = "cfg"
    SAMPLER = "sampler"
    SCHEDULE = "schedule"
    DENOISE = "denoise"
    WIDTH = "width"
    HEIGHT = "height"
    BATCH_SIZE = "batch_size"
    LORA_STRENGTH = "lora_strength"
    IMAGE_PATH = "image_path"
    MODEL = "model"

    def __str__(self) -> str:
        return self.value


class InputRole(str, Enum):
    """What an input port means where its name alone would have to say it (the prompts a sampler
    follows and the one it steers away from)."""

    POSITIVE = "positive"
    NEGATIVE = "negative"

    def __str__(self) -> str:
        return self.value


def file_role(kind: "FileKind | None") -> ParamRole | None:
    """The role a param naming a file of `kind` has: an image path or a model reference."""
    if kind is None:
        return None
    return ParamRole.IMAGE_PATH if kind is FileKind.IMAGE else ParamRole.MODEL


def ports_compatible(output_type: str, input_type: str) -> bool:
    """Whether a wire may run from an output of one type to an input of another.

    "*" is a wildcard that accepts anything (used by reroute dots in the editor).
    """
    return output_type == input_type or "*" in (output_type, input_type)
