"""The terminal image chat behind `lingvis chat --image IMG` (and `/image PATH` in a chat with an image-chat
model): images attach to the next message, stay in the conversation, and each reply streams."""
from __future__ import annotations

import sys


def chat_prompt(tok, model, history: list[dict], images: list[list], budget: int, keep: int) -> str | None:
    """The prompt for `history` (each message's images in `images`), dropping the oldest exchanges with their
    images (in place; the first `keep` messages stay) until it fits in `budget` tokens, image tokens counted."""
    per_image = model.tokens_per_image - 1  # a placeholder token becomes tokens_per_image slots
    while True:
        prompt = tok.apply_chat_template(history, add_generation_prompt=True)
        if len(tok.encode(prompt)) + per_image * sum(map(len, images)) <= budget:
            return prompt
        if len(history) - keep <= 1:
            return None
        for _ in range(2 if len(history) - keep > 1 and history[keep + 1]["role"] == "assistant" else 1):
            del history[keep], images[keep]


def _video_images(path: str, n: int) -> list:
    from ..video.clips import frame_images

    return frame_images(path, n)


def run_image_chat(model, tok, args, sampling: dict) -> int:
    from .. import generate
    from ..data.images import load_image
    from ..data.llava_inputs import image_token, reads_images

    if not reads_images(model):
        raise ValueError(f"--image needs an image-chat model (llava); {args.model} holds a "
                         f"{getattr(model, 'family', type(model).__name__)} model")
    placeholder = image_token(tok, model)
    n_frames = getattr(args, "video_frames", 4)
    pending = [load_image(p) for p in args.image] + [im for v in getattr(args, "video", []) for im in
                                                     _video_images(v, n_frames)]
    history = [{"role": "system", "content": args.system}] if args.system else []
    images: list[list] = [[] for _ in history]
    keep = len(history)
    reserve = args.max_new_tokens if args.overflow == "error" else 1
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"{len(pending)} image(s) attached to your first message; /image PATH attaches another, /video PATH "
              "its frames, /reset "
              "starts over, /quit leaves", file=sys.stderr)
    while True:
        if interactive:
            print("you> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line or line.strip() == "/quit":
            return 0
        text = line.rstrip("\n")
        if text.strip() == "/reset":
            del history[keep:], images[keep:]
            continue
        if text.startswith("/video "):
            pending += _video_images(text[len("/video "):].strip(), n_frames)
            print(f"(video frames attached to your next message: {len(pending)} pending)", file=sys.stderr)
            continue
        if text.startswith("/image "):
            pending.append(load_image(text[len("/image "):].strip()))
            print(f"(image attached to your next message: {len(pending)} pending)", file=sys.stderr)
            continue
        history.append({"role": "user", "content": f"{placeholder}\n" * len(pending) + text})
        images.append(pending)
        pending = []
        prompt = chat_prompt(tok, model, history, images, model.context_length - reserve, keep)
        if prompt is None:
            history.pop()
            pending = images.pop()
            print("error: that message (with its images) does not fit in the model's context "
                  f"({model.context_length} tokens); send a shorter one or /reset", file=sys.stderr)
            continue
        print("assistant> ", end="", flush=True)
        reply = []
        for piece in generate(model, tok, prompt, stream=True, images=[im for imgs in images for im in imgs],
                              **sampling):
            reply.append(piece)
            print(piece, end="", flush=True)
        print()
        history.append({"role": "assistant", "content": "".join(reply)})
        images.append([])
