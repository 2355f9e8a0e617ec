"""Marian (opus-mt) tokenizer folders: parity with transformers' MarianTokenizer on a tiny trained SentencePiece
model, save/reload, broken files, and translation through lingvis.load + lingvis.load_tokenizer."""
import json
import random
import shutil

import pytest
import torch

import lingvis
from lingvis.tokenizers.spm import parse_spm

spm_lib = pytest.importorskip("sentencepiece")
transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")

WORDS = ("the house is big and the small cat runs quickly over green fields while we were talking about it "
         "das haus ist groß und die kleine katze läuft schnell über grüne felder während wir darüber sprachen "
         "Mädchen Straße schön Häuser don't it's 12 345 6.78 2024 e-mail (yes) \"quoted\" ; : ? ! ,").split()
SYLLABLES = "ver ge un ter lich keit ung en er in an ab ing tion re con pro ness ful ly sch ä ö ü st ch".split()
SENTENCES = [
    "The house is big.",
    "Das Haus ist groß!",
    "  leading and trailing spaces  ",
    "repeated    spaces,\tand a tab",
    "Numbers: 12, 345 and 6.78 (in 2024)",
    "e-mail me: test@example.com",
    "don't worry, it's \"fine\"",
    "Straße, Mädchen und schöne Häuser",
    "a snowman ☃ and 漢字 are unknown ☃☃",
    "fullwidth ＡＢＣ１２３ and the ﬁ ligature",
    "non\u00a0breaking\u3000spaces",
    "",
    "   ",
    "!!!???...",
    "MiXeD CaSe WoRdS",
    ">>deu<< the cat runs",
    "the cat </s> runs <unk> away <pad>",
    "a ▁literal meta symbol, ▁leading",
    "line one\nline two",
    "combining e\u0301 accent",
    "overthethethe housesss",
]


