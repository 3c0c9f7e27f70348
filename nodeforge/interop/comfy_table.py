"""The ComfyUI <-> NodeForge node table: one row per ComfyUI class, as data.

A row names the NodeForge type, the ComfyUI widgets in the order a UI file's `widgets_values`
lists them (each with the NodeForge param it fills and, where the spellings differ, a value
conversion each way), the ComfyUI input names with the NodeForge input each feeds, and the
NodeForge output behind each ComfyUI output slot. The importer and the exporter both read it:
mapping a ComfyUI class onto a node the pack already declares is one row (when several classes
share one NodeForge type, their `export_only_if` / `export_prefer_if` say which one a node
exports as). A node new to the pack needs its declaration in `nodes/` first.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from nodeforge.interop import samplers

Convert = Callable[[Any, "Notes"], Any]
NodeTest = Callable[[str, Any, Any], bool]   # (node id, NodeRef, Workflow) -> yes/no


class Notes:
    """Where a conversion reports what it changed (the importer turns these into warnings)."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def warn(self, message: str) -> None:
        self.messages.append(message)


def _same(value: Any, notes: Notes) -> Any:
    return value


@dataclass(frozen=True)
class Widget:
    """One ComfyUI widget and the NodeForge param it fills (None: nothing in NodeForge)."""

    comfy: str
    param: str | None = ""
    model: str | None = None          # a model name resolved against the model folders: its FileKind value
    seed: bool = False                # UI files list control_after_generate after it
    load: Convert = _same             # ComfyUI value -> NodeForge value
    save: Convert = _same             # NodeForge value -> ComfyUI value
    export_default: Any = None        # written on export when NodeForge has no such param
    ui_value: Any = None              # a UI file's value for a widget the API prompt leaves out (a button)
    aliases: tuple[str, ...] = ()     # other names an API prompt may give it (another pack's class of that name)
    absent_ok: bool = False           # a file may leave it out (a DynamicCombo option's widget): no warning
    ui_when: tuple[str, Any] | None = None   # (widget, value): a UI file lists it only while that widget has that value
    # A ComfyUI input socket NodeForge keeps as a param (constants linked to it fold in): a UI file gets no widget
    # value for it but, away from its default, a constant node of this class linked to it.
    socket: str | None = None

    @property
    def target(self) -> str | None:
        return self.comfy if self.param == "" else self.param

    @property
    def wireable(self) -> bool:
        """Whether a link into this widget can stay a wire into its NodeForge param: the param takes the value
        as ComfyUI gives it (no conversion) and names no model file."""
        return self.target is not None and self.model is None and self.load is _same


@dataclass(frozen=True)
class ClassMap:
    comfy: str
    nodeforge: str
    display: str                                   # ComfyUI's default title
    widgets: tuple[Widget, ...] = ()
    inputs: tuple[tuple[str, str], ...] = ()       # (ComfyUI input, NodeForge input), slot order
    outputs: tuple[str, ...] = ()                  # NodeForge output per ComfyUI output slot
    fixed: dict[str, Any] = field(default_factory=dict)   # NodeForge params the class implies
    optional_inputs: tuple[str, ...] = ()          # ComfyUI inputs NodeForge does without
    remember: bool = True                          # record the class when several share a NodeForge type
    # Export, when several ComfyUI classes share a NodeForge type: the row can stand for a node only
    # when `export_only_if(id, node, workflow)` holds (None: always); with no class recorded on the
    # node, the first row whose `export_prefer_if` holds is chosen, else the first row that can.
    export_only_if: NodeTest | None = None
    export_prefer_if: NodeTest | None = None
    note: str | None = None                        # a warning every import of the class gives
    # Output slots that give an input back unchanged (efficiency-nodes' samplers pass their model and
    # prompts on): (slot, ComfyUI input); the importer wires their consumers to that input's source.
    passthrough: tuple[tuple[int, str], ...] = ()
    # (slot, ComfyUI VAE input): the slot is the output latent decoded; the importer adds a VAEDecode.
    decoded: tuple[int, str] | None = None
    # After the widgets: `derive(comfy values, NodeForge params, notes)` sets params one widget implies
    # together (IPAdapter_plus's preset: the adapter and its encoder) and warns about values NodeForge ignores.
    derive: Callable[[dict[str, Any], dict[str, Any], "Notes"], None] | None = None
    # (ComfyUI input, NodeForge type, its input, its output): the input reaches the node through a NodeForge node
    # the importer adds as <id>.<input> (a mask preview is a preview of the mask as an image).
    through: tuple[str, str, str, str] | None = None
    # ComfyUI's type of an input NodeForge takes as any value ("*"), written by the UI export: "FLOAT,INT,BOOLEAN"
    any_type: str | None = None

    def nf_input(self, comfy_name: str) -> str | None:
        return next((nf for c, nf in self.inputs if c == comfy_name), None)

    def comfy_input(self, nf_name: str) -> str | None:
        return next((c for c, nf in self.inputs if nf == nf_name), None)

    def widget(self, comfy_name: str) -> Widget | None:
        return next((w for w in self.widgets if w.comfy == comfy_name), None)

    def widget_for(self, nf_param: str) -> Widget | None:
        """The widget that fills NodeForge param `nf_param` (where a wire feeding the param goes on export)."""
        return next((w for w in self.widgets if w.target == nf_param), None)


# -- value conversions --------------------------------------------------------------------------------
def _sampler_in(value: Any, notes: Notes) -> str:
    mapped = samplers.sampler_from_comfy(value)
    if mapped.note:
        notes.warn(mapped.note)
    return mapped.name


def _schedule_in(value: Any, notes: Notes) -> str:
    mapped = samplers.schedule_from_comfy(value)
    if mapped.note:
        notes.warn(mapped.note)
    return mapped.name


def _sampler_out(value: Any, notes: Notes) -> str:
    mapped = samplers.sampler_to_comfy(str(value))
    if mapped.note:
        notes.warn(mapped.note)
    return mapped.name


def _schedule_out(value: Any, notes: Notes) -> str:
    mapped = samplers.schedule_to_comfy(str(value))
    if mapped.note:
        notes.warn(mapped.note)
    return mapped.name


def _enable_in(value: Any, notes: Notes) -> Any:
    if isinstance(value, str) and value.lower() in ("enable", "disable"):
        return value.lower() == "enable"
    return value


def _enable_out(value: Any, notes: Notes) -> str:
    return "enable" if value else "disable"


_LATENT_METHODS = ("nearest-exact", "bilinear", "area", "bicubic")
_IMAGE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")


def _method(allowed: tuple[str, ...]) -> Convert:
    def load(value: Any, notes: Notes) -> Any:
        if isinstance(value, str) and value not in allowed:
            notes.warn(f"upscale method {value[:40]!r} is not in NodeForge; using 'bilinear'")
            return "bilinear"
        return value
    return load


_ANNOTATION = re.compile(r"\s*\[(input|output|temp)\]\s*$")


def _image_in(value: Any, notes: Notes) -> Any:
    # ComfyUI annotates uploaded images with the folder they came from: "cat.png [input]".
    return _ANNOTATION.sub("", value) if isinstance(value, str) else value


_TOKEN = re.compile(r"%[^%]*%")


def _prefix_in(value: Any, notes: Notes) -> Any:
    # ComfyUI expands %date:...% and %Node.widget% in prefixes; NodeForge takes a plain prefix.
    if isinstance(value, str) and _TOKEN.search(value):
        plain = _TOKEN.sub("", value).replace("//", "/").strip("/_- ") or "ComfyUI"
        notes.warn(f"file name prefix {value[:60]!r} uses ComfyUI's %...% tokens, which NodeForge does not "
                   f"expand; using {plain!r}")
        return plain
    return value


def _threshold_255(value: Any, notes: Notes) -> Any:
    # comfyui_controlnet_aux's Canny takes OpenCV's 0..255 thresholds; NodeForge's, fractions of 1.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return round(min(0.99, max(0.01, value / 255)), 4)
    return value


def _true_in(value: Any, notes: Notes) -> Any:
    return value.lower() == "true" if isinstance(value, str) and value.lower() in ("true", "false") else value


def _true_out(value: Any, notes: Notes) -> str:
    return "true" if value else "false"


def _was_method(value: Any, notes: Notes) -> Any:
    return "nearest-exact" if value == "nearest" else _method(_LATENT_METHODS)(value, notes)


def _rounded_size(params: dict[str, Any], multiple: Any, notes: Notes) -> None:
    """width and height rounded down to a multiple, as KJNodes' and essentials' resize nodes do; a side of 0
    (their "the image's own width/height") said, since NodeForge's Scale Image keeps the aspect ratio there."""
    sides = [side for side in ("width", "height") if isinstance(params.get(side), int)]
    if isinstance(multiple, int) and not isinstance(multiple, bool) and multiple > 1:
        for side in sides:
            params[side] -= params[side] % multiple
    zero = [side for side in sides if params[side] == 0]
    if len(zero) == 1:
        notes.warn(f"{zero[0]} 0 keeps the image's own {zero[0]} in this node; NodeForge's Scale Image keeps the "
                   f"aspect ratio instead: set the {zero[0]} you want")


_STRETCHED = "is not in NodeForge's Scale Image; the image is stretched to width x height"


def _kj_resize(values: dict[str, Any], params: dict[str, Any], notes: Notes) -> None:
    """KJNodes' Resize Image v2: 'stretch' is Scale Image with crop disabled, 'crop' its center crop."""
    mode = values.get("keep_proportion", "stretch")
    params["crop"] = "center" if mode == "crop" else "disabled"
    if mode not in ("stretch", "crop"):
        notes.warn(f"keep_proportion {str(mode)[:40]!r} (fit inside, pad or total pixels) {_STRETCHED}")
    elif mode == "crop" and values.get("crop_position", "center") != "center":
        notes.warn(f"crop_position {str(values['crop_position'])[:40]!r} is not in NodeForge's Scale Image; "
                   "it crops at the center")
    _rounded_size(params, values.get("divisible_by"), notes)


def _kj_resize_v1(values: dict[str, Any], params: dict[str, Any], notes: Notes) -> None:
    """KJNodes' first Resize Image: keep_proportion off is Scale Image (crop 0 is KJNodes' old center)."""
    crop = values.get("crop")
    if isinstance(values.get("width_input"), str):    # saved without the width/height_input widgets
        crop = values["width_input"]
    for side in ("width", "height"):
        given = values.get(f"{side}_input")
        if isinstance(given, int) and not isinstance(given, bool) and given > 0:
            params[side] = given                       # a linked size input wins, as in KJNodes
    params["crop"] = "center" if crop in (0, "center") else "disabled"
    if values.get("keep_proportion") is True:
        notes.warn(f"keep_proportion (fit inside width x height) {_STRETCHED}")
    _rounded_size(params, values.get("divisible_by"), notes)


def _essentials_method(values: dict[str, Any], params: dict[str, Any], notes: Notes) -> None:
    """essentials' Image Resize: 'stretch' is Scale Image with crop disabled, 'fill / crop' its center crop."""
    method = values.get("method", "stretch")
    if "keep_proportion" in values or isinstance(method, bool):   # older essentials: a keep_proportion switch
        method = "keep proportion" if values.get("keep_proportion", method) is True else "stretch"
    params["crop"] = "center" if str(method).startswith("fill") else "disabled"
    if method not in ("stretch", "fill / crop"):
        notes.warn(f"method {str(method)[:40]!r} (fit inside or pad) {_STRETCHED}")
    if values.get("condition", "always") != "always":
        notes.warn(f"condition {str(values['condition'])[:40]!r} is not in NodeForge's Scale Image; the image is "
                   "always resized")
    _rounded_size(params, values.get("multiple_of"), notes)


def _essentials_interpolation(value: Any, notes: Notes) -> Any:
    # torch's legacy nearest: NodeForge has the exact one
    return "nearest-exact" if value == "nearest" else _method(_IMAGE_METHODS)(value, notes)


_HEX = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")


def _hex_color(value: Any, notes: Notes) -> Any:
    # mtb's colour widget holds "#RRGGBB"; EmptyImage takes 0xRRGGBB as a number
    match = _HEX.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        notes.warn(f"color {str(value)[:40]!r} is not a #RRGGBB colour; black is used")
        return 0
    digits = match.group(1)
    return int(digits if len(digits) == 6 else "".join(c * 2 for c in digits), 16)


# -- which class a node exports as -----------------------------------------------------------------------
_STAGE_DEFAULTS = {"start_at_step": 0, "end_at_step": 10000, "add_noise": True, "return_with_leftover_noise": False}


def _staged(nid: str, node: Any, workflow: Any) -> bool:
    """A denoise that is one stage of several (KSamplerAdvanced's settings are not the defaults)."""
    return any(node.params.get(k, v) != v for k, v in _STAGE_DEFAULTS.items())


# comfyui_controlnet_aux's depth preprocessors: the transformers folder (models/depth/<repository name>) that
# holds the model each runs; its .pth checkpoint names for Depth Anything v1 and v2.
MIDAS_DEPTH, ZOE_DEPTH = "dpt-hybrid-midas", "zoedepth-nyu-kitti"
_DEPTH_ANYTHING = {"depth_anything_vitl14.pth": "depth-anything-large-hf",
                   "depth_anything_vitb14.pth": "depth-anything-base-hf",
                   "depth_anything_vits14.pth": "depth-anything-small-hf"}
_DEPTH_ANYTHING_V2 = {"depth_anything_v2_vitl.pth": "Depth-Anything-V2-Large-hf",
                      "depth_anything_v2_vitb.pth": "Depth-Anything-V2-Base-hf",
                      "depth_anything_v2_vits.pth": "Depth-Anything-V2-Small-hf"}
NN_RESIZERS = {"SDXL": "sdxl_resizer.pt", "SD 1.x": "sd15_resizer.pt"}   # NNLatentUpscale's version -> its file
_DEPTH_NOTE = ("the depth map is estimated by NodeForge's Image to Depth Map with the transformers model in "
               "models/depth/{folder} (the folder of the Hugging Face repository {repo}), at that model's own input "
               "size: close to the preprocessor's map, not pixel for pixel")


def _table_in(table: dict[str, str]) -> Convert:
    return lambda value, notes: table.get(value, value)


def _table_out(table: dict[str, str]) -> Convert:
    back = {folder: name for name, folder in table.items()}
    return lambda value, notes: back.get(value, value)


def _depth_model_is(*names: str) -> NodeTest:
    return lambda nid, node, workflow: node.params.get("model") in names


# Zoe Depth Anything's environment -> the metric Depth Anything folder in models/depth; WAS's MiDaS types -> the
# DPT folder (Intel/dpt-large, Intel/dpt-hybrid-midas).
_DEPTH_METRIC = {"indoor": "Depth-Anything-V2-Metric-Indoor-Large-hf",
                 "outdoor": "Depth-Anything-V2-Metric-Outdoor-Large-hf"}
_WAS_MIDAS = {"DPT_Large": "dpt-large", "DPT_Hybrid": MIDAS_DEPTH}


