"""The shipped CLIP BPE tokenizer is the real one: same vocabulary size and the released token ids."""

from showme_i2g.text.tokenizers import CLIP_VOCAB_SIZE, count_clip_tokens, load_clip_tokenizer


def test_released_clip_ids():
    tokenizer = load_clip_tokenizer()
    assert len(tokenizer) == CLIP_VOCAB_SIZE == 49408
    # ids of the released openai/clip-vit-large-patch14 tokenizer
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tokenizer.model_max_length == 77


def test_sdxl_pad_tokens_differ():
    vit_l, big_g = load_clip_tokenizer(), load_clip_tokenizer(pad_token="!")
    padded = big_g("Whisk flour and eggs", padding="max_length", max_length=10).input_ids
    assert padded[-1] == big_g.convert_tokens_to_ids("!") == 0
    assert vit_l("Whisk", padding="max_length", max_length=5).input_ids[-1] == 49407


def test_count_tokens_excludes_start_and_end():
    assert count_clip_tokens("a photo of a cat") == 5
    assert count_clip_tokens("") == 0
