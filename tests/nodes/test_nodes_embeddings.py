"""Textual inversion: `embedding:NAME` (ComfyUI) and bare file stems (A1111) in prompts, from A1111
.pt / .safetensors, SDXL clip_l + clip_g and diffusers learned_embeds files the tests write.

The embeddings are made of the tiny model's own token embeddings of "red circle", so a prompt
using one must encode exactly like the same prompt with the words written out."""
from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import save_file

from nodeforge import Workflow
from nodeforge.core.errors import WorkflowError
from nodeforge.core.registry import builtin_module

prompt = builtin_module("prompt")


class NotAllowed:
    """A class torch.load(weights_only=True) must refuse to rebuild."""


def _rows(clip_tokenizer, encoder, words):
    ids = clip_tokenizer(words, add_special_tokens=False)["input_ids"]
    return encoder.get_input_embeddings().weight[ids].detach().clone()


@pytest.fixture(scope="module")
def emb_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("emb-models")
    (root / "embeddings").mkdir()
    (root / "checkpoints").mkdir()
    return root


@pytest.fixture(scope="module")
def emb_engine(models_dir, emb_root, registry, tmp_path_factory):
    import tiny_models as tm
    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths

    tm.save_diffusers(tm.make_components(4, sdxl=True), emb_root / "checkpoints" / "tiny-xl")
    engine = Engine(device="cpu", output_dir=tmp_path_factory.mktemp("out"), registry=registry,
                    model_paths=ModelPaths(roots=[emb_root, models_dir]))
    clip = _clip(engine, "tiny-sd")
    folder = emb_root / "embeddings"
    rc = _rows(clip.tokenizer, clip.text_encoder, "red circle")
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": torch.nn.Parameter(rc.clone())},
                "name": "rc", "step": 500, "sd_checkpoint": "0123abcd", "sd_checkpoint_name": "tiny-sd"},
               folder / "rc.pt")
    save_file({"emb_params": rc.clone()}, str(folder / "rc-st.safetensors"))
    (folder / "rc-diffusers").mkdir()
    save_file({"<rc>": rc.clone()}, str(folder / "rc-diffusers" / "learned_embeds.safetensors"))
    (folder / "green-bin").mkdir()
    torch.save({"<g>": _rows(clip.tokenizer, clip.text_encoder, "green")[0]}, folder / "green-bin" / "learned_embeds.bin")
    save_file({"emb_params": torch.randn(3, 32, generator=torch.Generator().manual_seed(1))},
              str(folder / "three.safetensors"))
    save_file({"emb_params": torch.randn(2, 77)}, str(folder / "wide.safetensors"))
    torch.save({"string_to_param": {"*": rc.clone()}, "trainer": NotAllowed()}, folder / "pickled.pt")
    xl = _clip(engine, "tiny-xl")
    save_file({"clip_l": _rows(xl.tokenizer, xl.text_encoder, "red circle"),
               "clip_g": _rows(xl.tokenizer_2, xl.text_encoder_2, "red circle")}, str(folder / "rc-xl.safetensors"))
    return engine


def _clip(engine, checkpoint):
    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": checkpoint}, node_id="ckpt")
    return engine.run(wf, outputs=["ckpt"]).outputs["ckpt"]["clip"]


def _encode(engine, *texts, checkpoint="tiny-sd"):
    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": checkpoint}, node_id="ckpt")
    for i, text in enumerate(texts):
        wf.add("TextEncoder", {"text": text}, {"clip": ("ckpt", "clip")}, node_id=f"t{i}", title=f"prompt {i}")
    out = engine.run(wf, outputs=[f"t{i}" for i in range(len(texts))]).outputs
    return [out[f"t{i}"]["conditioning"][0] for i in range(len(texts))]


@pytest.mark.parametrize("name", ["rc", "rc.pt", "rc-st", "rc-diffusers"])
def test_an_embedding_of_the_words_own_vectors_encodes_exactly_like_the_words(emb_engine, name):
    [written, embedded] = _encode(emb_engine, "a red circle on a blue background",
                                  f"a embedding:{name} on a blue background")
    assert torch.equal(embedded["embeds"], written["embeds"])


def test_bare_file_stems_weights_and_punctuation_work_as_in_a1111_and_comfyui(emb_engine):
    written, bare, weighted_words, weighted, comma = _encode(
        emb_engine, "a red circle on a blue background", "a rc on a blue background",
        "a (red circle:1.4) on a blue background", "a (embedding:rc:1.4) on a blue background",
        "a embedding:rc, on a blue background")
    assert torch.equal(bare["embeds"], written["embeds"])
    assert torch.equal(weighted["embeds"], weighted_words["embeds"])
    assert not torch.equal(weighted["embeds"], written["embeds"])
    assert comma["embeds"].shape == written["embeds"].shape
    # "rc" inside another word or a longer stem is not the embedding
    from nodeforge.core import prompt_syntax as syntax
    assert syntax.split_embeddings("arc rc-st rc", {"rc", "rc-st"}) == [("arc ", False), ("rc-st", True),
                                                                       (" ", False), ("rc", True)]