def _was_midas_own_size(nid: str, node: Any, workflow: Any) -> bool:
    return node.params.get("model") in _WAS_MIDAS.values() and node.params.get("resolution") == 0


def _was_midas(values: dict[str, Any], params: dict[str, Any], notes: Notes) -> None:
    if values.get("invert_depth") == "true":
        notes.warn("invert_depth is on: NodeForge's depth map keeps near bright (add Invert Image after it for far "
                   "bright)")


def _leres_boost(values: dict[str, Any], params: dict[str, Any], notes: Notes) -> None:
    if values.get("boost") == "enable":
        notes.warn("boost is on: LeReS++'s pix2pix merging of several resolutions is not in NodeForge; the depth is "
                   "estimated once, at resolution")


def _lineart_in(value: Any, notes: Notes) -> Any:
    return {"disable": "sk_model.pth", "enable": "sk_model2.pth"}.get(value, value)


def _lineart_out(value: Any, notes: Notes) -> str:
    # the pack picks its file by the switch alone: sk_model2 (under any suffix) is the coarse one
    return "enable" if "sk_model2" in str(value) else "disable"


# comfyui_controlnet_aux's OpenPose preprocessor: NodeForge's PoseMap with a ViTPose model (nodes/pose.py).
VITPOSE = "vitpose-base-simple"
_POSE_NOTE = ("the pose is estimated by NodeForge's Image to Pose Map with the transformers ViTPose model in "
              f"models/pose/{VITPOSE} (the folder of the Hugging Face repository usyd-community/{VITPOSE}), not "
              "OpenPose's own network, and drawn in OpenPose's body format: the same kind of map, not pixel for "
              "pixel; one person per image (the whole image is that person's box)")


def _pose_widgets(values: dict[str, Any], params: dict[str, Any], notes: Notes) -> None:
    """Hands and face are not drawn (said when the file asks for them); an old version's 'v1'/'v1.1' in the
    resolution's place keeps the default resolution."""
    if not isinstance(params.get("resolution", 512), (int, float)):
        params.pop("resolution")
    parts = [part for part in ("hand", "face") if values.get(f"detect_{part}") == "enable"]
    if parts:
        notes.warn(f"detect_{' and detect_'.join(parts)} are on: NodeForge draws the body only (no "
                   f"{' and no '.join(parts)} keypoints)")
    if values.get("detect_body") == "disable":
        notes.warn("detect_body is off, but NodeForge's pose map is the body: it is drawn")


def _pag_pack_widgets(values: dict[str, Any], params: dict[str, Any], notes: Notes) -> None:
    """sd-perturbed-attention's choices NodeForge's guidance does not make, each said once."""
    if (values.get("unet_block", "middle"), values.get("unet_block_id", 0)) != ("middle", 0) or \
            values.get("unet_block_list"):
        notes.warn(f"NodeForge perturbs the middle block's self-attention; unet_block {values.get('unet_block')!r} "
                   f"{values.get('unet_block_id')} / unet_block_list {values.get('unet_block_list', '')!r} are not used")
    window = [values.get(k, -1) for k in ("sigma_start", "sigma_end")]
    if any(isinstance(v, (int, float)) and v >= 0 for v in window):
        notes.warn(f"the sigma window {window[0]} to {window[1]} is not applied: the guidance acts at every step")
    if isinstance(values.get("rescale"), (int, float)) and values["rescale"] > 0:
        notes.warn(f"rescale {values['rescale']} is not applied (use Rescale CFG before it)")


def _cads_seed(value: Any, notes: Notes) -> Any:
    if isinstance(value, int) and value < 0:
        notes.warn(f"seed {value} draws CADS's noise from ComfyUI's global random state; NodeForge seeds it with 0")
        return 0
    return value


def _cads_steps(values: dict[str, Any], params: dict[str, Any], notes: Notes) -> None:
    start, total = values.get("start_step", 0), values.get("total_steps", 0)
    if isinstance(start, int) and isinstance(total, int) and start < total:
        notes.warn(f"start_step {start} / total_steps {total} ask for a step-count schedule, which NodeForge does "
                   "not make: the noise follows the timestep (as with start_step >= total_steps)")


def _dual_cfg_style(values: dict[str, Any], params: dict[str, Any], notes: Notes) -> None:
    if values.get("style") not in (None, "regular"):
        notes.warn(f"style {values['style']!r} is not supported: it guides as regular (negative + cfg_cond2_negative "
                   "x (cond2 - negative) + cfg_conds x (cond1 - cond2)), so the result differs from ComfyUI's")


def _zsnr_note(values: dict[str, Any], params: dict[str, Any], notes: Notes) -> None:
    if params.get("zsnr") is True:
        notes.warn("zsnr follows diffusers' zero-terminal-SNR rescale (its samplers' own last noise level); "
                   "ComfyUI's puts the top sigma a little higher, so the first step differs slightly")


def _enabled_in(value: Any, notes: Notes) -> Any:
    return value == "enabled" if value in ("enabled", "disabled") else value


def _enabled_out(value: Any, notes: Notes) -> str:
    return "enabled" if value else "disabled"


def _on_in(value: Any, notes: Notes) -> Any:
    return value == "enable" if value in ("enable", "disable") else value


def _on_out(value: Any, notes: Notes) -> str:
    return "enable" if value else "disable"


def _one_factor(values: dict[str, Any], params: dict[str, Any], notes: Notes) -> None:
    """QualityOfLifeSuit's Simple factor nodes: their one factor is both sides'."""
    params["height_factor"] = params.get("width_factor")


def _same_factors(nid: str, node: Any, workflow: Any) -> bool:
    return node.params.get("width_factor", 1.25) == node.params.get("height_factor", 1.25)


def _concat_count(value: Any, notes: Notes) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value > 8:
        notes.warn(f"its inputcount {value} is more than NodeForge's Image Concatenate takes: the first 8 images "
                   "are joined")
        return 8
    return value


def _essentials_style(nid: str, node: Any, workflow: Any) -> bool:
    return node.params.get("style") == "essentials"


def _kj_style(nid: str, node: Any, workflow: Any) -> bool:
    return node.params.get("style") == "KJNodes"


def _never(nid: str, node: Any, workflow: Any) -> bool:
    return False


def _whole(nid: str, node: Any, workflow: Any) -> bool:
    return not _staged(nid, node, workflow)


def _model_only(nid: str, node: Any, workflow: Any) -> bool:
    """A LoRA whose CLIP output nothing uses and whose CLIP strength is 0."""
    clip_used = any(src == nid and out == "clip" for other in workflow.nodes.values()
                    for src, out in other.inputs.values())
    return not clip_used and float(node.params.get("strength_clip", 1.0) or 0.0) == 0.0


def _gguf(*params: str) -> NodeTest:
    """A loader whose file (any of `params`) is a .gguf: ComfyUI loads those with ComfyUI-GGUF's loaders only."""
    def test(nid: str, node: Any, workflow: Any) -> bool:
        return any(str(node.params.get(name, "")).lower().endswith(".gguf") for name in params)
    return test


def _not(test: NodeTest) -> NodeTest:
    return lambda nid, node, workflow: not test(nid, node, workflow)


_GGUF_MODEL, _GGUF_ENCODER = _gguf("model"), _gguf("text_encoder")
_GGUF_ENCODERS = _gguf("text_encoder_1", "text_encoder_2")


# -- IPAdapter_plus (cubiq/ComfyUI_IPAdapter_plus) -------------------------------------------------------
VIT_H, VIT_G = "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors", "CLIP-ViT-bigG-14-laion2B-39B-b160k.safetensors"
# The unified loader's presets: (SD 1.x file, SDXL file or None, encoder), the files IPAdapter_plus looks for.
IPADAPTER_PRESETS = {
    "LIGHT - SD1.5 only (low strength)": ("ip-adapter_sd15_light_v11.bin", None, VIT_H),
    "STANDARD (medium strength)": ("ip-adapter_sd15.safetensors", "ip-adapter_sdxl_vit-h.safetensors", VIT_H),
    "VIT-G (medium strength)": ("ip-adapter_sd15_vit-G.safetensors", "ip-adapter_sdxl.safetensors", VIT_G),
    "PLUS (high strength)": ("ip-adapter-plus_sd15.safetensors", "ip-adapter-plus_sdxl_vit-h.safetensors", VIT_H),
    "PLUS FACE (portraits)": ("ip-adapter-plus-face_sd15.safetensors", "ip-adapter-plus-face_sdxl_vit-h.safetensors",
                              VIT_H),
    "FULL FACE - SD1.5 only (portraits stronger)": ("ip-adapter-full-face_sd15.safetensors", None, VIT_H),
}
_STANDARD_PRESET = "STANDARD (medium strength)"


def _preset_in(value: Any, notes: Notes) -> str:
    preset = value if value in IPADAPTER_PRESETS else _STANDARD_PRESET
    sd15, sdxl, encoder = IPADAPTER_PRESETS[preset]
    if preset != value:
        notes.warn(f"IPAdapter_plus preset {str(value)[:60]!r} is not one NodeForge maps (FaceID, Kolors, Flux and "
                   f"SD3.5 presets are not supported); using {_STANDARD_PRESET!r}'s files")
    xl = f" (for an SDXL model pick {sdxl} instead)" if sdxl else ""
    notes.warn(f"preset {preset!r} loads {sd15} from the ipadapter folder with {encoder} from clip_vision{xl}")
    return sd15


def _preset_out(value: Any, notes: Notes) -> str:
    for preset, files in IPADAPTER_PRESETS.items():
        if value in files[:2]:
            return preset
    notes.warn(f"IP-Adapter {str(value)[:60]!r} is not a file of an IPAdapter_plus preset; exported as "
               f"{_STANDARD_PRESET!r}")
    return _STANDARD_PRESET


def _preset_encoder(values: dict[str, Any], params: dict[str, Any], notes: Notes) -> None:
    params["clip_vision"] = IPADAPTER_PRESETS.get(values.get("preset"), IPADAPTER_PRESETS[_STANDARD_PRESET])[2]


def _ipadapter_options(defaults: dict[str, str]) -> Callable[[dict[str, Any], dict[str, Any], Notes], None]:
    """Warn for each IPAdapter_plus option whose value is not what NodeForge does (diffusers' IP-Adapter:
    one weight on every layer, several images' tokens joined, values scaled)."""
    def derive(values: dict[str, Any], params: dict[str, Any], notes: Notes) -> None:
        for name, same in defaults.items():
            if name in values and values[name] != same:
                notes.warn(f"{name} {str(values[name])[:40]!r} is not in NodeForge: it runs as {same!r} "
                           "(diffusers' IP-Adapter)")
    return derive


def _simple_options(values: dict[str, Any], params: dict[str, Any], notes: Notes) -> None:
    """IPAdapter_plus's IPAdapter; or, under the same class name, the older IPAdapter-ComfyUI pack's node
    (widgets weight, model_name, dtype; a CLIP_VISION link), which has no IPADAPTER input."""
    if isinstance(values.get("start_at"), str) or "model_name" in values:
        name = values.get("model_name", values.get("start_at"))
        params.pop("start_percent", None)
        params.pop("end_percent", None)
        notes.warn(f"this is the IPAdapter-ComfyUI pack's IPAdapter (adapter file {str(name)[:60]!r} as a widget), "
                   "not IPAdapter_plus's: add Load IP-Adapter with that file, link it to ipadapter and link the "
                   "CLIP vision loader to clip_vision")
        return
    _ipadapter_options({"weight_type": "standard"})(values, params, notes)


def _no_encoder_link(nid: str, node: Any, workflow: Any) -> bool:
    return "clip_vision" not in node.inputs


def _encoder_link(nid: str, node: Any, workflow: Any) -> bool:
    return "clip_vision" in node.inputs


def _v1_options(values: dict[str, Any], params: dict[str, Any], notes: Notes) -> None:
    """IPAdapter_plus v1's IPAdapterApply: noise (a noisy negative image), weight types and unfold_batch."""
    if values.get("noise") not in (None, 0, 0.0):
        notes.warn(f"noise {values['noise']!r} is not in NodeForge: the negative is the adapter's zero-image tokens "
                   "(noise 0)")
    if values.get("weight_type") not in (None, "original", "linear"):
        notes.warn(f"weight_type {str(values['weight_type'])[:40]!r} is not in NodeForge: it runs as 'original' "
                   "(diffusers' IP-Adapter)")
    if values.get("unfold_batch"):
        notes.warn("unfold_batch is not in NodeForge: the images' tokens are joined for every item of the batch")


_IPADAPTER_NOTE = ("runs as diffusers' IP-Adapter: the image prepared by CLIP's processor (resize, centre crop; no "
                   "sharpening), a Plus adapter's negative from an all-zero encoder input (IPAdapter_plus encodes "
                   "a black image), so results are close to ComfyUI's, not pixel for pixel")
_GGUF_ENCODER_NOTE = ("NodeForge reads text encoders from .safetensors files only: a .gguf one is refused when the "
                      "graph runs; map it to the .safetensors encoder (--model-map 'text_encoder:*=NAME')")
_IPADAPTER_INPUTS = (("model", "unet"), ("ipadapter", "ipadapter"), ("image", "image"))


# -- the table ----------------------------------------------------------------------------------------
_SAMPLER_WIDGETS = (Widget("steps"), Widget("cfg"),
                    Widget("sampler_name", "sampler", load=_sampler_in, save=_sampler_out),
                    Widget("scheduler", "schedule", load=_schedule_in, save=_schedule_out))
_SAMPLER_INPUTS = (("model", "unet"), ("positive", "positive"), ("negative", "negative"),
                   ("latent_image", "latent"))

# efficiency-nodes' samplers give back MODEL, CONDITIONING+, CONDITIONING- (slots 0-2) and VAE (4) as they
# took them, the latent (3) and the latent decoded (5).
_EFFICIENT_PASSED = ((0, "model"), (1, "positive"), (2, "negative"), (4, "optional_vae"))
_EFFICIENT_NOTE = ("its IMAGE output, where used, becomes a VAE Decode NodeForge adds beside it (its id + '.image'); "
                   "preview_method and vae_decode are not used (exported back as ComfyUI's KSampler or "
                   "KSamplerAdvanced and a VAEDecode)")

