"""The video room: probe a video, extract its frames, encode frames back into a video with the original audio."""

from facelab.video.encode import EncodeResult, EncodeSettings, encode_frames, list_frames
from facelab.video.extract import ExtractResult, extract_frames, frame_name
from facelab.video.probe import VideoInfo, probe
from facelab.video.tools import find_ffmpeg

__all__ = [
    "EncodeResult", "EncodeSettings", "encode_frames", "list_frames",
    "ExtractResult", "extract_frames", "frame_name",
    "VideoInfo", "probe", "find_ffmpeg",
]
