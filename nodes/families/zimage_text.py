"""Z-Image text encoding, as ZImagePipeline._encode_prompt does it.

The prompt is put in the tokenizer's chat template as one user turn with the assistant's turn
opened (Qwen3's template with enable_thinking: "<|im_start|>user\\n{prompt}<|im_end|>\\n
<|im_start|>assistant\\n"; a tokenizer without a template gets exactly that text), tokenized to at
most 512 tokens, and read from the Qwen3 text encoder's second-to-last hidden state; only the
prompt's own tokens are kept (no padding), so prompts have their own lengths. The text is read as
written: no (word:1.2) weights or embedding:NAME, which a chat model does not take as SD's CLIPs do.
"""
from __future__ import annotations

from typing import Any

import torch

from ..placement import device_of

MAX_TOKENS = 512   # ZImagePipeline's default max_sequence_length
QWEN3_TURN = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"


def chat_text(tokenizer: Any, text: str) -> str:
    """The prompt as the pipeline hands it to the tokenizer."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True, enable_thinking=True)
    return QWEN3_TURN.format(text)


def encode_zimage(clip: Any, text: str) -> dict[str, Any]:
    """One CONDITIONING entry: {"embeds": [1, tokens, width], "family": "zimage"}."""
    tokens = clip.tokenizer([chat_text(clip.tokenizer, text)], padding="max_length", max_length=MAX_TOKENS,
                            truncation=True, return_tensors="pt")
    encoder = clip.text_encoder
    device = device_of(encoder)   # its execution device when offloaded, where the inputs must be
    mask = tokens.attention_mask.to(device).bool()
    with torch.inference_mode(), clip.patched():
        hidden = encoder(input_ids=tokens.input_ids.to(device), attention_mask=mask,
                         output_hidden_states=True).hidden_states[-2]
    return {"embeds": hidden[0][mask[0]][None].float().cpu(), "pooled": None, "family": "zimage"}
