"""Speculative decoding (prompt lookup, draft model): greedy output identical to plain greedy decoding on many
prompts and model configs (GQA, q/k norm, sliding window shorter than the text, repetition penalty), sampled
output distributed as the model's (chi-square against the exact distribution, with a control that the test
detects a wrong sampler), KV cache rollback, API and CLI plumbing."""
import itertools

import pytest
import torch

from lingvis.generate import SamplingConfig
from lingvis.models.gpt import GPT, GPTConfig
from lingvis.speculative import PromptLookup, stream_speculative

LLAMA = dict(norm="rmsnorm", activation="swiglu", position="rotary", bias=False)
TARGETS = {
    "gpt2": dict(n_layer=2, n_head=4, n_embd=64, vocab_size=61, block_size=128),
    "llama-gqa": dict(LLAMA, n_layer=2, n_head=6, n_kv_head=2, head_dim=12, n_embd=48, mlp_hidden=80,
                      vocab_size=61, block_size=128, tie_embeddings=False),
    "mistral-window": dict(LLAMA, n_layer=2, n_head=4, n_kv_head=2, n_embd=48, mlp_hidden=80, vocab_size=61,
                           block_size=128, sliding_window=9),
    "qwen-mixed-window": dict(LLAMA, n_layer=3, n_head=4, n_kv_head=1, n_embd=48, mlp_hidden=80, vocab_size=61,
                              block_size=128, qk_norm=True, sliding_window=6,
                              layer_types=["full_attention", "sliding_attention", "sliding_attention"]),
}


def build(cfg: dict, seed: int, sharpen: float = 1.0) -> GPT:
    torch.manual_seed(seed)
    m = GPT(GPTConfig(**cfg)).eval()
    if sharpen != 1.0:
        with torch.no_grad():
            m.lm_head.weight.mul_(sharpen)
    return m


def draft_for(target_cfg: dict, seed: int = 7) -> GPT:
    return build(dict(n_layer=1, n_head=2, n_embd=32, vocab_size=target_cfg["vocab_size"], block_size=128), seed)


def prompts(n: int, vocab: int):
    """Prompts with repeated spans (so that prompt lookup finds matches) of various lengths."""
    g = torch.Generator().manual_seed(3)
    out = []
    for i in range(n):
        base = torch.randint(0, vocab, (1, 3 + i % 9), generator=g)
        out.append(torch.cat([base, torch.randint(0, vocab, (1, i % 4), generator=g), base], dim=1)[:, :20])
    return out


@pytest.mark.parametrize("name", list(TARGETS))
def test_greedy_output_is_plain_greedy(name):
    cfg = TARGETS[name]
    model = build(cfg, 0, sharpen=20.0)  # confident logits: repeated spans, so that drafts get accepted
    draft = draft_for(cfg)
    kept = {"prompt-lookup": 0, "draft": 0}
    for i, p in enumerate(prompts(12, cfg["vocab_size"])):
        new = 30 + i % 5  # the text outgrows every sliding window
        plain = model.generate(p, max_new_tokens=new)
        for kind, spec in (("prompt-lookup", "prompt-lookup"), ("draft", draft)):
            stats = {}
            got = [int(t) for t in stream_speculative(model, p, SamplingConfig(max_new_tokens=new), spec,
                                                      num_draft_tokens=1 + i % 6, stats=stats)]
            assert got == plain[0, p.shape[1]:].tolist(), (kind, i)
            kept[kind] += stats["accepted"]
            assert stats["steps"] <= new
    assert kept["prompt-lookup"] > 0 and kept["draft"] > 0  # drafts were accepted (rollback exercised too)


