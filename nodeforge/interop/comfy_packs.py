"""What a ComfyUI class NodeForge does not map is: a well-known custom node pack's (and which
NodeForge node does the same), or a ComfyUI core node not supported yet. Read by the importer to
fill a placeholder's record, from which `nodeforge.core.placeholder.placeholder_message` speaks.
"""
from __future__ import annotations

# Class names of the common packs that no prefix or suffix rule below catches.
_EXACT = {
    "Image Resize": "WAS Node Suite", "Image Save": "WAS Node Suite", "Text Concatenate": "WAS Node Suite",
    "Text Multiline": "WAS Node Suite", "Number Counter": "WAS Node Suite", "Image Blend": "WAS Node Suite",
    "FaceDetailer": "ComfyUI-Impact-Pack", "SAMLoader": "ComfyUI-Impact-Pack",
    "UltralyticsDetectorProvider": "ComfyUI-Impact-Pack (Subpack)", "DetailerForEach": "ComfyUI-Impact-Pack",
    "Power Lora Loader (rgthree)": "rgthree-comfy", "Reroute (rgthree)": "rgthree-comfy",
    "Efficient Loader": "efficiency-nodes-comfyui", "Eff. Loader SDXL": "efficiency-nodes-comfyui",
    "GetNode": "ComfyUI-KJNodes", "SetNode": "ComfyUI-KJNodes", "ImageResizeKJ": "ComfyUI-KJNodes",
    "ColorMatch": "ComfyUI-KJNodes", "ConditioningMultiCombine": "ComfyUI-KJNodes",
}
# (prefix or suffix, pack): the naming each pack keeps to.
_SUFFIXES = (("(rgthree)", "rgthree-comfy"), ("(WAS)", "WAS Node Suite"), ("//Inspire", "ComfyUI-Inspire-Pack"),
             ("(Efficient)", "efficiency-nodes-comfyui"), ("Preprocessor", "comfyui_controlnet_aux"),
             ("KJ", "ComfyUI-KJNodes"))
_PREFIXES = (("Impact", "ComfyUI-Impact-Pack"), ("IPAdapter", "ComfyUI_IPAdapter_plus"),
             ("VHS_", "ComfyUI-VideoHelperSuite"), ("CR ", "ComfyUI_Comfyroll_CustomNodes"),
             ("Inspire", "ComfyUI-Inspire-Pack"))
# The NodeForge node that does the same operation (the user replaces the placeholder with it).
EQUIVALENTS: dict[str, str] = {}
# ComfyUI's own classes that NodeForge does not map yet (the ones shared files use most).
CORE = frozenset({
    "LatentInterpolate",
    "PerpNeg", "StyleModelLoader", "StyleModelApply",
    "GLIGENLoader", "GLIGENTextBoxApply", "InpaintModelConditioning",
    "PatchModelAddDownscale", "ImageFromBatch", "RepeatImageBatch",
    "ModelMergeSimple", "CLIPMergeSimple", "CheckpointSave",
})


# Met in the shared files of the issue-30 corpus (benchmarks/comfy_corpus/manifest.json): more packs by
# their naming, ComfyUI's own video and edit-model classes, and two more resize nodes ImageScale does.
_EXACT.update({
    "ImageResizeKJv2": "ComfyUI-KJNodes", "GetImageSizeAndCount": "ComfyUI-KJNodes", "INTConstant": "ComfyUI-KJNodes",
    "FloatConstant": "ComfyUI-KJNodes", "StringConstant": "ComfyUI-KJNodes", "ImageConcatMulti": "ComfyUI-KJNodes",
    "StringConstantMultiline": "ComfyUI-KJNodes", "WidgetToString": "ComfyUI-KJNodes",
    "Text to Conditioning": "WAS Node Suite", "Text to Console": "WAS Node Suite",
    "FaceDetailerPipe": "ComfyUI-Impact-Pack", "ToDetailerPipe": "ComfyUI-Impact-Pack",
    "EditDetailerPipe": "ComfyUI-Impact-Pack", "MaskToSEGS": "ComfyUI-Impact-Pack",
    "Image Saver": "comfy-image-saver", "UltimateSDUpscale": "ComfyUI_UltimateSDUpscale",
"AIO_Preprocessor": "comfyui_controlnet_aux",
    "PrepImageForClipVision": "ComfyUI_IPAdapter_plus",
})
_SUFFIXES += (("|pysssss", "ComfyUI-Custom-Scripts"), ("(LoraManager)", "ComfyUI-Lora-Manager"),
              ("(Image Saver)", "comfy-image-saver"), ("GGUF", "ComfyUI-GGUF"), ("(mtb)", "comfy_mtb"),
              ("(segment anything)", "comfyui_segment_anything"), ("+", "ComfyUI_essentials"))
_PREFIXES += (("easy ", "ComfyUI-Easy-Use"), ("WanVideo", "ComfyUI-WanVideoWrapper"), ("ADE_", "ComfyUI-AnimateDiff-Evolved"),
              ("ACN_", "ComfyUI-Advanced-ControlNet"), ("SeedVR2", "ComfyUI-SeedVR2_VideoUpscaler"),
              ("Anything Everywhere", "cg-use-everywhere"), ("Searge", "SeargeSDXL"))
CORE = CORE | frozenset({
    "LoadAudio",
    "CFGZeroStar", "Mahiro", "Epsilon Scaling", "Morphology",
    "CreateVideo", "SaveVideo", "LoadVideo", "GetVideoComponents", "EmptyHunyuanLatentVideo", "WanImageToVideo",
    "WanVaceToVideo", "TrimVideoLatent", "ImageStitch",
})
# Met in the corpus with ComfyUI's own record of their pack (properties.cnr_id / aux_id) or known by their
# pack's naming, for files (API prompts, older editors) that record none.
_EXACT.update({name: "WAS Node Suite" for name in (
    "Text String", "Text Find and Replace Input", "Text Random Line", "Text String Truncate", "Load Text File",
    "Number to Text", "Random Number")})