ROWS: tuple[ClassMap, ...] = (
    ClassMap("CheckpointLoaderSimple", "CheckpointLoader", "Load Checkpoint",
             (Widget("ckpt_name", "checkpoint", model="checkpoint"),), (), ("unet", "clip", "vae"), remember=False),
    ClassMap("CLIPTextEncode", "TextEncoder", "CLIP Text Encode (Prompt)",
             (Widget("text"),), (("clip", "clip"),), ("conditioning",), remember=False),
    ClassMap("EmptyLatentImage", "EmptyLatent", "Empty Latent Image",
             (Widget("width"), Widget("height"), Widget("batch_size")), (), ("latent",)),
    # SD3's own empty latent is EmptyLatent: UNetDenoise gives it the model's 16 channels.
    ClassMap("EmptySD3LatentImage", "EmptyLatent", "EmptySD3LatentImage",
             (Widget("width"), Widget("height"), Widget("batch_size")), (), ("latent",)),
    ClassMap("KSampler", "UNetDenoise", "KSampler",
             (Widget("seed", seed=True),) + _SAMPLER_WIDGETS + (Widget("denoise"),),
             _SAMPLER_INPUTS, ("latent",), export_only_if=_whole),
    ClassMap("KSamplerAdvanced", "UNetDenoise", "KSampler (Advanced)",
             (Widget("add_noise", load=_enable_in, save=_enable_out), Widget("noise_seed", "seed", seed=True))
             + _SAMPLER_WIDGETS
             + (Widget("start_at_step"), Widget("end_at_step"),
                Widget("return_with_leftover_noise", load=_enable_in, save=_enable_out)),
             _SAMPLER_INPUTS, ("latent",), export_prefer_if=_staged),
    # The plain forms are what a NodeForge VAE node exports as; the tiled ones are remembered.
    ClassMap("VAEDecode", "VAEDecode", "VAE Decode", (), (("samples", "latent"), ("vae", "vae")), ("image",),
             remember=False),
    ClassMap("VAEEncode", "VAEEncode", "VAE Encode", (), (("pixels", "image"), ("vae", "vae")), ("latent",),
             remember=False),
    ClassMap("VAEEncodeForInpaint", "VAEEncodeForInpaint", "VAE Encode (for Inpainting)",
             (Widget("grow_mask_by"),), (("pixels", "image"), ("vae", "vae"), ("mask", "mask")), ("latent",)),
    ClassMap("SetLatentNoiseMask", "SetLatentMask", "Set Latent Noise Mask", (),
             (("samples", "latent"), ("mask", "mask")), ("latent",)),
    ClassMap("LoadImage", "LoadImage", "Load Image",
             (Widget("image", "path", model="image", load=_image_in), Widget("upload", None, ui_value="image")), (),
             ("image", "mask")),
    ClassMap("SaveImage", "SaveImage", "Save Image",
             (Widget("filename_prefix", "prefix", load=_prefix_in),), (("images", "image"),), (), remember=False),
    ClassMap("PreviewImage", "Preview", "Preview Image", (), (("images", "image"),), (), remember=False),
    ClassMap("LoraLoader", "LoRALoader", "Load LoRA",
             (Widget("lora_name", "lora", model="lora"), Widget("strength_model", "strength_unet"),
              Widget("strength_clip")), (("model", "unet"), ("clip", "clip")), ("unet", "clip")),
    # NodeForge's LoRA node always takes a CLIP: the importer wires the model's own (strength 0).
    ClassMap("LoraLoaderModelOnly", "LoRALoader", "LoraLoaderModelOnly",
             (Widget("lora_name", "lora", model="lora"), Widget("strength_model", "strength_unet")),
             (("model", "unet"),), ("unet",), fixed={"strength_clip": 0.0},
             export_only_if=_model_only, export_prefer_if=_model_only),
    ClassMap("CLIPSetLastLayer", "CLIPSetLastLayer", "CLIP Set Last Layer",
             (Widget("stop_at_clip_layer", "stop_at_layer"),), (("clip", "clip"),), ("clip",)),
    ClassMap("LatentUpscale", "LatentUpscale", "Upscale Latent",
             (Widget("upscale_method", load=_method(_LATENT_METHODS)), Widget("width"), Widget("height"),
              Widget("crop")), (("samples", "latent"),), ("latent",)),
    ClassMap("LatentUpscaleBy", "LatentUpscaleBy", "Upscale Latent By",
             (Widget("upscale_method", load=_method(_LATENT_METHODS)), Widget("scale_by")),
             (("samples", "latent"),), ("latent",), remember=False),
    # Ttl's ComfyUi_NNLatentUpscale (nodes/latent_resizer.py): its version is the weight file it loads.
    ClassMap("NNLatentUpscale", "LatentUpscaleNN", "NNLatentUpscale",
             (Widget("version", "model", model="latent_upscale_model", load=_table_in(NN_RESIZERS),
                     save=_table_out(NN_RESIZERS)), Widget("upscale", "scale_by")),
             (("latent", "latent"),), ("latent",),
             note="the pack ships its networks inside itself: NodeForge reads them from models/latent_upscale_models "
                  "(copy sdxl_resizer.pt / sd15_resizer.pt from ComfyUi_NNLatentUpscale's folder there)"),
    ClassMap("ImageScale", "ImageScale", "Upscale Image",
             (Widget("upscale_method", load=_method(_IMAGE_METHODS)), Widget("width"), Widget("height"),
              Widget("crop")), (("image", "image"),), ("image",)),
    ClassMap("ImageScaleBy", "ImageScaleBy", "Upscale Image By",
             (Widget("upscale_method", load=_method(_IMAGE_METHODS)), Widget("scale_by")),
             (("image", "image"),), ("image",)),
    ClassMap("ImagePadForOutpaint", "ImagePadForOutpaint", "Pad Image for Outpainting",
             (Widget("left"), Widget("top"), Widget("right"), Widget("bottom"), Widget("feathering")),
             (("image", "image"),), ("image", "mask")),
    ClassMap("VAELoader", "VAELoader", "Load VAE", (Widget("vae_name", "vae", model="vae"),), (), ("vae",),
             remember=False),
    ClassMap("ControlNetLoader", "ControlNetLoader", "Load ControlNet Model",
             (Widget("control_net_name", "controlnet", model="controlnet"),), (), ("controlnet",), remember=False),
    ClassMap("ControlNetApplyAdvanced", "ControlNetApply", "Apply ControlNet",
             (Widget("strength"), Widget("start_percent"), Widget("end_percent")),
             (("positive", "positive"), ("negative", "negative"), ("control_net", "controlnet"), ("image", "image"),
              ("vae", "vae")),   # optional: an SD3 ControlNet encodes its image with it
             ("positive", "negative"), remember=False),
    # The older one-prompt form also steers the negative pass (ComfyUI applies it to both): the
    # importer wires the negative through it, which is the advanced form at full range.
    ClassMap("ControlNetApply", "ControlNetApply", "Apply ControlNet (OLD)", (Widget("strength"),),
             (("conditioning", "positive"), ("control_net", "controlnet"), ("image", "image")), ("positive",),
             fixed={"start_percent": 0.0, "end_percent": 1.0}, optional_inputs=("vae",), remember=False),
    ClassMap("UpscaleModelLoader", "UpscaleModelLoader", "Load Upscale Model",
             (Widget("model_name", "upscale_model", model="upscale_model"),), (), ("upscale_model",)),
    ClassMap("ImageUpscaleWithModel", "ImageUpscaleWithModel", "Upscale Image (using Model)", (),
             (("upscale_model", "upscale_model"), ("image", "image")), ("image",)),
    ClassMap("Canny", "ImageToEdges", "Canny", (Widget("low_threshold"), Widget("high_threshold")),
             (("image", "image"),), ("image",), remember=False),
    ClassMap("ConditioningSetArea", "ConditioningSetArea", "Conditioning (Set Area)",
             (Widget("width"), Widget("height"), Widget("x"), Widget("y"), Widget("strength")),
             (("conditioning", "conditioning"),), ("conditioning",)),
    ClassMap("ConditioningCombine", "ConditioningCombine", "Conditioning (Combine)", (),
             (("conditioning_1", "conditioning_1"), ("conditioning_2", "conditioning_2")), ("conditioning",)),
    # SDXL's own prompt nodes (comfy_extras/nodes_clip_sdxl): one text per encoder, micro-conditioning.
    ClassMap("CLIPTextEncodeSDXL", "TextEncoderSDXL", "CLIPTextEncodeSDXL",
             (Widget("width"), Widget("height"), Widget("crop_w"), Widget("crop_h"), Widget("target_width"),
              Widget("target_height"), Widget("text_g"), Widget("text_l")), (("clip", "clip"),), ("conditioning",)),
    ClassMap("CLIPTextEncodeSDXLRefiner", "TextEncoderSDXLRefiner", "CLIPTextEncodeSDXLRefiner",
             (Widget("ascore", "aesthetic_score"), Widget("width"), Widget("height"), Widget("text")),
             (("clip", "clip"),), ("conditioning",)),
    ClassMap("ConditioningSetTimestepRange", "ConditioningSetTimestepRange", "ConditioningSetTimestepRange",
             (Widget("start"), Widget("end")), (("conditioning", "conditioning"),), ("conditioning",)),
    ClassMap("CLIPTextEncodeSD3", "TextEncoderSD3", "CLIPTextEncodeSD3",
             (Widget("clip_l"), Widget("clip_g"), Widget("t5xxl"),
              Widget("empty_padding", None, export_default="empty_prompt")), (("clip", "clip"),), ("conditioning",)),
    ClassMap("ModelSamplingDiscrete", "ModelSamplingDiscrete", "ModelSamplingDiscrete",
             (Widget("sampling"), Widget("zsnr")), (("model", "unet"),), ("unet",), derive=_zsnr_note),
    ClassMap("ModelSamplingContinuousEDM", "ModelSamplingContinuousEDM", "ModelSamplingContinuousEDM",
             (Widget("sampling"), Widget("sigma_max"), Widget("sigma_min")), (("model", "unet"),), ("unet",)),
    ClassMap("ModelSamplingSD3", "ModelSamplingSD3", "ModelSamplingSD3", (Widget("shift"),),
             (("model", "unet"),), ("unet",)),
    ClassMap("SkipLayerGuidanceSD3", "SkipLayerGuidanceSD3", "SkipLayerGuidanceSD3",
             (Widget("layers"), Widget("scale"), Widget("start_percent"), Widget("end_percent")),
             (("model", "unet"),), ("unet",)),
    # AuraFlow's shift node sets the same flow shift (ComfyUI scales its timesteps by 1 instead of 1000,
    # which the model's own timestep scale already says in NodeForge).
    ClassMap("ModelSamplingAuraFlow", "ModelSamplingSD3", "ModelSamplingAuraFlow", (Widget("shift"),),
             (("model", "unet"),), ("unet",)),
    # Stable Cascade (nodes/families/cascade_nodes.py): core ComfyUI's stage nodes and Inspire's two-stage loader.
    ClassMap("StableCascade_EmptyLatentImage", "EmptyLatentCascade", "StableCascade_EmptyLatentImage",
             (Widget("width"), Widget("height"), Widget("compression"), Widget("batch_size")), (),
             ("stage_c", "stage_b")),
    ClassMap("StableCascade_StageB_Conditioning", "StageBConditioning", "StableCascade_StageB_Conditioning", (),
             (("conditioning", "conditioning"), ("stage_c", "stage_c")), ("conditioning",)),
    ClassMap("StableCascade_StageC_VAEEncode", "StageCVAEEncode", "StableCascade_StageC_VAEEncode",
             (Widget("compression"),), (("image", "image"), ("vae", "vae")), ("stage_c", "stage_b")),
    ClassMap("ModelSamplingStableCascade", "ModelSamplingStableCascade", "ModelSamplingStableCascade",
             (Widget("shift"),), (("model", "unet"),), ("unet",)),
    ClassMap("StableCascade_CheckpointLoader //Inspire", "CascadeCheckpointLoader", "Stable Cascade Checkpoint Loader",
             (Widget("stage_b", model="checkpoint"), Widget("key_opt_b", None, export_default=""),
              Widget("stage_c", model="checkpoint"), Widget("key_opt_c", None, export_default=""),
              Widget("cache_mode", None, export_default="none")), (),
             ("b_model", "b_vae", "c_model", "c_vae", "c_clip_vision", "clip", "", ""),
             note="Inspire's cache keys (key_opt_b/c, cache_mode) are not used: NodeForge's cache keeps a loaded "
                  "checkpoint while anything uses it"),
    ClassMap("TripleCLIPLoader", "TextEncoderLoaderSD3", "TripleCLIPLoader",
             (Widget("clip_name1", "clip_l", model="text_encoder"), Widget("clip_name2", "clip_g", model="text_encoder"),
              Widget("clip_name3", "t5xxl", model="text_encoder")), (), ("clip",)),
    # The separate files (Flux's layout): NodeForge reads fp8 weights upcast, so weight_dtype is not needed.
    # (a .gguf file goes back as ComfyUI-GGUF's loader, the only one ComfyUI reads it with; see below)
    ClassMap("UNETLoader", "DiffusionModelLoader", "Load Diffusion Model",
             (Widget("unet_name", "model", model="diffusion_model"),
              Widget("weight_dtype", None, export_default="default")), (), ("unet",), remember=False,
             export_only_if=_not(_GGUF_MODEL)),
    ClassMap("DualCLIPLoader", "DualTextEncoderLoader", "DualCLIPLoader",
             (Widget("clip_name1", "text_encoder_1", model="text_encoder"),
              Widget("clip_name2", "text_encoder_2", model="text_encoder"), Widget("type", "family"),
              Widget("device", None, export_default="default")), (), ("clip",), remember=False,
             export_only_if=_not(_GGUF_ENCODERS)),
    # One text encoder file: NodeForge loads a CLIP-L for SD 1.x (type stable_diffusion); other types are
    # refused at validate naming the loader that takes their encoders.
    ClassMap("CLIPLoader", "TextEncoderLoader", "Load CLIP",
             (Widget("clip_name", "text_encoder", model="text_encoder"), Widget("type", "type"),
              Widget("device", None, export_default="default")), (), ("clip",), remember=False,
             export_only_if=_not(_GGUF_ENCODER)),
    # Flux (comfy_extras/nodes_flux.py and nodes_model_advanced.py).
    ClassMap("FluxGuidance", "FluxGuidance", "FluxGuidance", (Widget("guidance"),),
             (("conditioning", "conditioning"),), ("conditioning",)),
    ClassMap("CLIPTextEncodeFlux", "TextEncoderFlux", "CLIPTextEncodeFlux",
             (Widget("clip_l"), Widget("t5xxl"), Widget("guidance")), (("clip", "clip"),), ("conditioning",)),
    ClassMap("ModelSamplingFlux", "ModelSamplingFlux", "ModelSamplingFlux",
             (Widget("max_shift"), Widget("base_shift"), Widget("width"), Widget("height")),
             (("model", "unet"),), ("unet",)),
    # Custom sampling (comfy_extras/nodes_custom_sampler.py, nodes_align_your_steps.py): one NodeForge node
    # per class (nodes/custom_specs.py), so a graph runs and exports back as it was.
    ClassMap("KSamplerSelect", "SamplerSelect", "KSamplerSelect",
             (Widget("sampler_name", "sampler", load=_sampler_in, save=_sampler_out),), (), ("sampler",)),
    ClassMap("BasicScheduler", "BasicScheduler", "BasicScheduler",
             (Widget("scheduler", "schedule", load=_schedule_in, save=_schedule_out), Widget("steps"),
              Widget("denoise")), (("model", "unet"),), ("sigmas",)),
    ClassMap("SDTurboScheduler", "SDTurboScheduler", "SDTurboScheduler", (Widget("steps"), Widget("denoise")),
             (("model", "unet"),), ("sigmas",)),
    ClassMap("AlignYourStepsScheduler", "AlignYourStepsScheduler", "AlignYourStepsScheduler",
             (Widget("model_type"), Widget("steps"), Widget("denoise")), (), ("sigmas",)),
    ClassMap("KarrasScheduler", "KarrasScheduler", "KarrasScheduler",
             (Widget("steps"), Widget("sigma_max"), Widget("sigma_min"), Widget("rho")), (), ("sigmas",)),
    ClassMap("ManualSigmas", "ManualSigmas", "ManualSigmas", (Widget("sigmas"),), (), ("sigmas",)),
    ClassMap("SplitSigmas", "SplitSigmas", "SplitSigmas", (Widget("step"),), (("sigmas", "sigmas"),),
             ("high_sigmas", "low_sigmas")),
    ClassMap("BasicGuider", "BasicGuider", "BasicGuider", (),
             (("model", "unet"), ("conditioning", "conditioning")), ("guider",)),
    ClassMap("CFGGuider", "CFGGuider", "CFGGuider", (Widget("cfg"),),
             (("model", "unet"), ("positive", "positive"), ("negative", "negative")), ("guider",)),
    # InstructPix2Pix / CosXL Edit (nodes/ip2p.py)
    # Newer ComfyUI adds a style widget (regular, nested); NodeForge combines as regular (exported so).
    ClassMap("DualCFGGuider", "DualCFGGuider", "DualCFGGuider",
             (Widget("cfg_conds"), Widget("cfg_cond2_negative"), Widget("style", None, export_default="regular")),
             (("model", "unet"), ("cond1", "cond1"), ("cond2", "cond2"), ("negative", "negative")), ("guider",),
             derive=_dual_cfg_style),
    ClassMap("InstructPixToPixConditioning", "InstructPixToPixConditioning", "InstructPixToPixConditioning", (),
             (("positive", "positive"), ("negative", "negative"), ("vae", "vae"), ("pixels", "pixels")),
             ("positive", "negative", "latent")),
    ClassMap("RandomNoise", "RandomNoise", "RandomNoise", (Widget("noise_seed", "seed", seed=True),), (),
             ("noise",)),
    ClassMap("DisableNoise", "DisableNoise", "DisableNoise", (), (), ("noise",)),
    ClassMap("SamplerCustom", "SamplerCustom", "SamplerCustom",
             (Widget("add_noise", load=_enable_in), Widget("noise_seed", "seed", seed=True), Widget("cfg")),
             (("model", "unet"), ("positive", "positive"), ("negative", "negative"), ("sampler", "sampler"),
              ("sigmas", "sigmas"), ("latent_image", "latent")), ("output", "denoised_output")),
    ClassMap("SamplerCustomAdvanced", "SamplerCustomAdvanced", "SamplerCustomAdvanced", (),
             (("noise", "noise"), ("guider", "guider"), ("sampler", "sampler"), ("sigmas", "sigmas"),
              ("latent_image", "latent")), ("output", "denoised_output")),
    ClassMap("ConditioningZeroOut", "ConditioningZeroOut", "ConditioningZeroOut", (),
             (("conditioning", "conditioning"),), ("conditioning",)),
    ClassMap("ConditioningAverage", "ConditioningAverage", "ConditioningAverage",
             (Widget("conditioning_to_strength"),),
             (("conditioning_to", "conditioning_to"), ("conditioning_from", "conditioning_from")), ("conditioning",)),
    ClassMap("ConditioningConcat", "ConditioningConcat", "Conditioning (Concat)", (),
             (("conditioning_to", "conditioning_to"), ("conditioning_from", "conditioning_from")), ("conditioning",)),
    ClassMap("ConditioningSetAreaPercentage", "ConditioningSetAreaPercentage",
             "Conditioning (Set Area with Percentage)",
             (Widget("width"), Widget("height"), Widget("x"), Widget("y"), Widget("strength")),
             (("conditioning", "conditioning"),), ("conditioning",)),
    ClassMap("RepeatLatentBatch", "RepeatLatentBatch", "Repeat Latent Batch", (Widget("amount"),),
             (("samples", "latent"),), ("latent",)),
    ClassMap("LatentFromBatch", "LatentFromBatch", "Latent From Batch", (Widget("batch_index"), Widget("length")),
             (("samples", "latent"),), ("latent",)),
    ClassMap("VAEDecodeTiled", "VAEDecode", "VAE Decode (Tiled)",
             (Widget("tile_size", None, export_default=512), Widget("overlap", None, export_default=64),
              Widget("temporal_size", None, export_default=64), Widget("temporal_overlap", None, export_default=8)),
             (("samples", "latent"), ("vae", "vae")), ("image",),
             note="NodeForge's VAE Decode tiles by itself when the image is large (above 768x768 for SD, 64-latent-"
                  "pixel tiles); the file's tile_size and overlap are not used"),
    ClassMap("VAEEncodeTiled", "VAEEncode", "VAE Encode (Tiled)",
             (Widget("tile_size", None, export_default=512), Widget("overlap", None, export_default=64),
              Widget("temporal_size", None, export_default=64), Widget("temporal_overlap", None, export_default=8)),
             (("pixels", "image"), ("vae", "vae")), ("latent",),
             note="NodeForge's VAE Encode tiles by itself when the image is large (above 768x768 for SD); the "
                  "file's tile_size and overlap are not used"),
    ClassMap("InvertMask", "InvertMask", "InvertMask", (), (("mask", "mask"),), ("mask",)),
    ClassMap("LoadImageMask", "LoadImageMask", "Load Image (as Mask)",
             (Widget("image", "path", model="image", load=_image_in), Widget("channel"), Widget("upload", None, ui_value="image")), (),
             ("mask",)),
    ClassMap("ImageInvert", "ImageInvert", "Invert Image", (), (("image", "image"),), ("image",)),
    ClassMap("ImageToMask", "ImageToMask", "Convert Image to Mask", (Widget("channel"),), (("image", "image"),),
             ("mask",)),
    ClassMap("JoinImageWithAlpha", "JoinImageWithAlpha", "Join Image with Alpha", (),
             (("image", "image"), ("alpha", "alpha")), ("image",)),
    ClassMap("MaskToImage", "MaskToImage", "Convert Mask to Image", (), (("mask", "mask"),), ("image",)),
    ClassMap("SolidMask", "SolidMask", "SolidMask", (Widget("value"), Widget("width"), Widget("height")), (),
             ("mask",)),
    ClassMap("GrowMask", "GrowMask", "GrowMask", (Widget("expand"), Widget("tapered_corners")),
             (("mask", "mask"),), ("mask",)),
    ClassMap("ImageScaleToTotalPixels", "ImageScaleToTotalPixels", "Scale Image to Total Pixels",
             (Widget("upscale_method", load=_method(_IMAGE_METHODS)), Widget("megapixels"),
              Widget("resolution_steps")), (("image", "image"),), ("image",)),
    ClassMap("ImageScaleToMaxDimension", "ImageScaleToMaxDimension", "ImageScaleToMaxDimension",
             (Widget("upscale_method", load=_method(_IMAGE_METHODS)), Widget("largest_size")),
             (("image", "image"),), ("image",)),
    ClassMap("ImageConcatMulti", "ImageConcat", "Image Concatenate Multi",
             (Widget("inputcount", load=_concat_count), Widget("direction"), Widget("match_image_size"),
              Widget("Update inputs", None)),
             tuple((f"image_{i}", f"image_{i}") for i in range(1, 9)), ("image",)),
    ClassMap("ResizeImagesByLongerEdge", "ResizeImagesByLongerEdge", "Resize Images by Longer Edge",
             (Widget("longer_edge"),), (("images", "image"),), ("image",)),
    ClassMap("ConditioningSetAreaStrength", "ConditioningSetAreaStrength", "ConditioningSetAreaStrength",
             (Widget("strength"),), (("conditioning", "conditioning"),), ("conditioning",)),
    ClassMap("ImageCrop", "ImageCrop", "Image Crop", (Widget("width"), Widget("height"), Widget("x"), Widget("y")),
             (("image", "image"),), ("image",)),
    ClassMap("ImageBatch", "ImageBatch", "Batch Images", (), (("image1", "image1"), ("image2", "image2")),
             ("image",)),
    ClassMap("LatentBlend", "LatentBlend", "Latent Blend", (Widget("blend_factor"),),
             (("samples1", "latent_1"), ("samples2", "latent_2")), ("latent",)),
    ClassMap("EmptyImage", "EmptyImage", "EmptyImage",
             (Widget("width"), Widget("height"), Widget("batch_size"), Widget("color")), (), ("image",)),
    ClassMap("ImageCompositeMasked", "ImageCompositeMasked", "ImageCompositeMasked",
             (Widget("x"), Widget("y"), Widget("resize_source")),
             (("destination", "destination"), ("source", "source"), ("mask", "mask")), ("image",)),
    ClassMap("LatentCompositeMasked", "LatentCompositeMasked", "LatentCompositeMasked",
             (Widget("x"), Widget("y"), Widget("resize_source")),
             (("destination", "destination"), ("source", "source"), ("mask", "mask")), ("latent",)),
    # A diff ControlNet adds its weights to the model's; NodeForge loads it as a plain ControlNet.
    ClassMap("DiffControlNetLoader", "ControlNetLoader", "Load ControlNet Model (diff)",
             (Widget("control_net_name", "controlnet", model="controlnet"),), (), ("controlnet",),
             optional_inputs=("model",), remember=False,
             note="loaded as a plain ControlNet (NodeForge's Load ControlNet); the model input is ignored, so a "
                  "diff ControlNet, whose weights are differences to its base model, does not work as intended: "
                  "use the full ControlNet file"),
    # ComfyUI's core latent and mask operations (nodes/latent_ops.py, nodes/masks.py).
    ClassMap("LatentComposite", "LatentComposite", "Latent Composite", (Widget("x"), Widget("y"), Widget("feather")),
             (("samples_to", "destination"), ("samples_from", "source")), ("latent",)),
    ClassMap("LatentCrop", "LatentCrop", "Crop Latent", (Widget("width"), Widget("height"), Widget("x"), Widget("y")),
             (("samples", "latent"),), ("latent",)),
    ClassMap("LatentAdd", "LatentAdd", "LatentAdd", (), (("samples1", "latent_1"), ("samples2", "latent_2")),
             ("latent",)),
    ClassMap("LatentSubtract", "LatentSubtract", "LatentSubtract", (),
             (("samples1", "latent_1"), ("samples2", "latent_2")), ("latent",)),
    ClassMap("LatentMultiply", "LatentMultiply", "LatentMultiply", (Widget("multiplier"),), (("samples", "latent"),),
             ("latent",)),
    ClassMap("LatentFlip", "LatentFlip", "Flip Latent", (Widget("flip_method"),), (("samples", "latent"),),
             ("latent",)),
    ClassMap("LatentRotate", "LatentRotate", "Rotate Latent", (Widget("rotation"),), (("samples", "latent"),),
             ("latent",)),
    ClassMap("FeatherMask", "FeatherMask", "FeatherMask",
             (Widget("left"), Widget("top"), Widget("right"), Widget("bottom")), (("mask", "mask"),), ("mask",)),
    ClassMap("ThresholdMask", "ThresholdMask", "ThresholdMask", (Widget("value"),), (("mask", "mask"),), ("mask",)),
    ClassMap("MaskComposite", "MaskComposite", "MaskComposite", (Widget("x"), Widget("y"), Widget("operation")),
             (("destination", "destination"), ("source", "source")), ("mask",)),
    ClassMap("CropMask", "CropMask", "CropMask", (Widget("x"), Widget("y"), Widget("width"), Widget("height")),
             (("mask", "mask"),), ("mask",)),
    ClassMap("ImageBlend", "ImageBlend", "Image Blend", (Widget("blend_factor"), Widget("blend_mode")),
             (("image1", "image1"), ("image2", "image2")), ("image",)),
    ClassMap("ImageBlur", "ImageBlur", "Image Blur", (Widget("blur_radius"), Widget("sigma")), (("image", "image"),),
             ("image",)),
    ClassMap("ImageSharpen", "ImageSharpen", "Image Sharpen", (Widget("sharpen_radius"), Widget("sigma"),
                                                                Widget("alpha")), (("image", "image"),), ("image",)),
    ClassMap("ImageQuantize", "ImageQuantize", "Image Quantize", (Widget("colors"), Widget("dither")),
             (("image", "image"),), ("image",)),
    ClassMap("ConditioningSetMask", "ConditioningSetMask", "Conditioning (Set Mask)",
             (Widget("strength"), Widget("set_cond_area")), (("conditioning", "conditioning"), ("mask", "mask")),
             ("conditioning",)),
    ClassMap("SaveLatent", "SaveLatent", "SaveLatent", (Widget("filename_prefix", "prefix", load=_prefix_in),),
             (("samples", "latent"),), ()),
    ClassMap("LoadLatent", "LoadLatent", "LoadLatent", (Widget("latent", "path", load=_image_in),), (), ("latent",),
             note="ComfyUI stores latents without the VAE's scaling; NodeForge scales them by SD 1.x/2.x's 0.18215 "
                  "unless the model's VAE is connected to the node's vae input (SDXL, SD3)"),
    ClassMap("FreeU", "FreeU", "FreeU", (Widget("b1"), Widget("b2"), Widget("s1"), Widget("s2")),
             (("model", "unet"),), ("unet",)),
    ClassMap("FreeU_V2", "FreeUV2", "FreeU_V2", (Widget("b1"), Widget("b2"), Widget("s1"), Widget("s2")),
             (("model", "unet"),), ("unet",)),
    ClassMap("SelfAttentionGuidance", "SelfAttentionGuidance", "Self-Attention Guidance",
             (Widget("scale"), Widget("blur_sigma")), (("model", "unet"),), ("unet",)),
    # Perturbed-attention guidance (nodes/pag.py): ComfyUI's own node, and sd-perturbed-attention's with the
    # adaptive scale (its other block, sigma window and rescale choices are said and not used).
    ClassMap("PerturbedAttentionGuidance", "PerturbedAttentionGuidance", "PerturbedAttentionGuidance",
             (Widget("scale"),), (("model", "unet"),), ("unet",),
             export_only_if=lambda nid, node, workflow: not node.params.get("adaptive_scale")),
    ClassMap("PerturbedAttention", "PerturbedAttentionGuidance", "Perturbed-Attention Guidance (Advanced)",
             (Widget("scale"), Widget("adaptive_scale"), Widget("unet_block", None, export_default="middle"),
              Widget("unet_block_id", None, export_default=0), Widget("sigma_start", None, export_default=-1.0),
              Widget("sigma_end", None, export_default=-1.0), Widget("rescale", None, export_default=0.0),
              Widget("rescale_mode", None, export_default="full"), Widget("unet_block_list", None, export_default="")),
             (("model", "unet"),), ("unet",), derive=_pag_pack_widgets),
    # asagi4's ComfyUI-CADS (nodes/cads.py): the timestep's schedule; the step-count one is said and not made.
    ClassMap("CADS", "CADS", "CADS",
             (Widget("noise_scale"), Widget("t1"), Widget("t2"), Widget("rescale"),
              Widget("start_step", None, export_default=0), Widget("total_steps", None, export_default=0),
              Widget("apply_to"), Widget("key"), Widget("noise_type"), Widget("seed", seed=True, load=_cads_seed)),
             (("model", "unet"),), ("unet",), derive=_cads_steps),
    ClassMap("DifferentialDiffusion", "DifferentialDiffusion", "Differential Diffusion", (Widget("strength"),),
             (("model", "unet"),), ("unet",)),
    ClassMap("RescaleCFG", "RescaleCFG", "RescaleCFG", (Widget("multiplier"),), (("model", "unet"),), ("unet",),
             note="NodeForge rescales the UNet's noise prediction as diffusers' guidance_rescale does; ComfyUI "
                  "rescales in v-prediction form, so on eps models (most SD 1.x and XL) the image differs slightly"),
    # Z-Image's Fun ControlNet Union as core ComfyUI's model patch (nodes/families/zimage_control.py); the newer
    # ZImageFunControlnet is the same node with an inpaint_image input, chosen on export when one is linked.
    ClassMap("ModelPatchLoader", "ModelPatchLoader", "ModelPatchLoader",
             (Widget("name", "model_patch", model="model_patch"),), (), ("model_patch",)),
    ClassMap("QwenImageDiffsynthControlnet", "ZImageFunControlNet", "QwenImageDiffsynthControlnet",
             (Widget("strength"),),
             (("model", "unet"), ("model_patch", "model_patch"), ("vae", "vae"), ("image", "image"), ("mask", "mask")),
             ("unet",), export_only_if=lambda nid, node, workflow: "inpaint_image" not in node.inputs),
    ClassMap("ZImageFunControlnet", "ZImageFunControlNet", "ZImageFunControlnet", (Widget("strength"),),
             (("model", "unet"), ("model_patch", "model_patch"), ("vae", "vae"), ("image", "image"),
              ("inpaint_image", "inpaint_image"), ("mask", "mask")), ("unet",)),
    # IP-Adapter: core ComfyUI's CLIP vision loader and IPAdapter_plus's loaders and apply nodes (nodes/ipadapter.py).
    ClassMap("CLIPVisionLoader", "CLIPVisionLoader", "Load CLIP Vision",
             (Widget("clip_name", "clip_vision", model="clip_vision"),), (), ("clip_vision",)),
    # unCLIP / SDXL Revision (nodes/unclip.py): the image's embedding read by SDXL as its pooled vector.
    ClassMap("CLIPVisionEncode", "CLIPVisionEncode", "CLIP Vision Encode", (Widget("crop"),),
             (("clip_vision", "clip_vision"), ("image", "image")), ("clip_vision_output",),
             note="the image is prepared by CLIP's processor (PIL's bicubic; ComfyUI resizes with torch's), so the "
                  "embedding is close to ComfyUI's, not bit for bit"),
    ClassMap("unCLIPConditioning", "UnCLIPConditioning", "unCLIPConditioning",
             (Widget("strength"), Widget("noise_augmentation")),
             (("conditioning", "conditioning"), ("clip_vision_output", "clip_vision_output")), ("conditioning",),
             note="an SD 2.1 unCLIP model reads the image's embedding as its UNet's class label, an SDXL model in "
                  "place of the prompt's pooled vector (Revision), a Stable Cascade stage C model as an image token; "
                  "noise augmentation draws from a fixed seed, not the sampler's; other SD 1.x/2.x models ignore it, "
                  "as in ComfyUI"),
    ClassMap("unCLIPCheckpointLoader", "UnCLIPCheckpointLoader", "unCLIPCheckpointLoader",
             (Widget("ckpt_name", "checkpoint", model="checkpoint"),), (), ("unet", "clip", "vae", "clip_vision")),
    ClassMap("IPAdapterModelLoader", "IPAdapterLoader", "IPAdapter Model Loader",
             (Widget("ipadapter_file", "ipadapter", model="ipadapter"),), (), ("ipadapter",)),
    ClassMap("IPAdapterUnifiedLoader", "IPAdapterLoaderWithEncoder", "IPAdapter Unified Loader",
             (Widget("preset", "ipadapter", model="ipadapter", load=_preset_in, save=_preset_out),),
             (("model", "unet"),), ("unet", "ipadapter"), optional_inputs=("ipadapter",), derive=_preset_encoder),
    ClassMap("IPAdapterAdvanced", "IPAdapterApply", "IPAdapter Advanced",
             (Widget("weight"), Widget("weight_type", None, export_default="linear"),
              Widget("combine_embeds", None, export_default="concat"), Widget("start_at", "start_percent"),
              Widget("end_at", "end_percent"), Widget("embeds_scaling", None, export_default="V only")),
             _IPADAPTER_INPUTS + (("clip_vision", "clip_vision"),), ("unet",), note=_IPADAPTER_NOTE,
             derive=_ipadapter_options({"weight_type": "linear", "combine_embeds": "concat",
                                        "embeds_scaling": "V only"})),
    ClassMap("IPAdapter", "IPAdapterApply", "IPAdapter",
             (Widget("weight"), Widget("start_at", "start_percent"), Widget("end_at", "end_percent"),
              Widget("weight_type", None, export_default="standard")),
             _IPADAPTER_INPUTS, ("unet",), note=_IPADAPTER_NOTE, export_only_if=_no_encoder_link,
             derive=_simple_options),
    # IPAdapter_plus before version 2 (early 2024 files): the same apply node under the NodeForge name, its
    # later widgets (weight_type, start_at, end_at, unfold_batch) absent from the oldest files.
    ClassMap("IPAdapterApply", "IPAdapterApply", "Apply IPAdapter",
             (Widget("weight"), Widget("noise", None, export_default=0.0),
              Widget("weight_type", None, export_default="original"), Widget("start_at", "start_percent"),
              Widget("end_at", "end_percent"), Widget("unfold_batch", None, export_default=False)),
             (("ipadapter", "ipadapter"), ("clip_vision", "clip_vision"), ("image", "image"), ("model", "unet")),
             ("unet",), note=_IPADAPTER_NOTE, export_only_if=_encoder_link, derive=_v1_options),
    # Well-known custom-pack classes that are a NodeForge node's operation. They come in as that node and
    # go back to ComfyUI as its core class (so the file needs no pack there).
    ClassMap("KSampler //Inspire", "UNetDenoise", "KSampler //Inspire",
             (Widget("seed", seed=True),) + _SAMPLER_WIDGETS + (Widget("denoise"),)
             + tuple(Widget(name, None) for name in ("noise_mode", "batch_seed_mode", "variation_seed",
                                                      "variation_strength", "variation_method")),
             _SAMPLER_INPUTS, ("latent",), optional_inputs=("scheduler_func_opt",), remember=False,
             export_only_if=_never,
             note="Inspire's noise_mode, batch_seed_mode and variation seed/strength are not used: NodeForge draws "
                  "its own noise from the seed (exported back as ComfyUI's KSampler)"),
    ClassMap("KSampler (Efficient)", "UNetDenoise", "KSampler (Efficient)",
             (Widget("seed", seed=True),) + _SAMPLER_WIDGETS + (Widget("denoise"), Widget("preview_method", None),
                                                                Widget("vae_decode", None)),
             _SAMPLER_INPUTS, ("", "", "", "latent", "", ""), optional_inputs=("optional_vae",), remember=False,
             export_only_if=_never, passthrough=_EFFICIENT_PASSED, decoded=(5, "optional_vae"),
             note=_EFFICIENT_NOTE),
    ClassMap("KSampler Adv. (Efficient)", "UNetDenoise", "KSampler Adv. (Efficient)",
             (Widget("add_noise", load=_enable_in, save=_enable_out), Widget("noise_seed", "seed", seed=True))
             + _SAMPLER_WIDGETS
             + (Widget("start_at_step"), Widget("end_at_step"),
                Widget("return_with_leftover_noise", load=_enable_in, save=_enable_out),
                Widget("preview_method", None), Widget("vae_decode", None)),
             _SAMPLER_INPUTS, ("", "", "", "latent", "", ""), optional_inputs=("optional_vae",), remember=False,
             export_only_if=_never, passthrough=_EFFICIENT_PASSED, decoded=(5, "optional_vae"),
             note=_EFFICIENT_NOTE),
    # WAS Node Suite's Image Resize is a NodeForge node of its own (nodes/image_filters.py): it goes back as itself.
    ClassMap("Image Resize", "ImageResize", "Image Resize",
             (Widget("mode"), Widget("supersample", load=_true_in, save=_true_out), Widget("resampling"),
              Widget("rescale_factor"), Widget("resize_width"), Widget("resize_height")), (("image", "image"),),
             ("image",)),
    ClassMap("Latent Upscale by Factor (WAS)", "LatentUpscaleBy", "Latent Upscale by Factor (WAS)",
             (Widget("mode", "upscale_method", load=_was_method), Widget("factor", "scale_by"), Widget("align", None)),
             (("samples", "latent"),), ("latent",), remember=False, export_only_if=_never,
             note="resized as Upscale Latent By (sizes rounded, align_corners off; WAS's 'nearest' is "
                  "nearest-exact here), exported back as ComfyUI's LatentUpscaleBy"),
    ClassMap("Image Canny Filter", "ImageToEdges", "Image Canny Filter",
             (Widget("enable_threshold", None), Widget("threshold_low", None), Widget("threshold_high", None)),
             (("images", "image"),), ("image",), fixed={"low_threshold": 0.25, "high_threshold": 0.25}, remember=False,
             export_only_if=_never,
             note="edges by NodeForge's Canny with both thresholds 0.25 (about a tenth of a sharp black-to-white "
                  "step), white lines: WAS keeps the thinned gradient (no hysteresis) above a tenth of the picture's "
                  "strongest, grey where weak, on the picture's grey with red and blue swapped (its thresholds, when "
                  "enabled, are compared with gradients of 0..255 pictures and keep nearly every thinned pixel), and "
                  "gives only the batch's last picture: close, not pixel for pixel (exported back as ComfyUI's Canny)"),
    ClassMap("CannyEdgePreprocessor", "ImageToEdges", "Canny Edge",
             (Widget("low_threshold", load=_threshold_255), Widget("high_threshold", load=_threshold_255),
              Widget("resolution", None)), (("image", "image"),), ("image",), remember=False, export_only_if=_never,
             note="edges by NodeForge's Canny at the image's own size, the 0..255 thresholds as fractions (t / 255): "
                  "close to the preprocessor's, not pixel for pixel (exported back as ComfyUI's Canny)"),
    # QualityOfLifeSuit (omar92)'s factor nodes and deadinside's weighted blend are NodeForge nodes of their own
    # (nodes/geometry.py): they go back as themselves.
    ClassMap("ImageScaleFactor _O", "ImageScaleByFactors", "ImageScaleFactor _O",
             (Widget("upscale_method"), Widget("WidthFactor", "width_factor"), Widget("HeightFactor", "height_factor"),
              Widget("MulOf46", "multiple_of_8", load=_enabled_in, save=_enabled_out), Widget("crop")),
             (("image", "image"),), ("image",)),
    ClassMap("ImageScaleFactorSimple _O", "ImageScaleByFactors", "ImageScaleFactorSimple _O",
             (Widget("upscale_method"), Widget("Factor", "width_factor"),
              Widget("MulOf46", "multiple_of_8", load=_enabled_in, save=_enabled_out), Widget("crop")),
             (("image", "image"),), ("image",), derive=_one_factor, export_only_if=_same_factors),
    ClassMap("LatentUpscaleFactor _O", "LatentScaleByFactors", "LatentUpscaleFactor _O",
             (Widget("upscale_method"), Widget("WidthFactor", "width_factor"), Widget("HeightFactor", "height_factor"),
              Widget("crop")), (("samples", "latent"),), ("latent",)),
    ClassMap("LatentUpscaleFactorSimple _O", "LatentScaleByFactors", "LatentUpscaleFactorSimple _O",
             (Widget("upscale_method"), Widget("factor", "width_factor"), Widget("crop")), (("samples", "latent"),),
             ("latent",), derive=_one_factor, export_only_if=_same_factors),
    ClassMap("LatentWeightedBlendResize", "LatentWeightedBlend", "Latent Weighted Blend (Resize, Turbo Safe)",
             (Widget("weight1", "weight_1"), Widget("weight2", "weight_2"), Widget("width"), Widget("height")),
             (("samples1", "latent_1"), ("samples2", "latent_2")), ("latent",)),
    # LG_SamplingUtils' ZImageTimestepNoise is NodeForge's Timestep Noise (nodes/families/timestep_noise.py).
    ClassMap("ZImageTimestepNoise", "TimestepNoise", "ZImage Timestep Noise",
             (Widget("mode"), Widget("noise_strength"), Widget("seed", seed=True), Widget("start_percent"),
              Widget("end_percent")), (("model", "unet"), ("sigmas", "sigmas"), ("mask", "mask")), ("unet",),
             note="each step's noise is drawn from a CPU generator and counted from the first step of each run; "
                  "ComfyUI draws it on the model's device (a GPU gives other numbers) and keeps counting across runs"),
    # RES4LYF's Film Grain (WAS's noise model; nodes/film_grain.py), KJNodes' Visualize Sigmas KJ
    # (nodes/sigma_plot.py) and ComfyUI's NAGuidance (nodes/families/nag.py).
    ClassMap("Film Grain", "FilmGrain", "Film Grain",
             (Widget("density"), Widget("intensity"), Widget("highlights"), Widget("supersample_factor"),
              Widget("repeats")), (("image", "image"),), ("image",),
             note="the grain is drawn from a CPU generator seeded with the node's seed (0 on import), so it is the "
                  "same each run; RES4LYF draws new grain each run"),
    ClassMap("VisualizeSigmasKJ", "VisualizeSigmas", "Visualize Sigmas KJ", (Widget("start_step"), Widget("end_step")),
             (("sigmas", "sigmas"),), ("sigmas", "image")),
    ClassMap("NAGuidance", "NormalizedAttentionGuidance", "Normalized Attention Guidance",
             (Widget("nag_scale"), Widget("nag_alpha"), Widget("nag_tau")), (("model", "unet"),), ("unet",)),
    # ComfyUI's GLSL Shader (nodes/glsl.py): its Autogrow sockets images.imageN (inputs), floats.u_floatN and
    # ints.u_intN (params: constants linked to them fold in, other nodes' values stay wires) and its size_mode
    # DynamicCombo, whose width and height a UI file lists only in custom mode.
    ClassMap("GLSLShader", "GLSLShader", "GLSL Shader",
             (Widget("fragment_shader"), Widget("size_mode"),
              Widget("size_mode.width", "width", absent_ok=True, ui_when=("size_mode", "custom")),
              Widget("size_mode.height", "height", absent_ok=True, ui_when=("size_mode", "custom")),
              *(Widget(f"floats.u_float{i}", f"u_float{i}", absent_ok=True, socket="PrimitiveFloat") for i in range(5)),
              *(Widget(f"ints.u_int{i}", f"u_int{i}", absent_ok=True, socket="PrimitiveInt") for i in range(5))),
             tuple((f"images.image{i}", f"image{i}") for i in range(5)), tuple(f"image{i}" for i in range(4))),
    # comfyui_controlnet_aux's depth preprocessors: NodeForge's DepthMap with the model each runs (nodes/depth.py)
    ClassMap("MiDaS-DepthMapPreprocessor", "DepthMap", "MiDaS Depth Map",
             (Widget("a", None, export_default=6.283185307179586), Widget("bg_threshold", None, export_default=0.1),
              Widget("resolution")), (("image", "image"),), ("image",), fixed={"model": MIDAS_DEPTH},
             export_only_if=_depth_model_is(MIDAS_DEPTH),
             note=_DEPTH_NOTE.format(folder=MIDAS_DEPTH, repo="Intel/dpt-hybrid-midas")
             + "; a and bg_threshold shape MiDaS's normal map, which the depth map does not use (as in ComfyUI), "
               "and are not kept"),
    ClassMap("Zoe-DepthMapPreprocessor", "DepthMap", "Zoe Depth Map", (Widget("resolution"),), (("image", "image"),),
             ("image",), fixed={"model": ZOE_DEPTH}, export_only_if=_depth_model_is(ZOE_DEPTH),
             note=_DEPTH_NOTE.format(folder=ZOE_DEPTH, repo="Intel/zoedepth-nyu-kitti")),
    ClassMap("DepthAnythingPreprocessor", "DepthMap", "Depth Anything",
             (Widget("ckpt_name", "model", load=_table_in(_DEPTH_ANYTHING), save=_table_out(_DEPTH_ANYTHING)),
              Widget("resolution")), (("image", "image"),), ("image",),
             export_only_if=_depth_model_is(*_DEPTH_ANYTHING.values()),
             note=_DEPTH_NOTE.format(folder="depth-anything-large-hf (vitl14; base-hf, small-hf)",
                                      repo="LiheYoung/depth-anything-large-hf")),
    ClassMap("Zoe_DepthAnythingPreprocessor", "DepthMap", "Zoe Depth Anything",
             (Widget("environment", "model", load=_table_in(_DEPTH_METRIC), save=_table_out(_DEPTH_METRIC)),
              Widget("resolution")), (("image", "image"),), ("image",),
             export_only_if=_depth_model_is(*_DEPTH_METRIC.values()),
             note=_DEPTH_NOTE.format(folder="Depth-Anything-V2-Metric-Indoor-Large-hf (outdoor: "
                                            "Depth-Anything-V2-Metric-Outdoor-Large-hf)",
                                     repo="depth-anything/Depth-Anything-V2-Metric-Indoor-Large-hf")
             + "; the pack ran Depth Anything v1 with ZoeDepth's metric head trained on NYU (indoor) or KITTI "
               "(outdoor), newer versions Intel/zoedepth-nyu-kitti for both: NodeForge runs Depth Anything V2's "
               "metric model for that environment, shown as Zoe's (2nd to 85th percentile, near bright)"),
    # WAS Node Suite's MiDaS Depth Approximation: DepthMap at the image's own size (resolution 0)
    ClassMap("MiDaS Depth Approximation", "DepthMap", "MiDaS Depth Approximation",
             (Widget("use_cpu", None, export_default="false"),
              Widget("midas_type", "model", load=_table_in(_WAS_MIDAS), save=_table_out(_WAS_MIDAS)),
              Widget("invert_depth", None, export_default="false")), (("image", "image"),), ("image",),
             fixed={"resolution": 0}, optional_inputs=("midas_model",), derive=_was_midas,
             export_only_if=_was_midas_own_size, export_prefer_if=_was_midas_own_size,
             note=_DEPTH_NOTE.format(folder="dpt-large (DPT_Hybrid: dpt-hybrid-midas)", repo="Intel/dpt-large")
             + "; WAS gives the model the picture's channels swapped (blue for red), NodeForge the picture as it "
               "is; use_cpu is not used (NodeForge's device setting is) and a midas_model input is not taken"),
    ClassMap("DepthAnythingV2Preprocessor", "DepthMap", "Depth Anything V2 - Relative",
             (Widget("ckpt_name", "model", load=_table_in(_DEPTH_ANYTHING_V2), save=_table_out(_DEPTH_ANYTHING_V2)),
              Widget("resolution")), (("image", "image"),), ("image",),
             note=_DEPTH_NOTE.format(folder="Depth-Anything-V2-Large-hf (vitl; Base-hf, Small-hf)",
                                      repo="depth-anything/Depth-Anything-V2-Large-hf")),
    # comfyui_controlnet_aux's inpaint and lineart preprocessors: NodeForge nodes of their own (nodes/inpaint_control.py,
    # nodes/lineart.py)
    ClassMap("InpaintPreprocessor", "InpaintControlImage", "Inpaint Preprocessor",
             (Widget("black_pixel_for_xinsir_cn", "xinsir_black"),), (("image", "image"), ("mask", "mask")),
             ("image",)),
    ClassMap("LineartStandardPreprocessor", "LineartStandard", "Standard Lineart",
             (Widget("guassian_sigma"), Widget("intensity_threshold"), Widget("resolution")), (("image", "image"),),
             ("image",)),
    ClassMap("LineArtPreprocessor", "LineArt", "Realistic Lineart",
             (Widget("coarse", "model", model="lineart", load=_lineart_in, save=_lineart_out), Widget("resolution")),
             (("image", "image"),), ("image",),
             note="the lines are drawn by NodeForge's Realistic Lineart with the pack's own network: put sk_model.pth "
                  "(coarse: sk_model2.pth) from lllyasviel/Annotators in models/lineart/"),
    ClassMap("LeReS-DepthMapPreprocessor", "LeReSDepthMap", "LeReS Depth Map (enable boost for leres++)",
             (Widget("rm_nearest"), Widget("rm_background"), Widget("boost", None, export_default="disable"),
              Widget("resolution")), (("image", "image"),), ("image",), fixed={"model": "res101.pth"},
             derive=_leres_boost,
             note="the depth is estimated by NodeForge's LeReS Depth Map with the pack's own network: put res101.pth "
                  "from lllyasviel/Annotators in models/leres/"),
    ClassMap("OpenposePreprocessor", "PoseMap", "OpenPose Pose Recognition",
             (Widget("detect_hand", None, export_default="disable"), Widget("detect_body", None, export_default="enable"),
              Widget("detect_face", None, export_default="disable"), Widget("resolution"),
              Widget("scale_stick_for_xinsr_cn", "xinsir_sticks", load=_on_in, save=_on_out)),
             (("image", "image"),), ("image",), fixed={"model": VITPOSE}, derive=_pose_widgets, note=_POSE_NOTE),
    ClassMap("Image Comparer (rgthree)", "Preview", "Image Comparer (rgthree)", (), (("image_a", "image"),), (),
             optional_inputs=("image_b",), remember=False, export_only_if=_never,
             note="shown as a preview of image_a (NodeForge has no comparer; image_b is not shown)"),
    ClassMap("VHS_VideoCombine", "SaveImage", "Video Combine 🎥🅥🅗🅢",
             (Widget("frame_rate", None), Widget("loop_count", None), Widget("filename_prefix", "prefix", load=_prefix_in))
             + tuple(Widget(name, None) for name in ("format", "pingpong", "save_output", "pix_fmt", "crf",
                                                      "save_metadata", "trim_to_audio", "videopreview")),
             (("images", "image"),), (), optional_inputs=("audio", "meta_batch", "vae"), remember=False,
             export_only_if=_never,
             note="the frames are saved as numbered PNGs (prefix_00001.png, ...), not as a video: frame rate, format "
                  "and loop settings are not used (exported back as ComfyUI's SaveImage)"),
    # KJNodes' and essentials' resize nodes are Scale Image where their mode is one of its own ('stretch'; a
    # crop or fill at the center), the size rounded down to divisible_by / multiple_of first, as they do; other
    # modes are stretched with a warning. Their width/height (and mask) outputs are not given. Scale Image's
    # crop is no widget of theirs: `derive` sets it from the mode.
    ClassMap("ImageResizeKJv2", "ImageScale", "Resize Image v2",
             (Widget("width"), Widget("height"), Widget("upscale_method", load=_method(_IMAGE_METHODS)))
             + tuple(Widget(name, None) for name in ("keep_proportion", "pad_color", "crop_position", "divisible_by",
                                                      "device")),
             (("image", "image"),), ("image",), remember=False, export_only_if=_never, derive=_kj_resize,
             note="resized as Scale Image (exported back as ComfyUI's ImageScale)"),
    ClassMap("ImageResizeKJ", "ImageScale", "Resize Image",
             (Widget("width"), Widget("height"), Widget("upscale_method", load=_method(_IMAGE_METHODS)))
             + tuple(Widget(name, None) for name in ("keep_proportion", "divisible_by", "width_input", "height_input",
                                                      "crop")),
             (("image", "image"),), ("image",), remember=False, export_only_if=_never, derive=_kj_resize_v1,
             note="resized as Scale Image (exported back as ComfyUI's ImageScale)"),
    # (older essentials had a keep_proportion switch where method is; API prompts name it)
    ClassMap("ImageResize+", "ImageScale", "🔧 Image Resize",
             (Widget("width"), Widget("height"), Widget("interpolation", "upscale_method", load=_essentials_interpolation))
             + tuple(Widget(name, None) for name in ("method", "condition", "multiple_of", "keep_proportion")),
             (("image", "image"),), ("image",), remember=False, export_only_if=_never, derive=_essentials_method,
             note="resized as Scale Image (essentials' 'nearest' is nearest-exact here; exported back as ComfyUI's "
                  "ImageScale)"),
    # mtb's Colored Image without a foreground image is an image of one colour (PIL fills it with the colour).
    ClassMap("Colored Image (mtb)", "EmptyImage", "Colored Image (mtb)",
             (Widget("color", load=_hex_color), Widget("width"), Widget("height")), (), ("image",),
             fixed={"batch_size": 1}, remember=False, export_only_if=_never,
             note="an image of one colour, NodeForge's EmptyImage (exported back as ComfyUI's EmptyImage)"),
    # Packs' loaders that load the same files as ComfyUI's own (city96/ComfyUI-GGUF's quantised files, which
    # NodeForge's loaders read where they can: a GGUF Flux transformer; GGUF text encoders are refused when the
    # graph runs, naming the .safetensors to use; KJNodes' loaders with speed and precision options).
    ClassMap("UnetLoaderGGUF", "DiffusionModelLoader", "Unet Loader (GGUF)",
             (Widget("unet_name", "model", model="diffusion_model"),), (), ("unet",), remember=False,
             export_only_if=_GGUF_MODEL, export_prefer_if=_GGUF_MODEL,
             note="NodeForge reads a GGUF file as a Flux transformer (diffusers' GGUF support): another model's GGUF "
                  "(Z-Image, Wan, LTX) is refused when the graph runs; map it to that model's .safetensors "
                  "(--model-map 'diffusion_model:*=NAME')"),
    ClassMap("CLIPLoaderGGUF", "TextEncoderLoader", "CLIPLoader (GGUF)",
             (Widget("clip_name", "text_encoder", model="text_encoder"), Widget("type", "type")), (), ("clip",),
             remember=False, export_only_if=_GGUF_ENCODER, export_prefer_if=_GGUF_ENCODER, note=_GGUF_ENCODER_NOTE),
    ClassMap("DualCLIPLoaderGGUF", "DualTextEncoderLoader", "DualCLIPLoader (GGUF)",
             (Widget("clip_name1", "text_encoder_1", model="text_encoder"),
              Widget("clip_name2", "text_encoder_2", model="text_encoder"), Widget("type", "family")), (), ("clip",),
             remember=False, export_only_if=_GGUF_ENCODERS, export_prefer_if=_GGUF_ENCODERS,
             note=_GGUF_ENCODER_NOTE),
    ClassMap("DiffusionModelLoaderKJ", "DiffusionModelLoader", "Diffusion Model Loader KJ",
             (Widget("model_name", "model", model="diffusion_model"),)
             + tuple(Widget(name, None) for name in ("weight_dtype", "compute_dtype", "patch_cublaslinear",
                                                      "sage_attention", "enable_fp16_accumulation")),
             (), ("unet",), optional_inputs=("extra_state_dict",), remember=False, export_only_if=_never,
             note="its weight/compute dtype, cuBLAS, SageAttention and fp16 accumulation settings are not used "
                  "(NodeForge picks the precision for the device); exported back as ComfyUI's UNETLoader"),
    ClassMap("VAELoaderKJ", "VAELoader", "VAELoader KJ",
             (Widget("vae_name", "vae", model="vae"), Widget("device", None), Widget("weight_dtype", None)), (),
             ("vae",), remember=False, export_only_if=_never,
             note="its device and weight_dtype are not used (NodeForge picks them for the device); exported back as "
                  "ComfyUI's VAELoader"),
    # A mask previewed as a grey image: ComfyUI's MaskPreview and essentials' MaskPreview+ show the mask as the image
    # Convert Mask to Image gives, so they are that node and a Preview (exported back as those two core nodes).
    ClassMap("MaskPreview", "Preview", "MaskPreview", (), (("mask", "image"),), (), remember=False,
             export_only_if=_never, through=("mask", "MaskToImage", "mask", "image")),
    ClassMap("MaskPreview+", "Preview", "🔧 Mask Preview", (), (("mask", "image"),), (), remember=False,
             export_only_if=_never, through=("mask", "MaskToImage", "mask", "image")),
    # WAS Node Suite's Text to Conditioning encodes its text input with the CLIP as CLIP Text Encode does.
    ClassMap("Text to Conditioning", "TextEncoder", "Text to Conditioning", (Widget("text"),), (("clip", "clip"),),
             ("conditioning",), remember=False, export_only_if=_never),
    # The deprecated loader with a config file: NodeForge tells a checkpoint's kind from its weights, so the
    # config is not needed; the node goes back to ComfyUI as the plain Load Checkpoint.
    ClassMap("CheckpointLoader", "CheckpointLoader", "Load Checkpoint With Config (DEPRECATED)",
             (Widget("config_name", None), Widget("ckpt_name", "checkpoint", model="checkpoint")), (),
             ("unet", "clip", "vae"), remember=False, export_only_if=_never,
             note="the config file is not used: NodeForge reads the model's kind (SD 1.x, 2.x, XL) from the "
                  "checkpoint's own weights; it exports back as Load Checkpoint (CheckpointLoaderSimple)"),
)

