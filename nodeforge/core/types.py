"""The closed sets of port types and param kinds that node declarations use."""
from __future__ import annotations

from enum import Enum


class _Named(str, Enum):
    """A closed set of names: each member is its string (equal to it, hashed like it, printed as it),
    as the workflow file and the messages spell it."""

    def __str__(self) -> str:
        return self.value


class PortType(_Named):
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
    # ComfyUI's custom sampling splits a sampler node into its parts (nodes/custom_sampling.py).
    SIGMAS = "SIGMAS"
    SAMPLER = "SAMPLER"
    GUIDER = "GUIDER"
    NOISE = "NOISE"
    # IP-Adapter (nodes/ipadapter.py): the adapter's weights and the CLIP vision encoder it reads images with.
    IPADAPTER = "IPADAPTER"
    CLIP_VISION = "CLIP_VISION"
    # CLIPVisionEncode's output (nodes/unclip.py): an image's CLIP embeddings, for unCLIPConditioning.
    CLIP_VISION_OUTPUT = "CLIP_VISION_OUTPUT"
    # A model patch (nodes/families/zimage_control.py): weights that change how a MODEL runs, as ComfyUI's
    # ModelPatchLoader gives them (Z-Image's Fun ControlNet Union).
    MODEL_PATCH = "MODEL_PATCH"
    # A sampler's model, prompts, latent and settings on one wire (nodes/xyz.py: Sampler Settings -> Sampler XYZ;
    # ComfyUI's KSamplerSetting gives it as a DICT).
    SAMPLER_SETTING = "SAMPLER_SETTING"
    # Text-prompted masks (nodes/segment.py): a Grounding DINO detector and a Segment Anything model.
    GROUNDING_DINO = "GROUNDING_DINO_MODEL"
    SAM_MODEL = "SAM_MODEL"
    # Plain values (nodes/values.py: an image's size, a math expression, text): an output of one of these may
    # feed a param of the matching kind (`feeds_param`); the wire's value replaces the param's when the graph runs.
    INT = "INT"
    FLOAT = "FLOAT"
    STRING = "STRING"
    BOOLEAN = "BOOLEAN"


class ParamKind(_Named):
    """Kinds of widget values a node takes as params."""

    INT = "INT"
    FLOAT = "FLOAT"
    STRING = "STRING"
    BOOL = "BOOL"
    CHOICE = "CHOICE"


class FileKind(_Named):
    """What a file-naming STRING/CHOICE param points at; decides where names are looked up."""

    CHECKPOINT = "checkpoint"
    LORA = "lora"
    IMAGE = "image"
    VAE = "vae"
    EMBEDDING = "embedding"
    CONTROLNET = "controlnet"
    UPSCALE_MODEL = "upscale_model"
    DIFFUSION_MODEL = "diffusion_model"   # a transformer or UNet alone (ComfyUI's models/diffusion_models, unet)
    TEXT_ENCODER = "text_encoder"         # a text encoder alone (ComfyUI's models/text_encoders, clip)
    IPADAPTER = "ipadapter"               # an IP-Adapter (ComfyUI's models/ipadapter)
    CLIP_VISION = "clip_vision"           # a CLIP image encoder (ComfyUI's models/clip_vision)
    MODEL_PATCH = "model_patch"           # a model patch such as a Z-Image Fun ControlNet (ComfyUI's models/model_patches)
    DEPTH = "depth"                       # a transformers depth-estimation model folder (models/depth)
    POSE = "pose"                         # a transformers ViTPose model folder (models/pose)
    LATENT_UPSCALE_MODEL = "latent_upscale_model"   # a latent upscaler (ComfyUI's models/latent_upscale_models)
    GROUNDING_DINO = "grounding_dino"     # a transformers Grounding DINO folder (models/grounding-dino)
    SAM = "sam"                           # a transformers Segment Anything folder (models/sams)
    BACKGROUND_REMOVAL = "background_removal"   # a BRIA RMBG-1.4 background-removal model (models/rmbg)
    LINEART = "lineart"                   # a lineart annotator network, sk_model.pth (models/lineart)
    LERES = "leres"                       # a LeReS depth network, res101.pth (models/leres)


class ParamRole(_Named):
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
    PAINTED_MASK = "painted_mask"    # a mask painted in the editor, PNG data (nodeforge/core/painted_mask.py)


class InputRole(_Named):
    """What an input port means where its name alone would have to say it (the prompts a sampler
    follows and the one it steers away from)."""

    POSITIVE = "positive"
    NEGATIVE = "negative"


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


# Which outputs may feed a param of each kind through a wire (a widget converted to an input, as ComfyUI
# calls it): a whole number may feed a FLOAT param too (lossless); text feeds a choice, checked when it runs.
_PARAM_FEEDS = {
    ParamKind.INT: ("INT",),
    ParamKind.FLOAT: ("FLOAT", "INT"),
    ParamKind.STRING: ("STRING",),
    ParamKind.CHOICE: ("STRING",),
    ParamKind.BOOL: ("BOOLEAN",),
}
# The port type a param shows when a wire feeds it (the editor's port, ComfyUI's widget input type).
PARAM_PORTS = {ParamKind.INT: "INT", ParamKind.FLOAT: "FLOAT", ParamKind.STRING: "STRING",
               ParamKind.CHOICE: "STRING", ParamKind.BOOL: "BOOLEAN"}


def feeds_param(output_type: str, kind: ParamKind) -> bool:
    """Whether an output of `output_type` may feed a param of `kind` ("*", a reroute's, may feed any)."""
    return output_type == "*" or output_type in _PARAM_FEEDS.get(kind, ())
