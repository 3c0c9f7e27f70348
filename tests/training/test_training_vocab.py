"""The CLIP tokenizer keeps caption words whole and unknown words as distinct sub-words."""
from nodeforge.training import data
from nodeforge.training.vocab import build_tokenizer


def _tokens(tokenizer, text):
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    return ids[1:-1]


def test_every_caption_word_is_one_token():
    tokenizer = build_tokenizer()
    for word in ["a", "on", "background", *data.COLOURS, *data.SHAPES, *data.SIZES]:
        assert len(_tokens(tokenizer, word)) == 1, word


def test_unknown_words_become_distinct_sub_word_tokens():
    tokenizer = build_tokenizer()
    star, zebra, stars = (_tokens(tokenizer, w) for w in ("star", "zebra", "stars"))
    for ids in (star, zebra, stars):
        assert len(ids) > 1
        assert tokenizer.unk_token_id not in ids or tokenizer.unk_token_id == tokenizer.eos_token_id
        assert tokenizer.eos_token_id not in ids
    assert star != zebra and star != stars


def test_prompts_pad_to_77_tokens_like_stable_diffusion(tmp_path):
    tokenizer = build_tokenizer()
    ids = tokenizer("a red circle", padding="max_length", max_length=tokenizer.model_max_length)["input_ids"]
    assert tokenizer.model_max_length == 77 and len(ids) == 77
    tokenizer.save_pretrained(tmp_path)
    from transformers import CLIPTokenizer

    reloaded = CLIPTokenizer.from_pretrained(tmp_path)
    assert reloaded("a yellow star")["input_ids"] == tokenizer("a yellow star")["input_ids"]
