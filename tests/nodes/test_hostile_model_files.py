"""Model files that are not what their name says, read as the nodes read them: one NodeError naming
the file and what to do, never a silent no-op."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from nodeforge.core.errors import NodeError
from nodeforge.core.registry import builtin_module

embeddings = builtin_module("embeddings")


@pytest.mark.parametrize("tensors", [
    {"emb_params": torch.zeros(0, 64)},                 # no vectors: the token vanished from the prompt
    {"emb_params": torch.zeros(4, 0)},
    {"string_to_param": torch.zeros(1, 0, 64)},
])
def test_an_embedding_with_no_vectors_is_refused(tmp_path, tensors):
    path = tmp_path / "hollow.safetensors"
    save_file(tensors, str(path))
    with pytest.raises(NodeError) as info:
        embeddings.read_embedding(path, "hollow")
    assert "embedding 'hollow' holds no vectors" in str(info.value) and info.value.field == "text"


def test_an_embedding_with_vectors_still_reads(tmp_path):
    path = tmp_path / "fine.safetensors"
    save_file({"emb_params": torch.ones(2, 64)}, str(path))
    assert embeddings.read_embedding(path, "fine").for_width(64, "text encoder").shape == (2, 64)


def test_a_prompt_from_a_wire_is_held_to_the_same_length_before_tokenizing():
    prompt = builtin_module("prompt")
    with pytest.raises(NodeError) as info:
        prompt.prompt_chunks(None, "x" * 100_001)      # refused before the tokenizer is asked
    assert "the prompt is 100,001 characters; more than 100,000" in str(info.value)
    assert info.value.field == "text"
