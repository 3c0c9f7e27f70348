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
EQUIVALENTS = {
    "KSampler //Inspire": "UNetDenoise", "KSampler (Efficient)": "UNetDenoise", "KSampler Adv. (Efficient)": "UNetDenoise",
    "Image Resize": "ImageScale", "Latent Upscale by Factor (WAS)": "LatentUpscaleBy",
    "CannyEdgePreprocessor": "ImageToEdges", "Power Lora Loader (rgthree)": "LoRALoader",
    "Reroute (rgthree)": "a reroute dot", "Image Comparer (rgthree)": "Preview", "VHS_VideoCombine": "SaveImage",
    "ImageResizeKJ": "ImageScale",
}
# ComfyUI's own classes that NodeForge does not map yet (the ones shared files use most).
CORE = frozenset({
    "SamplerCustom", "SamplerCustomAdvanced", "KSamplerSelect", "BasicScheduler", "BasicGuider", "CFGGuider",
    "RandomNoise", "AlignYourStepsScheduler", "KarrasScheduler", "SplitSigmas",
    "UNETLoader", "CLIPLoader", "DualCLIPLoader", "TripleCLIPLoader", "FluxGuidance", "LatentInterpolate",
    "CLIPVisionLoader", "CLIPVisionEncode", "unCLIPConditioning", "unCLIPCheckpointLoader", "SaveLatent",
    "LoadLatent", "FreeU", "FreeU_V2", "PerpNeg", "SelfAttentionGuidance", "StyleModelLoader", "StyleModelApply",
    "GLIGENLoader", "GLIGENTextBoxApply", "InpaintModelConditioning", "DifferentialDiffusion", "RescaleCFG",
    "ModelSamplingDiscrete", "PatchModelAddDownscale", "SaveAnimatedWEBP", "ImageFromBatch", "RepeatImageBatch",
    "ModelMergeSimple", "CLIPMergeSimple", "CheckpointSave",
})


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


def describe(class_type: str) -> dict[str, str | bool]:
    """What a placeholder's record says of its class: {"core": True}, or its "pack" and the NodeForge
    "equivalent" where known (each only when known)."""
    out: dict[str, str | bool] = {}
    if class_type in CORE:
        out["core"] = True
    else:
        pack = pack_of(class_type)
        if pack is not None:
            out["pack"] = pack
    if class_type in EQUIVALENTS:
        out["equivalent"] = EQUIVALENTS[class_type]
    return out