# ComfyUI-Video-Matting's BRIAAI Matting versions -> the name of the RMBG file (or folder) in models/rmbg
_RMBG = {"v1.4": "RMBG-1.4"}
# comfyui_segment_anything's model names (its download list, with and without the size it shows) -> the folders of
# the Hugging Face repositories transformers reads (IDEA-Research/grounding-dino-*, facebook/sam-vit-*): the same
# checkpoints, converted. SAM-HQ and MobileSAM have no transformers port: their names stay as written.
_GROUNDING_DINO = {"GroundingDINO_SwinT_OGC": "grounding-dino-tiny", "GroundingDINO_SwinT_OGC (694MB)": "grounding-dino-tiny",
                   "GroundingDINO_SwinB": "grounding-dino-base", "GroundingDINO_SwinB (938MB)": "grounding-dino-base"}
_SAM = {"sam_vit_h": "sam-vit-huge", "sam_vit_h (2.56GB)": "sam-vit-huge", "sam_vit_l": "sam-vit-large",
        "sam_vit_l (1.25GB)": "sam-vit-large", "sam_vit_b": "sam-vit-base", "sam_vit_b (375MB)": "sam-vit-base"}
ROWS += (
    ClassMap("GroundingDinoModelLoader (segment anything)", "GroundingDinoLoader", "GroundingDinoModelLoader (segment anything)",
             (Widget("model_name", "model", model="grounding_dino", load=_table_in(_GROUNDING_DINO),
                     save=_table_out(_GROUNDING_DINO)),), (), ("grounding_dino",)),
    ClassMap("SAMModelLoader (segment anything)", "SegmentAnythingLoader", "SAMModelLoader (segment anything)",
             (Widget("model_name", "model", model="sam", load=_table_in(_SAM), save=_table_out(_SAM)),), (),
             ("sam",)),
    ClassMap("GroundingDinoSAMSegment (segment anything)", "TextSegment", "GroundingDinoSAMSegment (segment anything)",
             (Widget("prompt"), Widget("threshold")),
             (("sam_model", "sam"), ("grounding_dino_model", "grounding_dino"), ("image", "image")), ("image", "mask")),
)

