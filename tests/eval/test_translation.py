import pytest
import sacrebleu

from lingvis.eval.translation import choose_tokenizer, cjk_share, corpus_bleu, corpus_chrf

EN_HYP = ["The cat sat on the mat.", "A quick brown fox jumps.", "Hello world!"]
EN_REF = ["The cat is sitting on the mat.", "The quick brown fox jumped.", "Hello, world!"]
ZH_HYP = ["我喜欢吃苹果。", "今天天气很好", "他去了北京大学"]
ZH_REF = ["我爱吃苹果。", "今天的天气很好", "他去了北京大学"]


def test_english_bleu_matches_sacrebleu_13a():
    ours = corpus_bleu(EN_HYP, EN_REF, target_lang="en")
    ref = sacrebleu.corpus_bleu(EN_HYP, [EN_REF], tokenize="13a")
    assert ours.score == pytest.approx(ref.score)
    assert "tok:13a" in ours.signature and "nrefs:1" in ours.signature
    assert ours.details["precisions"] == pytest.approx(ref.precisions)
    assert ours.details["sys_len"] == ref.sys_len and ours.details["bp"] == pytest.approx(ref.bp)


def test_chinese_target_uses_zh_tokenizer():
    by_lang = corpus_bleu(ZH_HYP, ZH_REF, target_lang="zh-CN")
    detected = corpus_bleu(ZH_HYP, ZH_REF)
    ref = sacrebleu.corpus_bleu(ZH_HYP, [ZH_REF], tokenize="zh")
    assert by_lang.score == pytest.approx(ref.score) == detected.score
    assert "tok:zh" in by_lang.signature and "tok:zh" in detected.signature
    # without zh tokenization each unspaced sentence is one token: a very different score
    assert sacrebleu.corpus_bleu(ZH_HYP, [ZH_REF], tokenize="13a").score != pytest.approx(ref.score)
    assert corpus_bleu(ZH_HYP, ZH_REF, tokenize="char").signature.count("tok:char") == 1


def test_tokenizer_choice():
    assert choose_tokenizer(EN_REF) == "13a"
    assert choose_tokenizer(ZH_REF) == "zh"
    assert choose_tokenizer(EN_REF, target_lang="zh_Hant") == "zh"
    assert choose_tokenizer(ZH_REF, target_lang="de") == "13a"  # an explicit language wins
    assert choose_tokenizer(["Visit 北 Jing Beijing University now please"]) == "13a"  # a stray Han char
    assert cjk_share(["ab", "中文"]) == pytest.approx(0.5)


def test_multiple_and_variable_references():
    refs = [[EN_REF[0], "A cat sat on a mat."], [EN_REF[1]], [EN_REF[2], "Hello world!"]]
    ours = corpus_bleu(EN_HYP, refs)
    streams = [[r[0] for r in refs], ["A cat sat on a mat.", None, "Hello world!"]]
    assert ours.score == pytest.approx(sacrebleu.corpus_bleu(EN_HYP, streams).score)
    assert ours.score > corpus_bleu(EN_HYP, EN_REF).score
    assert "nrefs:var" in ours.signature


def test_chrf_and_identity():
    ours = corpus_chrf(EN_HYP, EN_REF)
    assert ours.score == pytest.approx(sacrebleu.corpus_chrf(EN_HYP, [EN_REF]).score)
    assert ours.name == "chrF2" and "nc:6" in ours.signature
    assert corpus_chrf(EN_HYP, EN_REF, word_order=2).name == "chrF2++"
    assert corpus_bleu(ZH_REF, ZH_REF).score == pytest.approx(100.0)


def test_errors():
    with pytest.raises(ValueError, match="3 hypotheses but 2 references"):
        corpus_bleu(EN_HYP, EN_REF[:2])
    with pytest.raises(TypeError, match="not a single string"):
        corpus_chrf("a b", "a b")
    with pytest.raises(ValueError, match=r"references\[1\]: expected a string or a non-empty list"):
        corpus_bleu(EN_HYP, [EN_REF[0], [], EN_REF[2]])