def test_greedy_with_repetition_penalty_eos_and_model_api():
    cfg = TARGETS["llama-gqa"]
    model, draft = build(cfg, 1, sharpen=10.0), draft_for(cfg)
    for p in prompts(8, 61):
        plain = model.generate(p, max_new_tokens=25, repetition_penalty=1.3)
        for spec in ("prompt-lookup", draft):
            assert torch.equal(model.generate(p, max_new_tokens=25, repetition_penalty=1.3, speculative=spec,
                                              num_draft_tokens=3), plain)
        a = model.generate(p, max_new_tokens=25)
        eos = int(a[0, p.shape[1] + 5])  # stop at the 6th token's id (or earlier if it came sooner)
        a = model.generate(p, max_new_tokens=25, eos_id=eos)
        b = model.generate(p, max_new_tokens=25, eos_id=eos, speculative="prompt-lookup")
        assert torch.equal(a, b) and b.shape[1] <= p.shape[1] + 6


def test_prompt_lookup_proposes_the_continuation_of_the_latest_match():
    pl = PromptLookup(max_ngram=3)
    cfg = SamplingConfig()
    seq = [5, 6, 7, 8, 9, 1, 6, 7, 2, 3, 6, 7]
    assert pl.propose(seq, 3, cfg, None).tokens == [2, 3, 6]  # last match of (6, 7): the one at index 6
    assert pl.propose([1, 2, 3, 4], 3, cfg, None).tokens == []
    assert pl.propose([4, 9, 4], 5, cfg, None).tokens == [9, 4]


# --- sampling: distributed as the model's ---------------------------------------------------------------
V, NEW, N = 4, 3, 1500


def exact_distribution(model, prompt, cfg) -> dict[tuple, float]:
    """P(t1, t2, t3) of plain sampling, by enumeration of the model's processed distributions."""
    from lingvis.generate import process_logits

    probs = {}
    for seq in itertools.product(range(V), repeat=NEW):
        p, ctx = 1.0, prompt[0].tolist()
        for t in seq:
            with torch.no_grad():
                logits = model(torch.tensor([ctx]))[:, -1].float()
            seen = torch.tensor([ctx]) if cfg.repetition_penalty != 1.0 else None
            p *= float(process_logits(logits, seen, cfg).softmax(-1)[0, t])
            ctx.append(t)
        probs[seq] = p
    return probs


def chi_square(samples: list[tuple], probs: dict[tuple, float]) -> tuple[float, float]:
    """(statistic, its 0.1% critical value) over the cells of non-zero probability; a sample in a cell of
    probability zero (e.g. outside the top-k) fails at once."""
    from scipy.stats import chi2

    counts = {k: 0 for k in probs}
    for s in samples:
        counts[s] += 1
    assert all(counts[k] == 0 for k, p in probs.items() if p == 0.0), "a token of probability zero was sampled"
    live = {k: p for k, p in probs.items() if p > 0}
    stat = sum((counts[k] - len(samples) * p) ** 2 / (len(samples) * p) for k, p in live.items())
    return stat, float(chi2.ppf(0.999, len(live) - 1))


@pytest.mark.parametrize("proposer", ["draft", "prompt-lookup"])
def test_sampling_is_distributed_as_the_model(proposer):
    cfg_model = dict(n_layer=1, n_head=2, n_embd=16, vocab_size=V, block_size=32)
    pytest.importorskip("scipy")
    model = build(cfg_model, 0, sharpen=3.0)  # spread-out but distinct token probabilities
    draft = build(cfg_model, 5, sharpen=3.0)  # a draft that disagrees often (another top-3 at places)
    prompt = torch.tensor([[0, 1, 2, 0, 1, 2, 0, 1]])  # repeats: prompt lookup proposes "2 0 1"
    cfg = SamplingConfig(max_new_tokens=NEW, temperature=0.9, top_k=3, repetition_penalty=1.2)
    probs = exact_distribution(model, prompt, cfg)
    spec = draft if proposer == "draft" else "prompt-lookup"
    torch.manual_seed(1234)
    samples, stats, kept = [], {}, 0
    for _ in range(N):
        samples.append(tuple(int(t) for t in stream_speculative(model, prompt, cfg, spec, num_draft_tokens=2,
                                                                stats=stats)))
        kept += stats["accepted"]
    assert 0.1 * N < kept < 1.9 * N  # drafts were both accepted and rejected, often
    stat, critical = chi_square(samples, probs)
    assert stat < critical
    if proposer == "draft":  # control: N samples of a slightly different distribution (temperature 1.1
        # instead of 0.9) fail the same test, so it would catch a sampler that is only a little off
        other = exact_distribution(model, prompt, SamplingConfig(max_new_tokens=NEW, temperature=1.1, top_k=3,
                                                                 repetition_penalty=1.2))
        keys = list(other)
        drawn = torch.multinomial(torch.tensor(list(other.values())), N, replacement=True,
                                  generator=torch.Generator().manual_seed(0))
        stat, critical = chi_square([keys[i] for i in drawn.tolist()], probs)
        assert stat > critical


