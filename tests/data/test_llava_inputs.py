"""LLaVA inputs: assistant-only labels from the chat template (lingvis's default and a ChatML one), image
placeholder expansion, cutting without splitting an image, and count mismatches named."""
import pytest
import torch

import lingvis
from lingvis.data.llava_inputs import (IGNORE, assistant_spans, chat_messages, chat_prompt_ids, encode_conversation,
                                       encode_prompt, expand_images, llava_messages)
from lingvis.recipes.llava import with_image_token
from lingvis.tokenizers import train_char

TEXT = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ.,?!\n0123456789"
CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
CONV = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "<image>\nWhat is it?"},
        {"role": "assistant", "content": "A red circle."}, {"role": "user", "content": "Where?"},
        {"role": "assistant", "content": "At the top."}]


def tokenizer(template=None):
    tok = train_char(TEXT, chat_markers=("<|system|>", "<|user|>", "<|assistant|>", "<|im_start|>", "<|im_end|>"))
    tok.chat_template = template
    return tok, with_image_token(tok)


def labelled_text(tok, ids, labels):
    return tok.decode([t for t in labels if t != IGNORE], skip_special_tokens=False)


@pytest.mark.parametrize("template,end", [(None, "<|endoftext|>\n"), (CHATML, "<|im_end|>\n")],
                         ids=["default", "chatml"])
def test_loss_covers_assistant_turns_only(template, end):
    tok, image_id = tokenizer(template)
    enc = encode_conversation(tok, CONV, image_id, tokens_per_image=4, max_len=500, n_images=1)
    assert labelled_text(tok, enc.ids, enc.labels) == f"A red circle.{end}At the top.{end}"
    assert enc.ids.count(image_id) == 4 and enc.n_images == 1
    # labels are next-token targets: where a label is set it is the next input token
    for t in range(len(enc.ids) - 1):
        if enc.labels[t] != IGNORE:
            assert enc.labels[t] == enc.ids[t + 1]


def test_spans_are_the_assistant_text_as_rendered():
    tok, _ = tokenizer()
    text, spans = assistant_spans(tok, CONV)
    assert [text[a:b] for a, b in spans] == ["A red circle.<|endoftext|>\n", "At the top.<|endoftext|>\n"]


def test_a_cut_never_splits_an_image():
    tok, image_id = tokenizer()
    conv = [{"role": "user", "content": "Hi <image>\n<image>\nok?"}, {"role": "assistant", "content": "Yes."}]
    full = encode_conversation(tok, conv, image_id, 10, 500, 2)
    start = full.ids.index(image_id)
    cut = encode_conversation(tok, conv, image_id, 10, start + 15, 2)  # the cut falls inside the second image
    assert cut is None or cut.ids.count(image_id) % 10 == 0
    # an assistant answer still in range survives the cut
    conv2 = [{"role": "user", "content": "<image>\nok?"}, {"role": "assistant", "content": "Yes it is."}]
    enc = encode_conversation(tok, conv2, image_id, 10, 16 + 10, 1)
    assert enc is not None and enc.n_images == 1 and len(enc.ids) <= 26


def test_expand_images():
    ids, labels = expand_images([1, 9, 2, 9], 9, 3, [5, 6, 7, 8])
    assert ids == [1, 9, 9, 9, 2, 9, 9, 9] and labels == [5, IGNORE, IGNORE, IGNORE, 7, IGNORE, IGNORE, IGNORE]


def test_count_mismatches_name_both_numbers():
    tok, image_id = tokenizer()
    with pytest.raises(ValueError, match=r"has 1 image placeholder\(s\) \(<image>\) but 2 image\(s\)"):
        encode_conversation(tok, CONV, image_id, 4, 500, 2)
    model = lingvis.build("llava-nano", text={**lingvis.build("llava-nano").config.text, "vocab_size": tok.vocab_size},
                          image_token_id=image_id)
    with pytest.raises(ValueError, match=r"has 0 image placeholder\(s\) .* but 1 image\(s\)"):
        encode_prompt(tok, model, "no image here", 1)
    ids = encode_prompt(tok, model, "<image>\nhi", 1)
    assert ids.count(image_id) == model.tokens_per_image


