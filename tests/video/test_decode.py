import numpy as np
import pytest

from lingvis.video.decode import FrameFolder, open_video, probe, read_frames
from lingvis.video.errors import VideoError

from .conftest import grey_frames

av = pytest.importorskip("av")


@pytest.mark.parametrize("ext", [".mp4", ".webm", ".avi", ".mkv", ".ts"])
def test_sparse_reads_equal_sequential_decoding(videos, ext):
    with open_video(videos[ext]) as v:
        assert (v.info.num_frames, v.info.fps, v.info.width, v.info.height) == (100, 10.0, 32, 32)
        every = list(v.iter_frames())
    assert len(every) == 100
    indices = [99, 0, 5, 37, 37, 50, 51, 98, 21, 19]
    with open_video(videos[ext]) as v:
        got = v.get(indices)
    for i, frame in zip(indices, got):
        assert np.array_equal(frame, every[i]), f"{ext}: frame {i} differs from sequential decoding"
    assert all(abs(f.mean() - 2 * i) <= 3 for i, f in zip(indices, got))  # the grey level tells the index


def test_only_needed_frames_are_decoded(tmp_path):
    from lingvis.video.write import write_video

    path = write_video(tmp_path / "long.mp4", grey_frames(600, size=16, step=1), fps=30, keyframe_interval=30)
    with open_video(path) as v:
        frames = v.get([10, 300, 590])
        assert v.seeks == 3 and v.decoded <= 3 * 31  # from the keyframe before each frame, never the whole file
    with open_video(path) as v:
        dense = v.get(list(range(100, 140)))  # neighbours: decode forward, no seek per frame
        assert v.seeks <= 2 and v.decoded <= 41 + 30
    assert np.allclose([f.mean() for f in frames], [10, 300 % 256, 590 % 256], atol=2)
    assert np.allclose([f.mean() for f in dense], list(range(100, 140)), atol=2)


def test_frame_folder_is_a_video(tmp_path):
    from PIL import Image

    for i in (1, 2, 10, 3):  # natural order: 1, 2, 3, 10
        Image.fromarray(np.full((8, 12, 3), i * 10, np.uint8)).save(tmp_path / f"frame_{i}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    info = probe(tmp_path, folder_fps=5.0)
    assert (info.num_frames, info.fps, info.width, info.height, info.codec) == (4, 5.0, 12, 8, "frames")
    got = read_frames(tmp_path, [3, 0, 2])
    assert [int(f.mean()) for f in got] == [100, 10, 30]
    (tmp_path / "frame_2.png").write_bytes(b"garbage")
    with pytest.raises(VideoError, match=r"frame_2.png"):
        FrameFolder(tmp_path).get([1])


def test_missing_and_not_a_video(tmp_path):
    with pytest.raises(VideoError, match=r"video file not found: .*nope.mp4"):
        probe(tmp_path / "nope.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_text("this is not a video")
    with pytest.raises(VideoError, match=r"cannot open video .*bad.mp4"):
        probe(bad)
    with pytest.raises(VideoError, match="no frame images"):
        probe(tmp_path)  # a folder with no images


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "sound.wav"
    with av.open(str(path), "w") as out:
        s = out.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for p in s.encode(frame):
            out.mux(p)
        for p in s.encode():
            out.mux(p)
    with pytest.raises(VideoError, match=r"sound.wav: no video stream \(streams: audio\)"):
        probe(path)


def test_truncated_files_name_the_file(videos, tmp_path):
    data = videos[".mp4"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # index first (faststart): opens, ends early
    with open_video(cut) as v:
        assert v.info.num_frames == 100
        v.get([0, 10])  # the surviving part still reads
    with pytest.raises(VideoError, match=r"cut.mp4: .*truncated"):
        read_frames(cut, [0, 99])
    head = tmp_path / "head.mp4"
    head.write_bytes(data[:200])
    with pytest.raises(VideoError, match="head.mp4"):
        read_frames(head, [0])


def test_index_out_of_range(videos):
    with pytest.raises(VideoError, match=r"ramp.mp4: frame index 100 out of range \[0, 100\)"):
        read_frames(videos[".mp4"], [100])


def test_a_count_one_frame_high_reads_the_last_frame(videos):
    with open_video(videos[".webm"]) as v:
        every = list(v.iter_frames())
    with open_video(videos[".webm"]) as v:
        v.info = type(v.info)(**{**v.info.__dict__, "num_frames": 101})  # as if the duration said 101 frames
        last = v.get([99, 100])
    assert np.array_equal(last[0], every[99]) and np.array_equal(last[1], every[99])
