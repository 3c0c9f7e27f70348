"""What the all-nodes fixtures (one graph in ComfyUI's three forms) become in NodeForge."""
from __future__ import annotations



def unet_params(registry, sampler, schedule, **params):
    return dict(params, sampler=sampler, schedule=schedule)


def all_nodes(registry):
    """node id -> (type, params, inputs, title) for every node of all-nodes-*.json."""
    stages = {"add_noise": True, "start_at_step": 20, "end_at_step": 10000, "return_with_leftover_noise": False}
    return {
        "1": ("CheckpointLoader", {"checkpoint": "sd15/v1-5-pruned-emaonly.safetensors"}, {}, None),
        "2": ("LoRALoader", {"lora": "detail-tweaker.safetensors", "strength_unet": 0.8, "strength_clip": 0.6},
              {"unet": ("1", "unet"), "clip": ("1", "clip")}, None),
        # LoraLoaderModelOnly: NodeForge's LoRA node takes the model's own CLIP at strength 0.
        "3": ("LoRALoader", {"lora": "style.safetensors", "strength_unet": 0.5, "strength_clip": 0.0},
              {"unet": ("2", "unet"), "clip": ("2", "clip")}, None),
        "4": ("CLIPSetLastLayer", {"stop_at_layer": -2}, {"clip": ("2", "clip")}, None),
        "5": ("TextEncoder", {"text": "a (red:1.2) circle, embedding:goodstyle"}, {"clip": ("4", "clip")}, "positive"),
        "6": ("TextEncoder", {"text": "blurry"}, {"clip": ("4", "clip")}, "negative"),
        "7": ("EmptyLatent", {"width": 48, "height": 48, "batch_size": 1}, {}, None),
        "8": ("UNetDenoise", unet_params(registry, "dpmpp_2m", "karras", seed=42, steps=20, cfg=5.5, denoise=1),
              {"unet": ("3", "unet"), "positive": ("5", "conditioning"), "negative": ("6", "conditioning"),
               "latent": ("7", "latent")}, "first pass"),
        "9": ("LatentUpscale", {"upscale_method": "bilinear", "width": 64, "height": 64, "crop": "disabled"},
              {"latent": ("8", "latent")}, None),
        "10": ("UNetDenoise", unet_params(registry, "euler_ancestral", "normal", seed=43, steps=25, cfg=6, **stages),
               {"unet": ("3", "unet"), "positive": ("5", "conditioning"), "negative": ("6", "conditioning"),
                "latent": ("9", "latent")}, None),
        "11": ("LatentUpscaleBy", {"upscale_method": "nearest-exact", "scale_by": 1.5}, {"latent": ("10", "latent")},
               None),
        "12": ("VAEDecode", {}, {"latent": ("11", "latent"), "vae": ("1", "vae")}, None),
        "13": ("SaveImage", {"prefix": "hires"}, {"image": ("12", "image")}, None),
        "14": ("Preview", {}, {"image": ("12", "image")}, None),
        "15": ("LoadImage", {"path": "photo.png"}, {}, None),
        "16": ("ImageScale", {"upscale_method": "lanczos", "width": 64, "height": 64, "crop": "center"},
               {"image": ("15", "image")}, None),
        "17": ("ImageScaleBy", {"upscale_method": "bicubic", "scale_by": 0.5}, {"image": ("16", "image")}, None),
        "18": ("ImagePadForOutpaint", {"left": 0, "top": 0, "right": 32, "bottom": 0, "feathering": 16},
               {"image": ("17", "image")}, None),
        "19": ("VAEEncode", {}, {"image": ("18", "image"), "vae": ("1", "vae")}, None),
        "20": ("SetLatentMask", {}, {"latent": ("19", "latent"), "mask": ("18", "mask")}, None),
        "21": ("VAEEncodeForInpaint", {"grow_mask_by": 6},
               {"image": ("15", "image"), "vae": ("1", "vae"), "mask": ("15", "mask")}, None),
        # The seed comes from a PrimitiveNode (1234) in the UI files, inline in the API prompt.
        "22": ("UNetDenoise", unet_params(registry, "euler_ancestral", "normal", seed=1234, steps=10, cfg=7,
                                          denoise=0.75),
               {"unet": ("1", "unet"), "positive": ("5", "conditioning"), "negative": ("6", "conditioning"),
                "latent": ("20", "latent")}, "inpaint pass"),
        "23": ("VAEDecode", {}, {"latent": ("22", "latent"), "vae": ("34", "vae")}, None),
        "24": ("SaveImage", {"prefix": "inpaint"}, {"image": ("23", "image")}, None),
        "25": ("comfyui.Placeholder", {"class_type": "FooSharpen", "widgets": {"radius": 3, "mode": "strong"}},
               {"image": ("23", "image")}, None),
        "26": ("Preview", {}, {"image": ("25", "output_0")}, None),
        "32": ("ConditioningSetArea", {"width": 32, "height": 64, "x": 0, "y": 0, "strength": 1.5},
               {"conditioning": ("5", "conditioning")}, None),
        "33": ("ConditioningCombine", {}, {"conditioning_1": ("32", "conditioning"),
                                           "conditioning_2": ("6", "conditioning")}, None),
        "34": ("VAELoader", {"vae": "vae-ft-mse-840000.safetensors"}, {}, None),
    }