def _core_compile(nid: str, node: Any, workflow: Any) -> bool:
    """A TorchCompileModel ComfyUI's own node says in full: the whole model, a backend it offers, the rest default."""
    p = node.params
    return (p.get("backend", "inductor") in ("inductor", "cudagraphs") and p.get("blocks_only") is False
            and p.get("mode", "default") == "default" and not p.get("fullgraph") and not p.get("dynamic")
            and int(p.get("cache_size_limit", 64)) == 64)


# Edit models (nodes/edit_specs.py): reference latents (comfy_extras/nodes_edit_model.py, nodes_flux.py), CFGNorm
# (nodes_cfg.py). Newer CFGNorm files carry a second widget, pre_cfg; off is the behaviour NodeForge has.
def _cfg_norm_pre(values: dict[str, Any], params: dict[str, Any], notes: Notes) -> None:
    if values.get("pre_cfg") is True:
        notes.warn("pre_cfg on is not supported: NodeForge normalises after CFG (pre_cfg off), so the result "
                   "differs from ComfyUI's")


ROWS += (
    ClassMap("ReferenceLatent", "ReferenceLatent", "ReferenceLatent", (),
             (("conditioning", "conditioning"), ("latent", "latent")), ("conditioning",)),
    ClassMap("FluxKontextMultiReferenceLatentMethod", "ReferenceLatentMethod", "FluxKontextMultiReferenceLatentMethod",
             (Widget("reference_latents_method"),), (("conditioning", "conditioning"),), ("conditioning",)),
    ClassMap("FluxKontextImageScale", "FluxKontextImageScale", "FluxKontextImageScale", (), (("image", "image"),),
             ("image",)),
    ClassMap("CFGNorm", "CFGNorm", "CFGNorm", (Widget("strength"), Widget("pre_cfg", None, ui_value=False)), (("model", "unet"),),
             ("unet",), derive=_cfg_norm_pre),
    # torch.compile on the model (comfy_extras/nodes_torch_compile.py: the whole model, backend only; KJNodes'
    # TorchCompileModelQwenImage: its blocks by default, with mode, fullgraph, dynamic and the cache limit).
    ClassMap("TorchCompileModelQwenImage", "TorchCompileModel", "TorchCompileModelQwenImage",
             (Widget("backend"), Widget("fullgraph"), Widget("mode"), Widget("dynamic"),
              Widget("compile_transformer_blocks_only", "blocks_only"), Widget("dynamo_cache_size_limit", "cache_size_limit")),
             (("model", "unet"),), ("unet",), export_only_if=_not(_core_compile)),
    ClassMap("TorchCompileModel", "TorchCompileModel", "TorchCompileModel", (Widget("backend"),), (("model", "unet"),),
             ("unet",), fixed={"blocks_only": False}, export_only_if=_core_compile),
    # Easy-Use's easy cleanGpuUsed passes its input on after freeing memory (NodeForge's FreeMemory).
    ClassMap("easy cleanGpuUsed", "FreeMemory", "Clean VRAM Used", (), (("anything", "value"),), ("output",)),
    # Qwen-Image-Edit's prompt with one picture, and 2509 / 2511's with up to three (comfy_extras/nodes_qwen.py).
    ClassMap("TextEncodeQwenImageEdit", "TextEncodeQwenImageEdit", "TextEncodeQwenImageEdit", (Widget("prompt"),),
             (("clip", "clip"), ("vae", "vae"), ("image", "image")), ("conditioning",)),
    ClassMap("TextEncodeQwenImageEditPlus", "TextEncodeQwenImageEditPlus", "TextEncodeQwenImageEditPlus",
             (Widget("prompt"),), (("clip", "clip"), ("vae", "vae"), ("image1", "image1"), ("image2", "image2"),
                                   ("image3", "image3")), ("conditioning",)),
)

