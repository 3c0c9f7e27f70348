"""Qwen-Image text encoding, as QwenImagePipeline and QwenImageEditPlusPipeline do it.

The prompt is put in the model's chat template (a system turn that says what to describe, the prompt as
the user's turn, the assistant's turn opened), read from Qwen2.5-VL's last hidden state, and the template's
tokens before the prompt are dropped (the pipelines' `prompt_template_encode_start_idx`, 34 and 64 in
Qwen's tokenizer: here counted with the CLIP's own tokenizer, as ComfyUI finds the second <|im_start|>
and its "user\\n"). The edit models' prompt (TextEncodeQwenImageEditPlus) starts with
"Picture N: <|vision_start|><|image_pad|><|vision_end|>" per reference picture and uses the edit
template (the first edit model's, TextEncodeQwenImageEdit, has its one picture's tokens in the template); each <|image_pad|> becomes one token per 2x2 group of the picture's 14-pixel patches, which
Qwen2.5-VL's vision tower fills with what it sees (Qwen2-VL's image processor: sides rounded to 28,
CLIP's mean and deviation). The text is read as written: no (word:1.2) weights or embedding:NAME.
Unlike the pipelines' default max_sequence_length of 512, the prompt is not cut after the template
(ComfyUI does not cut it either); the tokenizer's limit is 1024 tokens after the template.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from ..placement import device_of

MAX_TOKENS = 1024        # QwenImagePipeline's tokenizer_max_length (after the template's prefix)
TXT2IMG_TEMPLATE = ("<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, quantity, "
                    "text, spatial relationships of the objects and background:<|im_end|>\n<|im_start|>user\n{}"
                    "<|im_end|>\n<|im_start|>assistant\n")
EDIT_TEMPLATE = ("<|im_start|>system\nDescribe the key features of the input image (color, shape, size, texture, "
                 "objects, background), then explain how the user's text instruction should alter or modify the "
                 "image. Generate a new image that meets the user's requirements while maintaining consistency with "
                 "the original input where appropriate.<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n"
                 "<|im_start|>assistant\n")
# Qwen-Image-Edit's first model (TextEncodeQwenImageEdit, QwenImageEditPipeline): one picture, before the prompt.
EDIT_ONE_TEMPLATE = EDIT_TEMPLATE.replace("user\n{}", "user\n<|vision_start|><|image_pad|><|vision_end|>{}")
PICTURE = "Picture {}: <|vision_start|><|image_pad|><|vision_end|>"
USER_TURN = "<|im_start|>user\n"
IMAGE_PAD = "<|image_pad|>"
# Qwen2.5-VL's preprocessor_config: min_pixels 56 x 56, max_pixels 28 x 28 x 16384.
MIN_PIXELS, MAX_PIXELS = 56 * 56, 28 * 28 * 16384


def prefix_tokens(tokenizer: Any, template: str) -> int:
    """How many tokens the template puts before the user's turn's content (dropped from the output)."""
    return len(tokenizer(template[:template.index(USER_TURN) + len(USER_TURN)]).input_ids)


def image_processor() -> Any:
    from transformers import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(size={"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS})


def vision_inputs(pictures: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """pixel_values and image_grid_thw of IMAGE tensors ([1, H, W, 3] in 0..1), as Qwen2-VL's processor makes them
    from the pictures as 8-bit images."""
    from PIL import Image

    images = [Image.fromarray((p[0, :, :, :3].clamp(0, 1) * 255).round().to(torch.uint8).numpy()) for p in pictures]
    out = image_processor()(images=images, return_tensors="pt")
    return {"pixel_values": out["pixel_values"], "image_grid_thw": out["image_grid_thw"]}


def _expand_pads(text: str, grids: torch.Tensor, merge: int = 2) -> str:
    """Each <|image_pad|> as many times as its picture has 2x2 groups of patches (Qwen2-VL's processor)."""
    parts = text.split(IMAGE_PAD)
    out = parts[0]
    for grid, rest in zip(grids, parts[1:]):
        out += IMAGE_PAD * (int(grid.prod()) // merge ** 2) + rest
    return out


def encode_qwenimage(clip: Any, text: str, pictures: Sequence[torch.Tensor] = (), numbered: bool = True) -> dict[str, Any]:
    """One CONDITIONING entry: {"embeds": [1, tokens, width], "family": "qwenimage"}; `pictures` (the edit
    models' references, already at the size the vision tower reads) go in the prompt, as "Picture N" (Edit
    Plus) or, not `numbered`, one picture in the template (the first Edit model)."""
    template = (EDIT_TEMPLATE if numbered else EDIT_ONE_TEMPLATE) if pictures else TXT2IMG_TEMPLATE
    prompt = "".join(PICTURE.format(i + 1) for i in range(len(pictures) if numbered else 0)) + text
    drop = prefix_tokens(clip.tokenizer, template)
    encoder = clip.text_encoder
    device = device_of(encoder)   # its execution device when offloaded, where the inputs must be
    extra: dict[str, torch.Tensor] = {}
    full = template.format(prompt)
    if pictures:
        vision = vision_inputs(pictures)
        full = _expand_pads(full, vision["image_grid_thw"])
        extra = {"pixel_values": vision["pixel_values"].to(device, encoder.dtype),
                 "image_grid_thw": vision["image_grid_thw"].to(device)}
    tokens = clip.tokenizer([full], max_length=None if pictures else MAX_TOKENS + drop, truncation=not pictures,
                            return_tensors="pt")
    with torch.inference_mode(), clip.patched():
        hidden = encoder.model(input_ids=tokens.input_ids.to(device), attention_mask=tokens.attention_mask.to(device),
                               **extra).last_hidden_state
    return {"embeds": hidden[:, drop:].float().cpu(), "pooled": None, "family": "qwenimage"}