# --- errors and plumbing -----------------------------------------------------------------------------------
def test_errors_name_the_problem():
    cfg = TARGETS["gpt2"]
    model = build(cfg, 0)
    with pytest.raises(ValueError, match="one prompt"):
        model.generate(torch.zeros(2, 4, dtype=torch.long), speculative="prompt-lookup")
    with pytest.raises(ValueError, match=r"draft model's vocabulary \(50\) differs from the model's \(61\)"):
        model.generate(torch.zeros(1, 4, dtype=torch.long), speculative=build(dict(cfg, vocab_size=50), 1))
    with pytest.raises(ValueError, match="'prompt-lookup' or a draft model"):
        model.generate(torch.zeros(1, 4, dtype=torch.long), speculative="medusa")
    with pytest.raises(ValueError, match="no padding"):
        model.generate(torch.zeros(1, 4, dtype=torch.long), attention_mask=torch.tensor([[0, 1, 1, 1]]),
                       speculative="prompt-lookup")
    short = build(dict(n_layer=1, n_head=2, n_embd=32, vocab_size=61, block_size=16), 2)
    with pytest.raises(ValueError, match="exceeds the draft model's context length 16"):
        model.generate(torch.zeros(1, 4, dtype=torch.long), max_new_tokens=20, speculative=short)


def test_text_generation_and_cli(tmp_path, capsys):
    import lingvis
    from lingvis.cli import main
    from lingvis.tokenizers.train import train_bpe

    tok = train_bpe("def f(x):\n    return x + 1\n" * 30, vocab_size=300)
    cfg = dict(TARGETS["llama-gqa"], vocab_size=tok.vocab_size)
    model, draft = build(cfg, 0, sharpen=10.0), build(dict(n_layer=1, n_head=2, n_embd=32, vocab_size=tok.vocab_size,
                                                            block_size=128), 3)
    lingvis.save(model, tmp_path / "m", tokenizer=tok)
    lingvis.save(draft, tmp_path / "d", tokenizer=tok)
    texts = ["def f(x):\n    return", "def g(y):\n    return y"]
    plain = lingvis.generate(model, tok, texts, max_new_tokens=20)
    assert lingvis.generate(model, tok, texts, max_new_tokens=20, speculative="prompt-lookup") == plain
    assert lingvis.generate(model, tok, texts, max_new_tokens=20, speculative=draft) == plain
    assert "".join(lingvis.generate(model, tok, texts[0], max_new_tokens=20, stream=True,
                                    speculative=draft)) == plain[0]
    args = ["generate", "--model", str(tmp_path / "m"), "--prompt", texts[0], "--max-new-tokens", "20",
            "--device", "cpu"]
    outs = []
    for extra in ([], ["--speculative", "prompt-lookup"], ["--draft", str(tmp_path / "d"), "--draft-tokens", "3"]):
        assert main(args + extra) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1] == outs[2] == plain[0] + "\n"
