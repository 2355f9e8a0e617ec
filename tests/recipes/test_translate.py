"""Translation recipe helpers: direction tags, source preparation, streaming = greedy translation."""
import pytest
import torch

import lingvis
from lingvis.data.parallel import ParallelPair
from lingvis.recipes.translate import SPECIALS, prepare_sources, stream_translation, tagged, translate
from lingvis.tokenizers import train_bpe




def test_tagged_directions():
    pairs = [ParallelPair("a red circle", "一个红色圆形")]
    assert tagged(pairs, "en-zh") == pairs
    assert tagged(pairs, "zh-en") == [ParallelPair("一个红色圆形", "a red circle")]
    assert tagged(pairs, "both") == [ParallelPair(">>zh<< a red circle", "一个红色圆形"),
                                     ParallelPair(">>en<< 一个红色圆形", "a red circle")]


def test_prepare_sources_checks_languages_and_empty_lines():
    meta = {"target_tags": {"zh": ">>zh<<", "en": ">>en<<"}}
    assert prepare_sources([" a red circle "], "zh", meta) == [">>zh<< a red circle"]
    with pytest.raises(ValueError, match="source 1 is empty"):
        prepare_sources(["a", "  "], "zh", meta)
    with pytest.raises(ValueError, match="choose one with --to"):
        prepare_sources(["a"], None, meta)
    with pytest.raises(ValueError, match="translates into 'zh', not 'en'"):
        prepare_sources(["a"], "en", {"target_lang": "zh"})
    assert prepare_sources(["a"], "zh", {"target_lang": "zh"}) == ["a"]


def test_streamed_pieces_join_to_the_greedy_translation():
    texts = ["a red circle", "一个红色圆形", "a small blue star above a large green square"]
    tok = train_bpe(texts * 3, 300, SPECIALS, chat_markers=[">>zh<<", ">>en<<"])
    torch.manual_seed(0)
    model = lingvis.build("transformer-nano", vocab_size=tok.vocab_size, pad_id=tok.pad_id, eos_id=tok.eos_id,
                          decoder_start_id=tok.bos_id).eval()
    meta = {"target_tags": {"zh": ">>zh<<", "en": ">>en<<"}}
    greedy = translate(model, tok, texts, "zh", meta, num_beams=1, max_new_tokens=12)
    streamed = ["".join(stream_translation(model, tok, t, "zh", meta, max_new_tokens=12)) for t in texts]
    assert streamed == greedy
    beams = translate(model, tok, texts, "zh", meta, num_beams=3, max_new_tokens=12, num_return_sequences=2)
    assert len(beams) == 6