def test_an_embedding_changes_the_token_inputs_only_at_its_positions(emb_engine):
    clip = _clip(emb_engine, "tiny-sd")
    lookup = builtin_module("embeddings").EmbeddingLookup(
        lambda n: emb_engine.model_paths.resolve("embedding", n), {}, None)
    words = "red square circle"
    assert len(clip.tokenizer(words, add_special_tokens=False)["input_ids"]) == 3   # as many as "three" has vectors
    inputs = []   # what the transformer layers receive: token + position embeddings
    embeddings = getattr(clip.text_encoder, "text_model", clip.text_encoder).embeddings
    handle = embeddings.register_forward_hook(lambda m, a, out: inputs.append(out))
    try:
        plain = prompt.encode(clip, f"a {words} on a blue background")["embeds"]
        embedded = prompt.encode(clip, "a embedding:three on a blue background", lookup)["embeds"]
    finally:
        handle.remove()
    changed = (inputs[0] - inputs[1]).abs().amax(-1)[0].nonzero().flatten().tolist()
    assert changed == [2, 3, 4]                                 # after BOS and "a": the three vectors
    assert torch.equal(embedded[0, :2], plain[0, :2])          # causal attention: earlier positions untouched
    assert not torch.allclose(embedded[0, 2:5], plain[0, 2:5])


def test_a_multi_vector_embedding_takes_as_many_positions_and_is_not_split_across_windows(emb_engine):
    clip = _clip(emb_engine, "tiny-sd")
    lookup = builtin_module("embeddings").EmbeddingLookup(
        lambda n: emb_engine.model_paths.resolve("embedding", n), {}, None)
    tokens = prompt.tokenize_prompt(clip.tokenizer, "a embedding:three", lookup, 32)
    assert len(tokens.ids) == 4 and tokens.groups == [0, 1, 1, 1]
    chunks = prompt.prompt_chunks(clip.tokenizer, "red " * 74 + "embedding:three", lookup, 32)
    assert len(chunks) == 2
    assert chunks[0][2] == {} and sorted(chunks[1][2]) == [1, 2, 3]   # whole, in the second window
    assert prompt.encode(clip, "red " * 74 + "embedding:three", lookup)["embeds"].shape == (1, 154, 32)


def test_the_shared_text_encoder_and_tokenizer_are_not_changed(emb_engine):
    clip = _clip(emb_engine, "tiny-sd")
    vocab = len(clip.tokenizer)
    weight = clip.text_encoder.get_input_embeddings().weight.detach().clone()
    before = _encode(emb_engine, "a green circle")[0]["embeds"]
    _encode(emb_engine, "a embedding:rc embedding:green-bin embedding:three")
    assert len(clip.tokenizer) == vocab
    assert torch.equal(clip.text_encoder.get_input_embeddings().weight, weight)
    assert not clip.text_encoder.get_input_embeddings()._forward_hooks
    assert torch.equal(prompt.encode(clip, "a green circle")["embeds"], before)


def test_sdxl_embeddings_give_each_encoder_its_own_vectors(emb_engine):
    written, embedded = _encode(emb_engine, "a red circle", "a embedding:rc-xl", checkpoint="tiny-xl")
    assert torch.equal(embedded["embeds"], written["embeds"]) and torch.equal(embedded["pooled"], written["pooled"])
    with pytest.raises(WorkflowError, match=r"embedding 'rc' has vectors 32 wide, but the second text encoder "
                                            r"is 48 wide"):
        _encode(emb_engine, "a embedding:rc", checkpoint="tiny-xl")


def test_a_missing_embedding_names_the_prompt_node_the_word_and_the_folders(emb_engine, emb_root):
    with pytest.raises(WorkflowError) as err:
        _encode(emb_engine, "a red circle", "a embedding:nothere circle")
    problem = err.value.problem
    assert problem.node_id == "t1" and problem.field == "text"
    assert "embedding 'nothere' not found" in problem.message
    assert str(emb_root / "embeddings") in problem.message


def test_unsafe_and_mismatched_files_are_refused_naming_them(emb_engine):
    with pytest.raises(WorkflowError, match=r"cannot read embedding pickled.pt safely"):
        _encode(emb_engine, "embedding:pickled")
    with pytest.raises(WorkflowError, match=r"embedding 'wide' has vectors 77 wide, but the text encoder is 32 wide"):
        _encode(emb_engine, "embedding:wide")


def test_replacing_an_embedding_file_reruns_the_prompt(emb_engine, emb_root):
    path = emb_root / "embeddings" / "swap.safetensors"
    save_file({"emb_params": torch.zeros(1, 32)}, str(path))
    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-sd"}, node_id="ckpt")
    wf.add("TextEncoder", {"text": "a swap"}, {"clip": ("ckpt", "clip")}, node_id="t")
    first = emb_engine.run(wf, outputs=["t"])
    assert "t" in emb_engine.run(wf, outputs=["t"]).cached      # unchanged: served from the cache
    save_file({"emb_params": torch.ones(2, 32)}, str(path))
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9,) * 2)
    again = emb_engine.run(wf, outputs=["t"])
    assert "t" in again.executed
    assert again.outputs["t"]["conditioning"][0]["embeds"].shape == first.outputs["t"]["conditioning"][0]["embeds"].shape
    assert not torch.equal(again.outputs["t"]["conditioning"][0]["embeds"], first.outputs["t"]["conditioning"][0]["embeds"])
