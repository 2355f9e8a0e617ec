"""`lingvis.generate` with images: one prompt or a batch (a list of images per prompt, left-padded rows of
different lengths and image counts) give the same text; streaming agrees; errors name the problem."""
import string

import pytest
import torch

import lingvis
from lingvis.data.shapes import make_split_scenes, render_scene
from lingvis.recipes.llava import with_image_token
from lingvis.tokenizers import train_char


@pytest.fixture(scope="module")
def llava():
    torch.manual_seed(0)
    tok = train_char(string.printable)
    image_id = with_image_token(tok)
    base = lingvis.build("llava-nano").config
    model = lingvis.build("llava-nano", text={**base.text, "vocab_size": tok.vocab_size, "block_size": 160},
                          image_token_id=image_id).eval()
    images = [render_scene(s, 64) for s in make_split_scenes("test", 3)]
    return model, tok, images


def test_batch_equals_one_by_one_and_streaming(llava):
    model, tok, (a, b, c) = llava
    prompts = ["<image>\nWhat is it?", "Two: <image> and <image>.", "No image at all, a longer prompt."]
    images = [[a], [b, c], []]
    singles = [lingvis.generate(model, tok, p, max_new_tokens=8, images=i) for p, i in zip(prompts, images)]
    assert lingvis.generate(model, tok, prompts, max_new_tokens=8, images=images) == singles
    streamed = "".join(lingvis.generate(model, tok, prompts[0], max_new_tokens=8, images=a, stream=True))
    assert streamed == singles[0]
    assert singles[0] != lingvis.generate(model, tok, prompts[0], max_new_tokens=8, images=[b])  # the image matters


def test_errors_name_the_problem(llava):
    model, tok, (a, b, _) = llava
    with pytest.raises(ValueError, match=r"1 image placeholder\(s\) \(<image>\) but 2 image\(s\)"):
        lingvis.generate(model, tok, "<image>\nhi", images=[a, b])
    with pytest.raises(ValueError, match="2 prompts but 1 image lists"):
        lingvis.generate(model, tok, ["<image>", "<image>"], images=[[a]])
    lm = lingvis.build("gpt-nano", vocab_size=tok.vocab_size)
    with pytest.raises(ValueError, match="does not read images"):
        lingvis.generate(lm, tok, "hi", images=[a])
