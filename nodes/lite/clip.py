"""The CLIP text encoder of SD 1.x/2.x (transformers' CLIPTextModel) and its tokenizer, in plain
torch and the `tokenizers` library, with transformers' parameter names and operations (the
causal self-attention through torch's SDPA, as transformers 5 runs it by default).

The encoder is called as the pack calls CLIPTextModel: `encoder(ids, output_hidden_states=...)`
gives `last_hidden_state` (through the final layer norm) and, when asked, `hidden_states` (the
embeddings, then every layer's output); `get_input_embeddings()` is the token embedding (the
textual-inversion hook of nodes/prompt.py attaches there).
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Embedding, LayerNorm, Linear

ACTIVATIONS = {"quick_gelu": lambda x: x * torch.sigmoid(1.702 * x), "gelu": F.gelu}
DEFAULTS = {"hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "attention_dropout": 0.0, "vocab_size": 49408,
            "hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 8,
            "max_position_embeddings": 77, "eos_token_id": 49407}


def supports(config: dict[str, Any]) -> bool:
    """Whether `config` (a text_encoder/config.json) is a plain CLIPTextModel this module implements."""
    c = {**DEFAULTS, **config}
    return (config.get("model_type", "clip_text_model") == "clip_text_model"
            and list(config.get("architectures") or ["CLIPTextModel"]) == ["CLIPTextModel"]
            and c["hidden_act"] in ACTIVATIONS and c["hidden_size"] % c["num_attention_heads"] == 0
            # transformers runs SDPA unless the config asks for another attention (eager rounds otherwise)
            and all(config.get(key) in (None, "sdpa") for key in ("_attn_implementation", "attn_implementation")))


class EncoderLayer(nn.Module):
    def __init__(self, c: SimpleNamespace) -> None:
        super().__init__()
        width = c.hidden_size
        self.layer_norm1 = LayerNorm(width, eps=c.layer_norm_eps)
        self.self_attn = nn.Module()
        for name in ("k_proj", "v_proj", "q_proj", "out_proj"):
            setattr(self.self_attn, name, Linear(width, width))
        self.layer_norm2 = LayerNorm(width, eps=c.layer_norm_eps)
        self.mlp = nn.Module()
        self.mlp.fc1 = Linear(width, c.intermediate_size)
        self.mlp.fc2 = Linear(c.intermediate_size, width)
        self.activation = ACTIVATIONS[c.hidden_act]
        self.head_dim = width // c.num_attention_heads
        self.scale = self.head_dim ** -0.5

    def attention(self, hidden_states: torch.Tensor) -> torch.Tensor:
        attn = self.self_attn
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)
        queries = attn.q_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        keys = attn.k_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        values = attn.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        q_length = queries.shape[2]
        out = F.scaled_dot_product_attention(queries, keys, values, attn_mask=None, dropout_p=0.0, scale=self.scale,
                                             is_causal=q_length > 1)
        out = out.reshape(out.shape[0], -1, q_length, values.shape[-1]).transpose(1, 2).contiguous()
        return attn.out_proj(out.reshape(*input_shape, -1).contiguous())

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = hidden_states + self.attention(self.layer_norm1(hidden_states))
        residual = hidden_states
        hidden_states = self.mlp.fc2(self.activation(self.mlp.fc1(self.layer_norm2(hidden_states))))
        return residual + hidden_states


class LiteCLIPText(nn.Module):
    """CLIPTextModel: token + position embeddings, causal encoder layers, the final layer norm."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = SimpleNamespace(**{**DEFAULTS, **config})
        c = self.config
        self.embeddings = nn.Module()
        self.embeddings.token_embedding = Embedding(c.vocab_size, c.hidden_size)
        self.embeddings.position_embedding = Embedding(c.max_position_embeddings, c.hidden_size)
        # Made on the CPU even while the module is built on the meta device (they are not in the file).
        self.embeddings.register_buffer("position_ids", torch.arange(c.max_position_embeddings, device="cpu")
                                        .expand((1, -1)), persistent=False)
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList([EncoderLayer(c) for _ in range(c.num_hidden_layers)])
        self.final_layer_norm = LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.token_embedding

    def forward(self, input_ids: torch.Tensor, output_hidden_states: bool = False) -> SimpleNamespace:
        input_ids = input_ids.view(-1, input_ids.shape[-1])
        seq_length = input_ids.shape[-1]
        if seq_length > self.embeddings.position_embedding.weight.shape[0]:
            raise ValueError(f"{seq_length} tokens are more than the {self.config.max_position_embeddings} "
                             "positions of this text encoder")
        hidden_states = self.embeddings.token_embedding(input_ids) + \
            self.embeddings.position_embedding(self.embeddings.position_ids[:, :seq_length])
        states = [hidden_states]
        for layer in self.encoder.layers:
            hidden_states = layer(hidden_states)
            states.append(hidden_states)
        last = self.final_layer_norm(hidden_states)
        eos = (input_ids.to(dtype=torch.int, device=last.device) == self.config.eos_token_id).int().argmax(dim=-1)
        if self.config.eos_token_id == 2:   # transformers' rule for configs from before its fix: the highest id
            eos = input_ids.to(dtype=torch.int, device=last.device).argmax(dim=-1)
        pooled = last[torch.arange(last.shape[0], device=last.device), eos]
        return SimpleNamespace(last_hidden_state=last, pooler_output=pooled,
                               hidden_states=tuple(states) if output_hidden_states else None)