@pytest.fixture(scope="module")
def marian_dir(tmp_path_factory):
    """A Marian-style folder: source.spm = target.spm, vocab.json (</s>=0, <unk>=1, >>deu<<, pieces, <pad> last)."""
    d = tmp_path_factory.mktemp("marian")
    rng = random.Random(0)
    words = list(WORDS) + ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(300)]
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) for _ in range(400)]
    (d / "corpus.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    spm_lib.SentencePieceTrainer.train(input=str(d / "corpus.txt"), model_prefix=str(d / "sp"), vocab_size=200,
                                       character_coverage=1.0, hard_vocab_limit=False, num_threads=1,
                                       minloglevel=2)
    sp = spm_lib.SentencePieceProcessor(model_file=str(d / "sp.model"))
    vocab = {"</s>": 0, "<unk>": 1, ">>deu<<": 2}
    for i in range(sp.get_piece_size()):
        if not (sp.is_control(i) or sp.is_unknown(i)):
            vocab[sp.id_to_piece(i)] = len(vocab)
    vocab["<pad>"] = len(vocab)
    (d / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    for name in ("source.spm", "target.spm"):
        shutil.copy(d / "sp.model", d / name)
    (d / "tokenizer_config.json").write_text(json.dumps(
        {"source_lang": "en", "target_lang": "de", "model_max_length": 512, "eos_token": "</s>",
         "unk_token": "<unk>", "pad_token": "<pad>", "separate_vocabs": False}))
    for name in ("corpus.txt", "sp.model", "sp.vocab"):
        (d / name).unlink()
    return d


@pytest.fixture(scope="module")
def reference(marian_dir):
    return transformers.MarianTokenizer.from_pretrained(str(marian_dir))


@pytest.fixture(scope="module")
def ours(marian_dir):
    return lingvis.load_tokenizer(marian_dir)


def test_vocabulary_is_big_enough_to_mean_something(reference):
    assert reference.vocab_size > 150


@pytest.mark.parametrize("text", SENTENCES)
def test_encode_matches_marian_tokenizer(ours, reference, text):
    expected = reference(text).input_ids
    assert expected[-1] == reference.eos_token_id
    assert ours.encode(text, add_special_tokens=True) == expected
    assert ours.encode(text) == expected[:-1] == reference(text, add_special_tokens=False).input_ids
    assert ours.decode(expected) == reference.decode(expected, skip_special_tokens=True)


def test_batch_and_decode_of_arbitrary_ids_match(ours, reference):
    assert ours.encode_batch(SENTENCES, add_special_tokens=True) == reference(SENTENCES).input_ids
    rng = random.Random(1)
    for _ in range(300):
        ids = [rng.randrange(reference.vocab_size) for _ in range(rng.randint(0, 12))]
        assert ours.decode(ids) == reference.decode(ids, skip_special_tokens=True), ids


def test_special_ids_and_limits(ours, reference):
    assert (ours.eos_id, ours.unk_id, ours.pad_id) == (0, 1, reference.vocab_size - 1)
    assert (ours.eos_id, ours.unk_id, ours.pad_id) == (reference.eos_token_id, reference.unk_token_id,
                                                       reference.pad_token_id)
    assert ours.bos_id is None and ours.model_max_length == 512
    assert ours.vocab_size == reference.vocab_size
    assert ours.get_vocab() == reference.get_vocab()
    assert ours.token_to_id(">>deu<<") == 2


def test_save_reload_round_trip(ours, marian_dir, tmp_path):
    ours.save(tmp_path / "saved")
    assert (tmp_path / "saved" / "tokenizer.json").is_file()
    back = lingvis.load_tokenizer(tmp_path / "saved")
    assert back.encode_batch(SENTENCES, add_special_tokens=True) == ours.encode_batch(SENTENCES, True)
    assert [back.decode(ids) for ids in back.encode_batch(SENTENCES)] == \
        [ours.decode(ids) for ids in ours.encode_batch(SENTENCES)]
    assert (back.eos_id, back.unk_id, back.pad_id, back.model_max_length) == \
        (ours.eos_id, ours.unk_id, ours.pad_id, ours.model_max_length)
    # tokenizer.json wins over the Marian files in the same folder
    both = tmp_path / "both"
    shutil.copytree(marian_dir, both)
    ours.save(both)
    assert lingvis.load_tokenizer(both).encode("The house", True) == ours.encode("The house", True)


def test_spm_reader_matches_sentencepiece(marian_dir):
    model = parse_spm((marian_dir / "source.spm").read_bytes())
    sp = spm_lib.SentencePieceProcessor(model_file=str(marian_dir / "source.spm"))
    assert [p for p, _, _ in model.pieces] == [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    assert [s for _, s, _ in model.pieces] == pytest.approx([sp.get_score(i) for i in range(sp.get_piece_size())])
    assert model.unk_id == sp.unk_id() and model.precompiled_charsmap and model.add_dummy_prefix


def _variant(marian_dir, tmp_path, name, content: bytes):
    d = tmp_path / "variant"
    shutil.copytree(marian_dir, d)
    (d / name).write_bytes(content)
    return d


@pytest.mark.parametrize("content", [b"not a sentencepiece model", b"", None], ids=["text", "empty", "truncated"])
def test_corrupt_spm_is_named(marian_dir, tmp_path, content):
    if content is None:
        data = (marian_dir / "source.spm").read_bytes()
        content = data[: len(data) // 2]
    d = _variant(marian_dir, tmp_path, "source.spm", content)
    with pytest.raises(ValueError, match=r"source\.spm: not a readable SentencePiece model"):
        lingvis.load_tokenizer(d)


@pytest.mark.parametrize("content, match", [(b"{not json", r"vocab\.json: invalid JSON"),
                                            (b'{"</s>": 0, "<unk>": 2}', r"vocab\.json: ids must be 0\.\.1"),
                                            (b'["</s>"]', r"vocab\.json: expected a non-empty JSON object")])
def test_corrupt_vocab_is_named(marian_dir, tmp_path, content, match):
    with pytest.raises(ValueError, match=match):
        lingvis.load_tokenizer(_variant(marian_dir, tmp_path, "vocab.json", content))


def test_unsupported_folders_are_named(marian_dir, tmp_path):
    config = json.loads((marian_dir / "tokenizer_config.json").read_text())
    separate = json.dumps({**config, "separate_vocabs": True}).encode()
    d = _variant(marian_dir, tmp_path, "tokenizer_config.json", separate)
    with pytest.raises(ValueError, match="separate_vocabs=True are not supported"):
        lingvis.load_tokenizer(d)
    (d / "tokenizer_config.json").write_text(json.dumps(config))
    (d / "corpus.txt").write_text("\n".join(SENTENCES[:9]), encoding="utf-8")
    spm_lib.SentencePieceTrainer.train(input=str(d / "corpus.txt"), model_prefix=str(d / "bpe"), model_type="bpe",
                                       vocab_size=60, hard_vocab_limit=False, minloglevel=2)
    shutil.copy(d / "bpe.model", d / "source.spm")
    with pytest.raises(ValueError, match=r"source\.spm: only unigram SentencePiece models"):
        lingvis.load_tokenizer(d)


def test_source_pieces_missing_from_vocab_warn(marian_dir, tmp_path):
    vocab = json.loads((marian_dir / "vocab.json").read_text(encoding="utf-8"))
    del vocab["▁the"]
    vocab = {piece: i for i, piece in enumerate(sorted(vocab, key=vocab.get))}
    d = _variant(marian_dir, tmp_path, "vocab.json", json.dumps(vocab).encode())
    with pytest.warns(UserWarning, match="1 pieces of source.spm are not in vocab.json"):
        tok = lingvis.load_tokenizer(d)
    assert tok.unk_id not in tok.encode("the house")


def test_translation_matches_transformers(marian_dir, reference, ours, tmp_path):
    """A random tiny MarianMTModel saved with its tokenizer files: same greedy tokens and texts."""
    torch.manual_seed(1)
    V = reference.vocab_size
    cfg = transformers.MarianConfig(vocab_size=V, d_model=32, encoder_layers=2, decoder_layers=2,
                                    encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                                    decoder_ffn_dim=64, max_position_embeddings=64, pad_token_id=V - 1,
                                    decoder_start_token_id=V - 1, eos_token_id=0, init_std=1.0,
                                    activation_function="relu")
    hf = transformers.MarianMTModel(cfg).eval()
    with torch.no_grad():  # large random embeddings: outputs that depend on the source
        hf.model.shared.weight.normal_()
        hf.final_logits_bias.normal_(std=0.1)
    folder = tmp_path / "opus-mt-tiny"
    hf.save_pretrained(folder)
    reference.save_pretrained(folder)
    assert not (folder / "tokenizer.json").exists() and (folder / "source.spm").is_file()
    model, tok = lingvis.load(folder), lingvis.load_tokenizer(folder)
    texts = ["The house is big.", "die kleine Katze läuft schnell", ">>deu<< we were talking"]
    batch = reference(texts, padding=True, return_tensors="pt")
    ids = tok.encode_batch(texts, add_special_tokens=True)
    src = torch.full((len(ids), max(map(len, ids))), tok.pad_id)
    for i, row in enumerate(ids):
        src[i, :len(row)] = torch.tensor(row)
    assert torch.equal(src, batch.input_ids)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            expected = hf.generate(**batch, num_beams=1, do_sample=False, max_new_tokens=12,
                                   forced_eos_token_id=None)
        got = model.generate(src, batch.attention_mask, max_new_tokens=12)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(got, expected)
    assert [tok.decode(row) for row in got] == reference.batch_decode(expected, skip_special_tokens=True)
    from lingvis.recipes.translate import translate  # the CLI's path: sources get Marian's </s> too

    torch.set_num_threads(1)
    try:
        texts_out = translate(model, tok, texts, num_beams=1, max_new_tokens=12)
    finally:
        torch.set_num_threads(threads)
    assert texts_out == reference.batch_decode(expected, skip_special_tokens=True)
    seen = []
    real = model.generate
    model.generate = lambda src, mask, **kw: seen.append((src, mask)) or real(src, mask, **kw)
    translate(model, tok, texts, num_beams=1, max_new_tokens=4)
    assert torch.equal(seen[0][0], batch.input_ids) and torch.equal(seen[0][1], batch.attention_mask)