# scraed/LanPaint's LanPaint_KSampler (nodes/lanpaint.py): KSampler's widgets, then its Langevin iterations and prompt mode;
# its info text and image/video mode are not NodeForge params (video inpainting is not supported).
_PROMPT_MODES = ("Image First", "Prompt First")


def _lanpaint_mode(values: dict[str, Any], params: dict[str, Any], notes: Notes) -> None:
    if params.get("prompt_mode") not in _PROMPT_MODES:
        # files saved before LanPaint retired Beta and Friction (after StepSize) and EarlyStop (after PromptMode)
        # list those values too, so the prompt mode sits two places later, where Inpainting_mode is now
        shifted = values.get("Inpainting_mode")
        params["prompt_mode"] = shifted if shifted in _PROMPT_MODES else "Image First"
        if shifted not in _PROMPT_MODES:
            notes.warn("the file lists LanPaint's retired widgets (Beta, Friction, EarlyStop) where its prompt mode is "
                       "now, so the mode could not be read: Image First is used (set prompt_mode if it meant Prompt "
                       "First)")
        return
    mode = values.get("Inpainting_mode")
    if isinstance(mode, str) and "Video" in mode:
        notes.warn("Inpainting_mode video is not supported: NodeForge inpaints each frame as an image")


_LANPAINT_DEFAULTS = {**_STAGE_DEFAULTS, "lanpaint_lambda": 5.0, "lanpaint_step_size": 0.2}