_EXACT.update({name: "ComfyUI-KJNodes" for name in (
    "JoinStringMulti", "ImageBatchMulti", "ImageConcatFromBatch", "SomethingToString", "AddLabel", "BlockifyMask",
    "DrawMaskOnImage", "GrowMaskWithBlur", "ReplaceImagesInBatch")})
_EXACT.update({name: "ComfyUI-FluxTrainer" for name in (
    "InitFluxLoRATraining", "OptimizerConfig", "TrainDatasetAdd", "TrainDatasetGeneralConfig", "UploadToHuggingFace",
    "VisualizeLoss")})
# hnmr293's pack besides its XYZ plot (KSamplerSetting, KSamplerXYZ, VAEDecodeBatched, GridImage: NodeForge nodes).
_EXACT.update({name: "ComfyUI-nodes-hnmr" for name in (
    "KSamplerOverrided", "VAEEncodeBatched", "RandomLatentImage", "StateDictLoader", "Dict2Model", "StateDictMerger",
    "StateDictMergerBlockWeighted", "CLIPTextEncode2")})
_EXACT.update({
    "CV2InpaintTexture": "ComfyUI-Hunyuan3DWrapper", "DownloadAndLoadHy3DDelightModel": "ComfyUI-Hunyuan3DWrapper",
    "DownloadAndLoadHy3DPaintModel": "ComfyUI-Hunyuan3DWrapper",
    "ControlNetLoaderAdvanced": "ComfyUI-Advanced-ControlNet", "OneButtonPrompt": "OneButtonPrompt",
    "GridAnnotation": "images-grid-comfy-plugin", "ImagesGridByRows": "images-grid-comfy-plugin",
    "AttentionCouplePPM": "ComfyUI-ppm", "CLIPNegPip": "ComfyUI-ppm",
    "PresetText": "ComfyUI-Custom-Scripts",
})
_SUFFIXES += ((" _O", "ComfyUI-QualityOfLifeSuit_Omar92"),)
_PREFIXES += (("FluxTrain", "ComfyUI-FluxTrainer"), ("Hy3D", "ComfyUI-Hunyuan3DWrapper"), ("FL_", "ComfyUI_Fill-Nodes"))
CORE = CORE | frozenset({
    "FlipSigmas",
    "LatentUpscaleModelLoader",
    "SaveWEBM", "SaveAudio", "SaveAudioMP3", "TrimAudioDuration",
    "VAEDecodeAudio", "VAEEncodeAudio", "LTXAVTextEncoderLoader", "EmptyAceStep1.5LatentAudio",
    "TextEncodeAceStepAudio1.5", "ReferenceTimbreAudio",
})
# ComfyUI's old group nodes (before subgraphs): "workflow/NAME" or "workflow>NAME", defined in the file's
# extra.groupNodes; NodeForge does not expand them yet.
GROUP_NODE_PREFIXES = ("workflow/", "workflow>")
# Families of ComfyUI core classes, by the prefix their module gives them (a pack's suffix still wins).
CORE_PREFIXES = ("LTXV", "EmptyLTXV", "StableCascade_")


CORE_ID = "comfy-core"      # the registry id ComfyUI's editor records for its own classes


def _squeezed(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def _same_pack(known: str, *recorded: str | None) -> bool:
    """Whether a pack the tables name is the one the file recorded (registry ids are lower-case spellings of the
    repository's name, sometimes without its ComfyUI- prefix; aux ids are owner/name)."""
    mine = _squeezed(known)
    names = [_squeezed(r.rsplit("/", 1)[-1]) for r in recorded if r]
    return any(name and (name in mine or mine in name) for name in names)


def _pack_names() -> set[str]:
    return set(_EXACT.values()) | {pack for _, pack in _SUFFIXES + _PREFIXES}


def pack_of(class_type: str) -> str | None:
    """The well-known custom node pack a class comes from, or None."""
    if class_type in _EXACT:
        return _EXACT[class_type]
    for suffix, pack in _SUFFIXES:
        if class_type.endswith(suffix):
            return pack
    for prefix, pack in _PREFIXES:
        if class_type.startswith(prefix):
            return pack
    return None


def describe(class_type: str, cnr_id: str | None = None, aux_id: str | None = None) -> dict[str, str | bool]:
    """What a placeholder's record says of its class: {"group": True} for an old group node,
    {"core": True}, or its "pack" and the NodeForge "equivalent" where known (each only when known).

    `cnr_id` / `aux_id` are what ComfyUI's editor recorded in the file for the node (the registry id, or
    "comfy-core"; the pack's GitHub owner/name): they win over the name tables, which only guess from the
    class name; the tables' spelling of a pack is kept where it is the same pack."""
    out: dict[str, str | bool] = {}
    pack = pack_of(class_type)
    recorded = aux_id or cnr_id if cnr_id != CORE_ID else None
    if recorded is not None and (pack is None or not _same_pack(pack, aux_id, cnr_id)):
        named = {_squeezed(name): name for name in _pack_names()}
        pack = named.get(_squeezed(cnr_id or ""), recorded)     # the tables' spelling of a registry id
    if class_type.startswith(GROUP_NODE_PREFIXES):
        out["group"] = True
    elif cnr_id == CORE_ID or (recorded is None and (class_type in CORE or (pack is None and
                                                                            class_type.startswith(CORE_PREFIXES)))):
        out["core"] = True
    elif pack is not None:
        out["pack"] = pack
    if class_type in EQUIVALENTS:
        out["equivalent"] = EQUIVALENTS[class_type]
    return out