SPECIALS = (("bos", "<|startoftext|>"), ("eos", "<|endoftext|>"), ("pad", "<|endoftext|>"), ("unk", "<|endoftext|>"))
CLIP_SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def clip_pipeline(unk: str) -> dict[str, Any]:
    """The normalizer, pre-tokenizer and BPE options transformers' CLIPTokenizer builds (whatever a
    tokenizer.json says: it keeps only the vocabulary and merges), as the file would write them."""
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import BPE

    reference = Tokenizer(BPE(vocab={unk: 0}, merges=[], dropout=None, continuing_subword_prefix="",
                              end_of_word_suffix="</w>", fuse_unk=False, unk_token=unk))
    reference.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    reference.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(CLIP_SPLIT), behavior="removed", invert=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False)])
    return _pipeline(json.loads(reference.to_str()))


def _pipeline(spec: dict[str, Any]) -> dict[str, Any]:
    model = {k: v for k, v in spec.get("model", {}).items() if k not in ("vocab", "merges")}
    return {"normalizer": spec.get("normalizer"), "pre_tokenizer": spec.get("pre_tokenizer"), "model": model}


class LiteTokenizer:
    """A CLIP tokenizer from a folder's tokenizer.json on the `tokenizers` library, as transformers'
    CLIPTokenizer builds it: `LiteTokenizer.read(folder)` gives one only when the file's pipeline
    is exactly the one CLIPTokenizer would build, its added tokens are only the special tokens of
    tokenizer_config.json and those are in the vocabulary (else None: transformers reads it)."""

    def __init__(self, tokenizer: Any, ids: dict[str, int], max_length: int) -> None:
        self._tokenizer = tokenizer
        self._tokenizer.no_padding()      # the pack frames and pads the windows itself
        self._tokenizer.no_truncation()
        self.bos_token_id, self.eos_token_id = ids["bos"], ids["eos"]
        self.pad_token_id, self.unk_token_id = ids["pad"], ids["unk"]
        self.model_max_length = max_length

    @classmethod
    def read(cls, folder: Path) -> "LiteTokenizer | None":
        from tokenizers import Tokenizer

        try:
            spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
            config_file = folder / "tokenizer_config.json"
            config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
            tokens = {}
            for name, default in SPECIALS:
                token = config.get(f"{name}_token", default)
                tokens[name] = token.get("content") if isinstance(token, dict) else token
            vocab = spec["model"]["vocab"]
            if any(not isinstance(t, str) or t not in vocab for t in tokens.values()) \
                    or {t.get("content") for t in spec.get("added_tokens") or ()} - set(tokens.values()) \
                    or _pipeline(spec) != clip_pipeline(tokens["unk"]):
                return None
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception:   # unreadable or unusual: transformers reads it and says what is wrong
            return None
        return cls(tokenizer, {name: tokenizer.token_to_id(token) for name, token in tokens.items()},
                   int(config.get("model_max_length", 77)))

    def __call__(self, text: str, add_special_tokens: bool = True, truncation: bool = False) -> dict[str, list[int]]:
        if add_special_tokens or truncation:
            raise ValueError("the lite tokenizer gives the bare token ids only")
        return {"input_ids": self._tokenizer.encode(text, add_special_tokens=False).ids}