def _lanpaint_simple(nid: str, node: Any, workflow: Any) -> bool:
    """LanPaint_KSampler can stand for the node: no stage, LanPaint's own lambda and step size."""
    return all(node.params.get(k, v) == v for k, v in _LANPAINT_DEFAULTS.items())


def _lanpaint_full_denoise(nid: str, node: Any, workflow: Any) -> bool:
    """LanPaint_KSamplerAdvanced has no denoise: it can stand for the node at denoise 1."""
    return float(node.params.get("denoise", 1.0)) == 1.0


_LANPAINT_TAIL = (Widget("LanPaint_NumSteps", "lanpaint_steps"),)
_LANPAINT_MODE = Widget("Inpainting_mode", None, export_default="\U0001f5bc\ufe0f Image Inpainting")
ROWS += (
    ClassMap("LanPaint_KSampler", "LanPaintSampler", "LanPaint KSampler",
             (Widget("seed", seed=True),) + _SAMPLER_WIDGETS + (Widget("denoise"),) + _LANPAINT_TAIL
             + (Widget("LanPaint_PromptMode", "prompt_mode"),
                Widget("LanPaint_Info", None, export_default="LanPaint KSampler."), _LANPAINT_MODE),
             _SAMPLER_INPUTS, ("latent",), derive=_lanpaint_mode, export_only_if=_lanpaint_simple),
    ClassMap("LanPaint_KSamplerAdvanced", "LanPaintSampler", "LanPaint KSampler (Advanced)",
             (Widget("add_noise", load=_enable_in, save=_enable_out), Widget("noise_seed", "seed", seed=True))
             + _SAMPLER_WIDGETS
             + (Widget("start_at_step"), Widget("end_at_step"),
                Widget("return_with_leftover_noise", load=_enable_in, save=_enable_out))
             + _LANPAINT_TAIL
             + (Widget("LanPaint_Lambda", "lanpaint_lambda"), Widget("LanPaint_StepSize", "lanpaint_step_size"),
                Widget("LanPaint_PromptMode", "prompt_mode"),
                Widget("LanPaint_Info", None, export_default="LanPaint KSampler Adv."), _LANPAINT_MODE),
             _SAMPLER_INPUTS, ("latent",), derive=_lanpaint_mode, export_only_if=_lanpaint_full_denoise),
    ClassMap("LanPaint_ImageEncode", "LanPaintImageEncode", "LanPaint Image Encode", (),
             (("image", "image"), ("vae", "vae"), ("mask", "mask")), ("latent",)),
    ClassMap("LanPaint_ImageDecode", "LanPaintImageDecode", "LanPaint Image Decode", (Widget("blend_overlap"),),
             (("samples", "latent"), ("vae", "vae"), ("image", "image"), ("mask", "mask")), ("image",)),
    ClassMap("LanPaint_MaskBlend", "LanPaintMaskBlend", "LanPaint Mask Blend", (Widget("blend_overlap"),),
             (("image1", "image1"), ("image2", "image2"), ("mask", "mask")), ("image",)),
    ClassMap("LanPaint_SamplerCustomAdvanced", "LanPaintSamplerCustomAdvanced", "LanPaint Sampler Custom (Advanced)",
             _LANPAINT_TAIL + (Widget("LanPaint_Lambda", "lanpaint_lambda"), Widget("LanPaint_StepSize", "lanpaint_step_size"),
                               Widget("LanPaint_PromptMode", "prompt_mode"),
                               Widget("LanPaint_Info", None, export_default="LanPaint Custom Sampler Adv.")),
             (("noise", "noise"), ("guider", "guider"), ("sampler", "sampler"), ("sigmas", "sigmas"),
              ("latent_image", "latent")), ("output", "denoised_output"), derive=_lanpaint_mode),
)

# Plain values on wires (nodes/values.py): an image's size, math expressions, text, and nodes that show a value.
_MATH_NOTE = ("its expression runs in NodeForge's own parser (numbers, a b c d, + - * / // % **, comparisons, "
              "and/or/not, x if c else y, a.width/a.height, min max abs round sum pow sqrt ceil floor log sin cos "
              "tan int float iif); anything else is refused when the graph runs")
ROWS += (
    ClassMap("GetImageSize", "GetImageSize", "Get Image Size", (), (("image", "image"),),
             ("width", "height", "batch_size")),
    ClassMap("GetImageSizeAndCount", "GetImageSize", "Get Image Size & Count", (), (("image", "image"),),
             ("", "width", "height", "batch_size"), remember=False, export_only_if=_never, passthrough=((0, "image"),),
             note="its image output is its input passed on (NodeForge wires what it fed to the image itself); "
                  "exported back as ComfyUI's Get Image Size"),
    ClassMap("ComfyMathExpression", "MathExpression", "Math Expression", (Widget("expression"),),
             tuple((f"values.{name}", name) for name in "abcd"), ("float", "int", "bool"),
             fixed={"style": "ComfyUI"}, any_type="FLOAT,INT,BOOLEAN"),
    ClassMap("MathExpression|pysssss", "MathExpression", "Math Expression 🐍", (Widget("expression"),),
             tuple((name, name) for name in "abc"), ("int", "float"), fixed={"style": "ComfyUI"}, note=_MATH_NOTE,
             any_type="INT,FLOAT,IMAGE,LATENT"),
    ClassMap("SimpleMath+", "MathExpression", "🔧 Simple Math", (Widget("value", "expression"),),
             tuple((name, name) for name in "abc"), ("int", "float"), fixed={"style": "essentials"},
             export_prefer_if=_essentials_style, note=_MATH_NOTE, any_type="*"),
    ClassMap("StringConcatenate", "JoinText", "Concatenate",
             (Widget("string_a"), Widget("string_b"), Widget("delimiter")), (), ("string",)),
    ClassMap("RegexReplace", "RegexReplace", "Regex Replace",
             (Widget("string"), Widget("regex_pattern"), Widget("replace"), Widget("case_insensitive"),
              Widget("multiline"), Widget("dotall"), Widget("count")), (), ("string",)),
    ClassMap("PreviewAny", "ShowValue", "Preview Any", (), (("source", "value"),), (), any_type="*"),
    ClassMap("ShowText|pysssss", "ShowValue", "Show Text 🐍", (), (("text", "value"),), ("",),
             passthrough=((0, "text"),), remember=False, export_only_if=_never,
             note="shows its text; what its output fed takes the text from where it came (exported back as "
                  "ComfyUI's Preview Any)"),
    ClassMap("Display Any (rgthree)", "ShowValue", "Display Any (rgthree)", (Widget("text", None, ui_value=""),),
             (("source", "value"),), (), any_type="*"),
    ClassMap("Display Int (rgthree)", "ShowValue", "Display Int (rgthree)",
             (Widget("input", None, ui_value=0), Widget("text", None, ui_value="")), (("input", "value"),), ()),
    ClassMap("SimpleCalculatorKJ", "MathExpression", "Simple Calculator KJ", (Widget("expression"),),
             tuple((f"variables.{name}", name) for name in "abcd"), ("float", "int", "bool"),
             fixed={"style": "KJNodes"}, export_prefer_if=_kj_style, any_type="INT,FLOAT,BOOLEAN"),
)


# -- ComfyUI core's and packs' image fitting, cropping and saving (nodes/geometry.py, nodes/images.py) ----------
def _output_image_in(value: Any, notes: Notes) -> Any:
    notes.warn("ComfyUI loads this picture from its output folder; NodeForge looks for it as Load Image does (beside "
               "the workflow, then in the input folders): copy it there or pick another")
    return _image_in(value, notes)


def _output_image_out(value: Any, notes: Notes) -> Any:
    return f"{value} [output]" if isinstance(value, str) and value and not _ANNOTATION.search(value) else value


def _scale_dimensions_only(values: dict[str, Any], params: dict[str, Any], notes: Notes) -> None:
    """Resize Image/Mask's other resize types list other widgets after resize_type: theirs are not NodeForge's
    width/height/crop, so they are left at their defaults and the node is refused by its resize_type."""
    if values.get("resize_type", "scale dimensions") != "scale dimensions":
        for name in ("width", "height", "crop", "scale_method"):
            params.pop(name, None)
        notes.warn(f"resize_type {str(values['resize_type'])[:40]!r} is not in NodeForge (only 'scale dimensions'); "
                   "replace the node with Scale Image By, Scale Image to Total Pixels or Scale Image to Max Dimension")


