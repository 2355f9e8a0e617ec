"""Every decoder and encoder takes `inputs_embeds` (B, T, C) in place of token ids: same outputs, through
training, prefill, the KV cache, batched (padded) and beam decoding."""
import torch

import lingvis
from lingvis.beam import BeamConfig, beam_search
from lingvis.generate import pad_left


def llama():
    torch.manual_seed(0)
    return lingvis.build("llama-micro", vocab_size=61, n_layer=2, n_kv_head=2, sliding_window=6).eval()


def test_causal_lm_forward_loss_and_generation_from_embeddings():
    model = llama()
    ids, mask = pad_left([[5, 9, 3, 7, 1, 2, 8, 9, 4], [4, 4, 8], [11, 12, 13, 14, 15]])
    emb = model.embed_tokens(ids)
    with torch.no_grad():
        assert torch.equal(model(ids, attention_mask=mask), model(inputs_embeds=emb, attention_mask=mask))
    labels = ids.masked_fill(mask == 0, -100)
    model.train()
    a = model(ids, attention_mask=mask, labels=labels)
    b = model(inputs_embeds=model.embed_tokens(ids), attention_mask=mask, labels=labels)
    assert torch.allclose(a, b)
    b.backward()  # gradients flow into the embedding table through the given embeddings
    assert model.wte.weight.grad is not None and model.wte.weight.grad.abs().sum() > 0
    model.eval()
    want = model.generate(ids, max_new_tokens=12, attention_mask=mask)
    got = model.generate(ids, max_new_tokens=12, attention_mask=mask, inputs_embeds=emb)
    assert torch.equal(got, want)
    no_ids = model.generate(None, max_new_tokens=12, attention_mask=mask, inputs_embeds=emb)
    assert torch.equal(no_ids[:, ids.shape[1]:], want[:, ids.shape[1]:])
    cfg = BeamConfig(num_beams=3, max_new_tokens=8)
    assert torch.equal(beam_search(model, ids, cfg, mask).sequences,
                       beam_search(model, ids, cfg, mask, inputs_embeds=emb).sequences)


def test_embeddings_that_are_not_token_rows_change_the_output():
    model = llama()
    ids = torch.tensor([[5, 9, 3, 7]])
    emb = model.embed_tokens(ids)
    emb[0, 1] = torch.randn(emb.shape[-1])  # e.g. an image feature in place of a placeholder token
    with torch.no_grad():
        assert not torch.allclose(model(ids)[0, -1], model(inputs_embeds=emb)[0, -1])


def test_seq2seq_encoder_and_decoder_take_embeddings():
    torch.manual_seed(0)
    model = lingvis.build("transformer-nano", vocab_size=40).eval()
    src = torch.randint(3, 40, (2, 7))
    src_mask = torch.ones_like(src)
    src_mask[1, 5:] = 0
    scale = model.embed_scale
    with torch.no_grad():
        mem = model.encode(src, src_mask)
        assert torch.equal(mem, model.encode(None, src_mask, inputs_embeds=model.embed(src) * scale))
        tgt = torch.randint(3, 40, (2, 5))
        mm = model.memory_mask(src_mask)
        assert torch.equal(model.decode(tgt, mem, mm),
                           model.decode(None, mem, mm, inputs_embeds=model.target_embedding(tgt) * scale))
    view = model.decoder_view(mem, src_mask)
    start = model.start_ids(2)
    cfg = BeamConfig(num_beams=2, max_new_tokens=6)
    assert torch.equal(beam_search(view, start, cfg).sequences,
                       beam_search(view, start, cfg, inputs_embeds=model.target_embedding(start) * scale).sequences)


def test_bert_and_clip_text_take_embeddings():
    torch.manual_seed(0)
    bert = lingvis.build("bert-tiny", vocab_size=50).eval()
    ids = torch.randint(3, 50, (2, 6))
    mask = torch.tensor([[1] * 6, [1, 1, 1, 1, 0, 0]])
    with torch.no_grad():
        assert torch.equal(bert.encode(ids, mask), bert.encode(None, mask, inputs_embeds=bert.tok_emb(ids)))
    from lingvis.models.clip_text import CLIPTextConfig, CLIPTextEncoder

    text = CLIPTextEncoder(CLIPTextConfig(vocab_size=50, context_length=8, dim=32, depth=2, heads=4,
                                          mlp_hidden=64)).eval()
    with torch.no_grad():
        assert torch.equal(text.encode(ids, mask), text.encode(None, mask, inputs_embeds=text.tok_emb(ids)))
