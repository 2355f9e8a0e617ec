"""Video reading for lingvis: decoding with PyAV (seek-based, only the frames asked for), frame sampling
(TSN segments, fixed-stride clips, several clips per video), transforms to (T, C, H, W) tensors, dataset
readers and a Dataset of clips, and synthetic motion clips whose labels depend on temporal order.

PyAV (`pip install 'lingvis[video]'`) is imported when a video is opened, not here.
"""
from .clips import load_clips, load_video, sample_frames
from .dataset import VIDEO_ERRORS, VideoClips, stack_videos
from .decode import DEFAULT_FOLDER_FPS, VIDEO_EXTS, AVVideo, FrameFolder, VideoInfo, open_video, probe, read_frames
from .errors import VideoError, VideoTooShort
from .readers import (VideoFormatError, list_videos, read_captioned_videos, read_labelled_videos, read_msrvtt,
                      read_video_csv, read_video_folder, read_video_qa, read_webvid)
from .records import VideoRecord
from .sampling import SamplingSpec, sample_indices
from .transforms import VideoTransform, video_transform

__all__ = ["load_clips", "load_video", "sample_frames", "VIDEO_ERRORS", "VideoClips", "stack_videos",
           "DEFAULT_FOLDER_FPS", "VIDEO_EXTS", "AVVideo", "FrameFolder", "VideoInfo", "open_video", "probe",
           "read_frames", "VideoError", "VideoTooShort", "VideoFormatError", "list_videos", "read_captioned_videos",
           "read_labelled_videos", "read_msrvtt", "read_video_csv", "read_video_folder", "read_video_qa",
           "read_webvid", "VideoRecord", "SamplingSpec", "sample_indices", "VideoTransform", "video_transform"]