def _each(convert: Convert) -> Convert:
    """A conversion of one name applied to each name of a comma-separated list (KSamplerXYZ's); a list whose
    names all stay as they are is kept as written."""
    def go(value: Any, notes: Notes) -> Any:
        if not isinstance(value, str) or not value.strip():
            return value
        names = [part.strip() for part in value.split(",")]
        mapped = [convert(name, notes) if name else name for name in names]
        return value if mapped == names else ", ".join(mapped)
    return go


# hnmr293's ComfyUI-nodes-hnmr XYZ plot (corpus 039): the settings on a DICT wire, the sampler over value lists,
# a decode in chunks (VideoHelperSuite's VAEDecodeBatched has the same widget) and a saved grid.
ROWS += (
    ClassMap("KSamplerSetting", "SamplerSettings", "KSamplerSetting",
             (Widget("seed", seed=True),) + _SAMPLER_WIDGETS + (Widget("denoise"),), _SAMPLER_INPUTS, ("setting",)),
    ClassMap("KSamplerXYZ", "SamplerXYZ", "KSamplerXYZ",
             (Widget("seed", "seeds"), Widget("steps"), Widget("cfg", "cfgs"),
              Widget("sampler_name", "samplers", load=_each(_sampler_in), save=_each(_sampler_out)),
              Widget("scheduler", "schedules", load=_each(_schedule_in), save=_each(_schedule_out))),
             (("setting", "setting"), ("model", "unet")), ("latent",)),
    # hnmr's VAEDecodeBatched calls VideoHelperSuite's per_batch batch_size (an API prompt names it).
    ClassMap("VAEDecodeBatched", "VAEDecodeBatched", "VAEDecodeBatched",
             (Widget("per_batch", aliases=("batch_size",)),), (("samples", "latent"), ("vae", "vae")), ("image",)),
    ClassMap("GridImage", "SaveImageGrid", "GridImage",
             (Widget("filename_prefix", "prefix", load=_prefix_in), Widget("x", "columns"), Widget("gap")),
             (("images", "image"),), ()),
)


def _light_sizes(values: dict[str, Any], params: dict[str, Any], notes: Notes) -> None:
    """Files saved by an older Simple Light Source hold a colour where width is now (their widgets were
    ordered otherwise): such a width or height is left at its default, with a warning."""
    for name in ("width", "height", "batch_size"):
        if name in params and (not isinstance(params[name], (int, float)) or isinstance(params[name], bool)):
            notes.warn(f"its {name} {str(params.pop(name))[:20]!r} is no number (a file from an older IC-Light "
                       "whose widgets were in another order); NodeForge's default is used: check width and height")


ROWS += (
    ClassMap("ResizeAndPadImage", "ResizeAndPadImage", "Resize And Pad Image",
             (Widget("target_width"), Widget("target_height"), Widget("padding_color"), Widget("interpolation")),
             (("image", "image"),), ("image",)),
    ClassMap("ImageCrop+", "ImageCropAtPosition", "🔧 Image Crop",
             (Widget("width"), Widget("height"), Widget("position"), Widget("x_offset"), Widget("y_offset")),
             (("image", "image"),), ("image", "x", "y")),
    ClassMap("ResizeImageMaskNode", "ResizeImageMask", "Resize Image/Mask",
             (Widget("resize_type"), Widget("resize_type.width", "width"), Widget("resize_type.height", "height"),
              Widget("resize_type.crop", "crop"), Widget("scale_method")),
             (("input", "input"),), ("resized",), derive=_scale_dimensions_only, any_type="IMAGE,MASK"),
    ClassMap("SaveAnimatedWEBP", "SaveAnimatedWEBP", "SaveAnimatedWEBP",
             (Widget("filename_prefix", "prefix", load=_prefix_in), Widget("fps"), Widget("lossless"),
              Widget("quality"), Widget("method")), (("images", "images"),), ()),
    ClassMap("LightSource", "LightSource", "Simple Light Source",
             (Widget("light_position"), Widget("multiplier"), Widget("start_color"), Widget("end_color"),
              Widget("width"), Widget("height"), Widget("batch_size")), (("prev_image", "prev_image"),), ("image",),
             derive=_light_sizes),
    # kijai's ComfyUI-IC-Light (nodes/iclight.py); the IC-Light file lives in ComfyUI's unet folder
    ClassMap("LoadAndApplyICLightUnet", "LoadAndApplyICLightUnet", "Load And Apply IC-Light",
             (Widget("model_path", "iclight", model="diffusion_model"),), (("model", "unet"),), ("unet",)),
    ClassMap("ICLightConditioning", "ICLightConditioning", "IC-Light Conditioning", (Widget("multiplier"),),
             (("positive", "positive"), ("negative", "negative"), ("vae", "vae"), ("foreground", "foreground"),
              ("opt_background", "opt_background")), ("positive", "negative", "empty_latent")),
    # ComfyUI-Video-Matting's BRIAAI Matting (nodes/background_removal.py): its only version is RMBG-1.4, whose file
    # NodeForge reads from models/rmbg; it runs in float32 and by picture (fp16 and batch_size only kept on export).
    ClassMap("BRIAAI Matting", "RemoveBackground", "BRIAAI Matting",
             (Widget("version", "model", model="background_removal", load=_table_in(_RMBG), save=_table_out(_RMBG)),
              Widget("fp16", None, export_default=True), Widget("bg_color"),
              Widget("batch_size", None, export_default=4)),
             (("video_frames", "image"),), ("image", "mask")),
    ClassMap("ComfySwitchNode", "Switch", "Switch", (Widget("switch"),),
             (("on_false", "on_false"), ("on_true", "on_true")), ("output",)),
    # Load Image (from Outputs): Load Image on ComfyUI's output folder; the editor adds a toggle and a refresh
    # button after the picture (no API input).
    ClassMap("LoadImageOutput", "LoadImage", "Load Image (from Outputs)",
             (Widget("image", "path", model="image", load=_output_image_in, save=_output_image_out),
              Widget("auto_refresh", None, ui_value=False), Widget("refresh", None, ui_value="refresh"),
              Widget("upload", None, ui_value="image")), (), ("image", "mask"), export_prefer_if=_never),
)

BY_COMFY: dict[str, ClassMap] = {row.comfy: row for row in ROWS}

# ComfyUI nodes that only exist in its editor or hold a constant: folded away on import.
REROUTE = "Reroute"
REROUTES = (REROUTE, "Reroute (rgthree)")   # rgthree's reroute is the same wire
# rgthree's Power Lora Loader applies a list of LoRAs: it becomes a chain of NodeForge LoRA nodes.
POWER_LORA = "Power Lora Loader (rgthree)"
# rgthree's Any Switch gives the first of its inputs that has a value: the first whose node is not muted.
ANY_SWITCH = "Any Switch (rgthree)"
# Impact Pack's Switch (Any) gives its input number `select` (from 1): with a constant select and only its value
# output used, it is the wire from that input (its label and index outputs used: it stays a placeholder).
IMPACT_SWITCH = "ImpactSwitch"
PRIMITIVE = "PrimitiveNode"
# ComfyUI-KJNodes' named wires (editor-only, never in an API prompt): a SetNode takes a value and a name,
# each GetNode of that name gives it out. Folded into direct wires as reroutes are.
SET_NODE, GET_NODE = "SetNode", "GetNode"
NOTES = ("Note", "MarkdownNote")
# Constant nodes (comfy_extras) whose one widget is the value they output.
# Packs' constant nodes hold one too: KJNodes' INTConstant and FloatConstant, Easy-Use's easy int and easy
# float, ComfyUI-Logic's Int-🔬 and String-🔬, and rgthree's Seed (a negative seed is its "new seed each run").
RGTHREE_SEED = "Seed (rgthree)"
# Text ones too: KJNodes' StringConstant and SeargeSDXL's Prompt text give their one widget as it is.
CONSTANTS = ("PrimitiveInt", "PrimitiveFloat", "PrimitiveString", "PrimitiveStringMultiline",
             "PrimitiveBoolean", "INTConstant", "FloatConstant", "easy int", "easy float", "Int-🔬", "String-🔬",
             RGTHREE_SEED, "StringConstant", "SeargePromptText")


def _kj_multiline(values: dict[str, Any], slot: int, notes: Notes) -> Any:
    """KJNodes' String Constant Multiline: with strip_newlines each line loses its newline and the lines are joined
    by newlines again (so only a last newline goes); without, each line's own newline is kept and one more added."""
    strip = values.get("strip_newlines", True)
    lines = [line.replace("\n", "") if strip else line for line in io.StringIO(str(values.get("string", "")))]
    return "\n".join(lines)


_WAS_TOKEN = re.compile(r"\[[A-Za-z_]+(\([^)]*\))?\]")


def _was_tokens(text: str, notes: Notes) -> str:
    if _WAS_TOKEN.search(text):
        notes.warn(f"WAS replaces [name] tokens ([time], [hostname], [cuda_device], [cuda_name] and those set in its "
                   f"config) when the graph runs; NodeForge keeps {_WAS_TOKEN.search(text).group(0)!r} as written")
    return text


def _was_multiline(values: dict[str, Any], slot: int, notes: Notes) -> Any:
    """WAS Node Suite's Text Multiline: lines starting with # left out, the others joined by newlines."""
    lines = [line.replace("\n", "") for line in io.StringIO(str(values.get("text", "")))
             if not line.strip().startswith("#")]
    return _was_tokens("\n".join(lines), notes)


def _was_strings(values: dict[str, Any], slot: int, notes: Notes) -> Any:
    """WAS Node Suite's Text String: four texts, one per output."""
    return _was_tokens(str(values.get(("text", "text_b", "text_c", "text_d")[min(slot, 3)], "")), notes)


def _seed_and_next(values: dict[str, Any], slot: int, notes: Notes) -> Any:
    """RES4LYF's Seed Generator: its seed, and the seed + 1 (a UI file saves its control_after_generate too)."""
    seed = values.get("seed", 0)
    if values.get("control_after_generate") in ("increment", "decrement", "randomize"):
        notes.warn(f"its seed is set to {values['control_after_generate']} after each run in ComfyUI; NodeForge "
                   f"keeps {seed} (and {seed} + 1) in the nodes it feeds: change them there")
    return seed + slot if isinstance(seed, int) and not isinstance(seed, bool) else seed


_PRESET_SIZE = re.compile(r"(\d+)\s*x\s*(\d+)")


def _resolution_preset(values: dict[str, Any], slot: int, notes: Notes) -> Any:
    """SDXLResolutionPresets (two packs of that name): the preset's W x H, written "Photo (1216x832)" with an
    aspect (Vertical swaps the sides) or "832x1216 | 13:19"; output 0 the width, 1 the height."""
    preset = str(values.get("resolution", "1024x1024"))
    found = _PRESET_SIZE.search(preset)
    if found is None:
        notes.warn(f"resolution {preset[:60]!r} names no size (WxH); 1024 x 1024 is used")
        width, height = 1024, 1024
    else:
        width, height = int(found.group(1)), int(found.group(2))
    if values.get("aspect") == "Vertical":
        width, height = height, width
    return (width, height)[min(slot, 1)]


def _custom_combo(values: dict[str, Any], slot: int, notes: Notes) -> Any:
    """ComfyUI's Custom Combo: the option chosen (STRING) and its index (INDEX), which the editor keeps in its
    index widget beside the options the user wrote."""
    index = values.get("index", 0)
    return values.get("choice", "") if slot == 0 else (index if isinstance(index, int) else 0)


# Packs' constants whose outputs are worked out from their widgets: class -> (widget names in a UI file's order,
# f(values by name, output slot, notes) -> the output's value).
COMPUTED: dict[str, tuple[tuple[str, ...], Callable[[dict[str, Any], int, Notes], Any]]] = {
    "StringConstantMultiline": (("string", "strip_newlines"), _kj_multiline),
    "Text Multiline": (("text",), _was_multiline),
    "Text String": (("text", "text_b", "text_c", "text_d"), _was_strings),
    "SeedGenerator": (("seed", "control_after_generate"), _seed_and_next),
    "SDXLResolutionPresets": (("resolution", "aspect"), _resolution_preset),
    "CustomCombo": (("choice", "index"), _custom_combo),
}
VALUE_NODES = CONSTANTS + tuple(COMPUTED)
# WAS Node Suite's Text to Console prints its text in ComfyUI's console and passes it on: a wire here.
TEXT_PRINTS = ("Text to Console",)
# pysssss' Preset Text (ComfyUI-Custom-Scripts; an editor-only node) writes its preset's text into the widget it
# feeds when the graph is queued. The presets live in the browser that made the file, so the text is the one
# that widget saved: the consumer keeps its own value.
PRESET_TEXTS = ("PresetText", "PresetText|pysssss")
# ComfyUI's StringConcatenate (string_a + delimiter + string_b): where both strings are constants (its own widgets,
# or linked constants) it folds into the value it feeds; otherwise it is NodeForge's Join Text (its row above).
STRING_JOIN = "StringConcatenate"
STRING_JOIN_WIDGETS = ("string_a", "string_b", "delimiter")
# Packs' editor-only nodes, which ComfyUI never runs: rgthree's Label and LG's note show their title as text on the
# canvas (they become notes); rgthree's group switch panels and bookmarks only act in the editor (left out: the
# nodes keep the modes the file saved).
LABELS = ("Label (rgthree)", "LG_Note")
EDITOR_PANELS = ("Fast Groups Muter (rgthree)", "Fast Groups Bypasser (rgthree)", "Bookmark (rgthree)")
# Packs' nodes that only read something and give it out (never output nodes): ComfyUI runs a node only on the way to
# an output, so one whose outputs feed nothing never runs. Left out then, with a line; linked, it stays a placeholder.
IDLE_SOURCES = ("Load Text File", "EZLoadImgFromUrlNode")   # WAS Node Suite's text file; ComfyUI-EZ-AF-Nodes' image from a URL
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")
# Inputs some ComfyUI versions write for an editor-only widget (Load Image's upload button): nothing to keep.
EDITOR_ONLY_INPUTS = frozenset({"upload", "choose file to upload"})


def rows_for(nodeforge_type: str) -> list[ClassMap]:
    return [row for row in ROWS if row.nodeforge == nodeforge_type]


def power_loras(values: Any) -> list[tuple[str, float, float]]:
    """The LoRAs a Power Lora Loader applies, in order: (name, model strength, CLIP strength) of each
    entry that is on; the CLIP strength is rgthree's strengthTwo where the file has one, else the same."""
    items = values.values() if isinstance(values, dict) else (values or [])
    out = []
    for item in items:
        name = item.get("lora") if isinstance(item, dict) else None
        if item and isinstance(item, dict) and item.get("on") and isinstance(name, str) and name not in ("", "None"):
            strength = float(item.get("strength", 1.0))
            two = item.get("strengthTwo")
            out.append((name, strength, strength if two is None else float(two)))
    return out
