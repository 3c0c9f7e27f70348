"""The demo model's CLIP tokenizer, built offline from the caption words with `tokenizers`.

The base alphabet holds every lowercase letter, digit and common punctuation mark both inside a
word and at its end (with "</w>"), so unseen words (a LoRA's new concept, a typo) become distinct
sub-word tokens instead of the unknown token.
"""
from __future__ import annotations

import json
import string

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from nodeforge.training.data import caption_corpus

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
MAX_LENGTH = 77
ALPHABET = string.ascii_lowercase + string.digits + ".,!?'-:;()&/+\"#%*="


def build_vocab(corpus: list[str] | None = None) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train a BPE model on the corpus; returns (vocab, merges) in CLIP's layout."""
    corpus = corpus if corpus is not None else caption_corpus()
    bpe = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=4096,
        min_frequency=1,
        special_tokens=[],
        initial_alphabet=list(ALPHABET),
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    # CLIP's order: single characters, the same with "</w>", then merge results, specials last.
    tokens = list(ALPHABET) + [c + "</w>" for c in ALPHABET]
    seen = set(tokens)
    for left, right in merges:
        for token in (left, right, left + right):
            if token not in seen:
                seen.add(token)
                tokens.append(token)
    tokens += [BOS, EOS]
    return {token: i for i, token in enumerate(tokens)}, merges


def build_tokenizer(corpus: list[str] | None = None):
    """A transformers CLIPTokenizer (padding to 77 like Stable Diffusion's)."""
    from transformers import CLIPTokenizer

    vocab, merges = build_vocab(corpus)
    # transformers 5: vocab/merges must be passed as objects, merges as tuples; the old
    # vocab_file=/merges_file= keywords silently give an empty tokenizer.
    return CLIPTokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=EOS,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=EOS,
        model_max_length=MAX_LENGTH,
    )
