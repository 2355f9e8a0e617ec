"""Sparse video decoding: lingvis `read_frames` (seek to the keyframe before each wanted frame, decode forward
from there) against decoding every frame with PyAV and keeping the wanted ones, on a 10-minute video (64x64,
30 fps = 18,000 frames, H.264 with x264's default keyframe interval of up to 250 frames), generated here with
PyAV. Rows: 8 and 32 TSN segment-centre frames, and 3 clips of 16 frames at 4 fps (multi-clip evaluation);
the ratio is the speed-up (time of decoding everything / time of seeking). Peak memory (RSS growth while
decoding, each variant in a fresh process) is printed for seeking, decoding everything while keeping only
the wanted frames, and decoding everything into a list (what a read-the-whole-video loader holds).

    python -m benchmarks.video_decode [--quick] [--minutes 10]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

SIZE, FPS = 64, 30


def make_video(path: Path, minutes: float) -> Path:
    """A textured background drifting right with a square moving across it (so frames differ and P-frames
    carry real motion)."""
    from lingvis.video.write import write_video

    n = int(minutes * 60 * FPS)
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (SIZE, SIZE * 2, 3), dtype=np.uint8)
    texture = ((texture.astype(np.uint16) + np.roll(texture, 1, 1) + np.roll(texture, 1, 0)) // 3).astype(np.uint8)

    def frames():
        for i in range(n):
            f = np.roll(texture, i % (SIZE * 2), axis=1)[:, :SIZE].copy()
            x = (i * 2) % (SIZE - 12)
            f[20:32, x:x + 12] = (220, 40, 40)
            yield f
    return write_video(path, frames(), fps=FPS, quality=23, codec_options={"preset": "veryfast"})


def seek(path: str, indices: list[int]) -> list[np.ndarray]:
    from lingvis.video.decode import read_frames

    return read_frames(path, indices)


def decode_all(path: str, indices: list[int]) -> list[np.ndarray]:
    """Decode every frame in order; convert and keep only the wanted ones (bounded memory)."""
    import av

    wanted, out = set(indices), {}
    with av.open(path) as c:
        for i, frame in enumerate(c.decode(c.streams.video[0])):
            if i in wanted:
                out[i] = frame.to_ndarray(format="rgb24")
    return [out[i] for i in indices]


def hold_all(path: str, indices: list[int]) -> list[np.ndarray]:
    """Decode every frame into a list first (a whole-video loader), then pick."""
    import av

    with av.open(path) as c:
        every = [frame.to_ndarray(format="rgb24") for frame in c.decode(c.streams.video[0])]
    return [every[i] for i in indices]


VARIANTS = {"seek": seek, "decode_all": decode_all, "hold_all": hold_all}


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _child(variant: str, path: str, indices: list[int], repeats: int, queue) -> None:
    import torch  # noqa: F401  (imported before measuring, as in a training process)

    seek(path, [0])  # warm up imports and codec setup the same way for every variant (holds one frame)
    base = _rss_mb()
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        frames = VARIANTS[variant](path, indices)
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
        del frames
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    queue.put({"wall": statistics.median(wall), "cpu": statistics.median(cpu), "peak_growth_mb": peak - base})


def measure(variant: str, path: Path, indices: list[int], repeats: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(variant, str(path), indices, repeats, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def cases(n: int) -> dict[str, list[int]]:
    from lingvis.video.sampling import SamplingSpec, sample_indices

    out = {}
    for name, spec in (("8 TSN frames", SamplingSpec(num_frames=8)), ("32 TSN frames", SamplingSpec(num_frames=32)),
                       ("3 clips x 16 frames at 4 fps", SamplingSpec(num_frames=16, mode="stride", fps=4.0,
                                                                     clips=3))):
        out[name] = [i for clip in sample_indices(spec, n, FPS, name="bench") for i in clip]
    return out


def run(quick: bool = False, minutes: float | None = None) -> list[dict]:
    from lingvis.video.decode import probe

    minutes = minutes or (2.0 if quick else 10.0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = make_video(Path(tmp) / "long.mp4", minutes)
        info = probe(path)
        print(f"generated {info.num_frames} frames ({info.duration / 60:.1f} min, {path.stat().st_size / 2**20:.1f} "
              f"MiB) in {time.perf_counter() - t0:.1f}s", flush=True)
        for name, indices in cases(info.num_frames).items():
            ref_frames, ours_frames = decode_all(str(path), indices), seek(str(path), indices)
            same = all(np.array_equal(a, b) for a, b in zip(ref_frames, ours_frames))
            ours = measure("seek", path, indices, 3 if quick else 5)
            ref = measure("decode_all", path, indices, 1 if quick else 2)
            rows.append({"benchmark": f"decode {name} of a {minutes:g}-min video", "lingvis": round(1 / ours["wall"], 2),
                         "reference": round(1 / ref["wall"], 2), "unit": "videos/s",
                         "ratio": round(ref["wall"] / ours["wall"], 1), "cpu_ratio": round(ref["cpu"] / ours["cpu"], 1),
                         "frames": len(indices), "identical_frames": same, "seek_ms": round(ours["wall"] * 1e3, 1),
                         "decode_all_ms": round(ref["wall"] * 1e3, 1),
                         "peak_growth_mb": {"seek": round(ours["peak_growth_mb"], 1),
                                            "decode_all": round(ref["peak_growth_mb"], 1)}})
            print(json.dumps(rows[-1]), flush=True)
        held = measure("hold_all", path, cases(info.num_frames)["8 TSN frames"], 1)
        rows[0]["peak_growth_mb"]["hold_all"] = round(held["peak_growth_mb"], 1)
        print(f"peak memory growth, 8 frames: seek {rows[0]['peak_growth_mb']['seek']} MiB, decode all keeping 8 "
              f"{rows[0]['peak_growth_mb']['decode_all']} MiB, decode all into a list {held['peak_growth_mb']:.1f} "
              f"MiB ({held['wall']:.1f}s)", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a 2-minute video, fewer repeats")
    ap.add_argument("--minutes", type=float, help="video length (default 10)")
    a = ap.parse_args()
    for r in run(a.quick, a.minutes):
        print(f"{r['benchmark']}: seek {r['seek_ms']} ms vs decode-all {r['decode_all_ms']} ms -> {r['ratio']}x "
              f"(CPU {r['cpu_ratio']}x), identical frames: {r['identical_frames']}", flush=True)


if __name__ == "__main__":
    main()
