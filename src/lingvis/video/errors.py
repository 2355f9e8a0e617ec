"""The one error type of video reading: the message always names the file."""
from __future__ import annotations


class VideoError(ValueError):
    """A video file or frame folder is missing, unreadable, truncated, has no video stream, or is shorter
    than the frames asked for; the message names the file."""


class VideoTooShort(VideoError):
    """The video has fewer frames than the sampling asks for (and the sampling's `short` rule is 'error')."""