def test_content_parts_become_placeholders():
    parts = [{"type": "text", "text": "Look: "}, {"type": "image_url", "image_url": {"url": "data:..."}},
             {"type": "text", "text": "and this"}, {"type": "image"}]
    plain, n = chat_messages([{"role": "user", "content": parts}])
    assert plain == [{"role": "user", "content": "Look: <image>\nand this<image>\n"}] and n == 2
    with pytest.raises(ValueError, match="unknown content part type 'audio'"):
        chat_messages([{"role": "user", "content": [{"type": "audio"}]}])
    tok, image_id = tokenizer()
    model = lingvis.build("llava-nano", text={**lingvis.build("llava-nano").config.text, "vocab_size": tok.vocab_size},
                          image_token_id=image_id)
    with pytest.raises(ValueError, match=r"the conversation has 2 image placeholder\(s\) .* but 1 image"):
        chat_prompt_ids(tok, model, [{"role": "user", "content": parts}], 1)


def test_llava_turns_are_validated():
    msgs = llava_messages([{"from": "human", "value": "<image>\nHi"}, {"from": "gpt", "value": "Hello"}])
    assert [m["role"] for m in msgs] == ["user", "assistant"]
    with pytest.raises(ValueError, match="turn 1 is from 'bot'"):
        llava_messages([{"from": "human", "value": "x"}, {"from": "bot", "value": "y"}])
    with pytest.raises(ValueError, match="no assistant"):
        llava_messages([{"from": "human", "value": "x"}])
    assert torch.tensor([1]).item() == 1


def test_weighted_turns_weigh_their_key_word_only():
    turns = [{"from": "human", "value": "<image>\nIs the red star left or right of the blue circle?"},
             {"from": "gpt", "value": "The red star is to the left of the blue circle.", "key": "left", "weight": 4},
             {"from": "human", "value": "And?"}, {"from": "gpt", "value": "Nothing else."}]
    msgs = llava_messages(turns)
    assert msgs[1]["weight"] == 4.0 and msgs[1]["key"] == "left" and "weight" not in msgs[3]
    tok, image_id = tokenizer()
    enc = encode_conversation(tok, msgs, image_id, tokens_per_image=4, max_len=500, n_images=1)
    assert len(enc.weights) == len(enc.labels)
    heavy = [t for t, w in zip(enc.labels, enc.weights) if w == 4.0]
    assert tok.decode(heavy) == "left"  # a char tokenizer: the key word's four tokens, nothing else
    assert all(w == 1.0 for t, w in zip(enc.labels, enc.weights) if t not in heavy)
    # unweighted conversations carry no weights (the batches stay as before)
    plain = encode_conversation(tok, llava_messages(turns[2:4] and [turns[0], turns[3]]), image_id, 4, 500, 1)
    assert plain.weights is None
    # the cut keeps weights aligned with the labels
    cut = encode_conversation(tok, msgs, image_id, 4, 80, 1)
    assert len(cut.weights) == len(cut.labels) == len(cut.ids)


def test_a_weight_without_key_weighs_the_whole_turn_and_bad_weights_are_named():
    tok, image_id = tokenizer()
    msgs = llava_messages([{"from": "human", "value": "<image>\nHi"}, {"from": "gpt", "value": "Yes.", "weight": 2}])
    enc = encode_conversation(tok, msgs, image_id, 4, 500, 1)
    labelled = [(t, w) for t, w in zip(enc.labels, enc.weights) if t != IGNORE]
    assert tok.decode([t for t, _ in labelled[:4]]) == "Yes." and {w for _, w in labelled} == {2.0}  # end included
    with pytest.raises(ValueError, match="turn 1 'weight' must be a positive number"):
        llava_messages([{"from": "human", "value": "x"}, {"from": "gpt", "value": "y", "weight": 0}])
    with pytest.raises(ValueError, match="turn 0 'weight'"):
        llava_messages([{"from": "human", "value": "x", "weight": 2}, {"from": "gpt", "value": "y"}])
    with pytest.raises(ValueError, match="'key' 'no' is not in its value"):
        llava_messages([{"from": "human", "value": "x"}, {"from": "gpt", "value": "yes", "weight": 2, "key": "no"}])


def test_a_key_matches_in_any_case():
    tok, image_id = tokenizer()
    msgs = llava_messages([{"from": "human", "value": "<image>\nIs it left?"},
                           {"from": "gpt", "value": "Yes, it is left.", "key": "yes", "weight": 5}])
    enc = encode_conversation(tok, msgs, image_id, 4, 500, 1)
    assert tok.decode([t for t, w in zip(enc.labels, enc.weights) if w == 5.0]) == "Yes"
