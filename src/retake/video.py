"""Video files in and out: `probe`, `read`, `write`, `write_gif`, and the one video type of retake, `Video`.

Decoding and encoding go through PyAV (FFmpeg). What `read` promises:

- Frames are RGB uint8 (F, H, W, 3) *as displayed*: a display-matrix rotation (phone videos) is applied.
- Ranges are half-open. `start`/`end` index source frames in presentation order; `start_time`/`end_time` are
  seconds from the start of the video stream.
- With `fps`, output frame k shows the instant t_k = t0 + k / fps (t0: start of the range): the last source
  frame whose timestamp is at or before t_k, i.e. the frame on screen at that instant (the first frame for
  instants before it). Every instant before the end of the range gets a frame, so a range of D seconds gives
  ceil(D * fps) frames. This is exact on variable-frame-rate input: frames repeat where the source held a
  frame longer (or when upsampling) and are skipped when downsampling.
- It seeks to the keyframe before the range, stops decoding as soon as the range or `max_frames` is
  satisfied, and converts to RGB only the frames it returns.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image

from retake import files
from retake.checks import check_finite, check_int
from retake.errors import RetakeError

__all__ = [
    "CorruptStreamError",
    "MissingFileError",
    "NoFramesError",
    "NoVideoStreamError",
    "NotMediaError",
    "Video",
    "VideoError",
    "VideoInfo",
    "probe",
    "read",
    "resize_cover_crop",
    "write",
    "write_gif",
]

# Packets can leave the demuxer out of presentation order (B-frames). Sorting this many more timestamps than
# needed makes the first ones exact for any real encoder's reordering depth.
_REORDER_MARGIN = 32
# Timestamps are compared in stream ticks held as floats; this absorbs float rounding, not real differences.
_TICK_EPS = 1e-3
# GIF delays are whole centiseconds and browsers stretch delays under 20 ms to 100 ms.
_GIF_MAX_FPS = 50.0
_GIF_MAX_CENTIS = 65535  # the longest frame delay a GIF can store
X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)
_CV2_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


# ----------------------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------------------
class VideoError(RetakeError):
    """A video file that cannot be used. `str()` is ``"<path>: <reason>"``."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path).expanduser()
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # the default pickling would call __init__ with the message alone
        return (type(self), (self.path, self.reason))


class MissingFileError(VideoError, FileNotFoundError):
    """The path does not exist."""


class NotMediaError(VideoError):
    """The file exists but FFmpeg cannot read it as a media container (empty, text, unknown format)."""


class NoVideoStreamError(VideoError):
    """A media file without a video stream (e.g. audio only)."""


class NoFramesError(VideoError):
    """A video stream from which not a single frame decodes."""


class UnwritableOutputError(VideoError):
    """A video cannot be written where asked: a wrong extension, a folder there, or no way to create or write
    its folder. `check_output` raises it before the work that would produce the video."""


class CorruptStreamError(VideoError):
    """Some frames decoded, others failed or are missing (a truncated or damaged file)."""

    def __init__(self, path: str | os.PathLike[str], reason: str, *, decoded: int, failed: int) -> None:
        super().__init__(path, reason)
        self.decoded = decoded
        self.failed = failed

    def __reduce__(self):
        return (_corrupt_stream_error, (self.path, self.reason, self.decoded, self.failed))


def _corrupt_stream_error(path: Path, reason: str, decoded: int, failed: int) -> CorruptStreamError:
    return CorruptStreamError(path, reason, decoded=decoded, failed=failed)


# ----------------------------------------------------------------------------------------------------------
# types
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoInfo:
    """What `probe` learns about a file's first video stream, from its packets (only one frame is decoded)."""

    path: Path
    container: str  # FFmpeg demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    codec: str  # e.g. "h264", "mpeg4"
    width: int  # as displayed (rotation applied)
    height: int  # as displayed (rotation applied)
    rotation: int  # clockwise degrees (0, 90, 180, 270) applied to stored frames to display them
    fps: float  # average: frame_count / duration
    variable_fps: bool  # frame timestamp steps differ by more than their rounding
    frame_count: int  # packets in the stream, i.e. frames actually present in the file
    duration: float  # seconds, first frame's start to last frame's end
    has_audio: bool


@dataclass(eq=False)  # field-wise == would compare arrays elementwise and fail
class Video:
    """The one video type of retake: RGB frames and the frame rate they represent.

    frames: uint8 (F, H, W, 3) RGB, 0-255 (from floats in [0, 1]: `(frames * 255).round().astype(np.uint8)`;
    from OpenCV's BGR: `frames[..., ::-1]`). fps: frames per second, a finite number > 0. Anything else is
    a ValueError naming it.
    """

    frames: np.ndarray  # (F, H, W, 3) uint8, RGB
    fps: float
    # Packets that failed to decode or are missing from a cut file, plus frames the decoder flagged corrupt;
    # non-zero only from read(..., allow_partial=True).
    decode_errors: int = 0

    def __post_init__(self) -> None:
        frames = self.frames
        if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"Video.frames must be an (F, H, W, 3) array, got {_describe(frames)}")
        if frames.dtype != np.uint8:
            hint = (
                " (floats in [0, 1]: (frames * 255).round().astype(np.uint8))"
                if frames.dtype.kind == "f"
                else ""
            )
            raise ValueError(f"Video.frames must be uint8, got dtype {frames.dtype}{hint}")
        if frames.shape[1] == 0 or frames.shape[2] == 0:
            raise ValueError(f"Video.frames must have a non-empty picture, got shape {frames.shape}")
        # A str or None would fail inside math.isfinite with a TypeError that names neither field nor value.
        if not (_is_number(self.fps) and math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"Video.fps must be a finite number > 0, got {self.fps!r}")
        check_int("Video.decode_errors", self.decode_errors, minimum=0)
        self.fps = float(self.fps)

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]

    @property
    def height(self) -> int:
        return self.frames.shape[1]

    @property
    def width(self) -> int:
        return self.frames.shape[2]

    @property
    def duration(self) -> float:
        """Seconds covered by the frames (num_frames / fps)."""
        return self.num_frames / self.fps


def _is_number(value: object) -> bool:
    """A real number that is not a bool (True would pass for 1 fps)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _describe(array: object) -> str:
    if isinstance(array, np.ndarray):
        return f"shape {array.shape} {array.dtype}"
    return f"a {type(array).__name__}"


# ----------------------------------------------------------------------------------------------------------
# opening files
# ----------------------------------------------------------------------------------------------------------
def _open(path: Path) -> av.container.InputContainer:
    """Open a container, turning every way a path can fail into one `VideoError` subclass."""
    if not path.exists():
        raise MissingFileError(path, "file not found")
    if path.is_dir():
        raise NotMediaError(path, "is a directory, not a media file")
    if path.stat().st_size == 0:
        raise NotMediaError(path, "file is empty (0 bytes)")
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        # FFmpeg says only "Invalid data found": an unknown format, or a container whose index is missing
        # (e.g. an mp4 cut short before its moov atom, as a copy or a recording stopped half-way leaves it).
        if _mp4_without_index(path):
            reason = "an MP4/MOV file without its index (no 'moov' box): cut short, or still being written"
            raise NotMediaError(path, reason) from exc
        raise NotMediaError(path, f"not a readable media file (FFmpeg: {exc.strerror})") from exc


# HEIF/AVIF photos start with an 'ftyp' box too, but hold no 'moov' by design: not a cut-short video.
_STILL_IMAGE_BRANDS = {b"mif1", b"msf1", b"heic", b"heix", b"heim", b"heis", b"hevc", b"avif", b"avis"}


def _mp4_without_index(path: Path) -> bool:
    """Whether `path` starts like an MP4/MOV (an 'ftyp' box) but holds no whole 'moov' box at its top level."""
    size = path.stat().st_size
    with open(path, "rb") as file:
        head = file.read(12)
        if head[4:8] != b"ftyp" or head[8:12] in _STILL_IMAGE_BRANDS:
            return False
        offset = 0
        while offset + 8 <= size:  # top-level boxes: a 32-bit size (1: a 64-bit one follows), a 4-byte type
            file.seek(offset)
            head = file.read(16)
            length, kind = int.from_bytes(head[:4], "big"), head[4:8]
            if length == 1 and len(head) == 16:
                length = int.from_bytes(head[8:16], "big")
            elif length == 0:  # the box runs to the end of the file
                length = size - offset
            if kind == b"moov":
                return offset + length > size
            if length < 8:
                return False  # not a box structure after all: leave the verdict to FFmpeg's message
            offset += length
    return True


def _video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    """The first real video stream (cover art in audio files is a 'video' stream too, but not a video)."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
    raise NoVideoStreamError(path, f"no video stream (streams found: {kinds})")


def _rotation(frame: av.VideoFrame) -> int:
    """Clockwise degrees that turn a decoded frame into the displayed picture (PyAV reports them CCW)."""
    return round(-frame.rotation / 90) * 90 % 360


# ----------------------------------------------------------------------------------------------------------
# probe
# ----------------------------------------------------------------------------------------------------------
@dataclass
class _Scan:
    """Packet timestamps of a stream, collected by demuxing only."""

    stamps: list[int] = field(default_factory=list)  # presentation timestamps, in demux order
    first_frame: av.VideoFrame | None = None

    def sorted_stamps(self) -> np.ndarray:
        return np.unique(np.asarray(self.stamps, dtype=np.int64))  # (N,) sorted, duplicates dropped


def _scan(
    container: av.container.InputContainer, stream: av.VideoStream, *, decode_first: bool, limit: int | None
) -> _Scan:
    """Demux the stream's packets (cheap: no decoding), decoding only until a first frame appears if asked."""
    scan = _Scan()
    step = _frame_ticks(stream)
    if decode_first:
        # Only a keyframe is decoded, on one thread: the decoder's thread pool and the frames it would decode
        # ahead to fill its reordering delay cost more than the frame itself (half of probe's time).
        stream.codec_context.skip_frame = "NONKEY"
        stream.codec_context.thread_count = 1
    try:
        for packet in container.demux(stream):
            if decode_first and scan.first_frame is None:
                scan.first_frame = _first_decoded(stream, packet)
            if packet.size == 0 or packet.is_discard:  # the flush packet, or a sample an edit list hides
                continue
            stamp = packet.pts if packet.pts is not None else packet.dts
            scan.stamps.append(
                stamp if stamp is not None else len(scan.stamps) * step
            )  # raw streams: untimed
            if limit is not None and len(scan.stamps) >= limit:
                break
    except av.error.FFmpegError:
        pass  # a damaged tail: keep what was demuxed, read() reports the damage
    return scan


def _first_decoded(stream: av.VideoStream, packet: av.Packet) -> av.VideoFrame | None:
    """The frame of `packet`, if it decodes to one. A decoder holds a keyframe back while it waits for frames
    to reorder; draining it hands the frame over at once."""
    try:
        frames = packet.decode()
        if not frames and packet.is_keyframe:
            frames = stream.codec_context.decode(None)  # drain
            if not frames:  # a damaged keyframe: reset the drained decoder for the next one
                stream.codec_context.flush_buffers()
    except av.error.FFmpegError:
        stream.codec_context.flush_buffers()
        return None
    return frames[0] if frames else None


def _first_frame_of_any_packet(path: Path) -> av.VideoFrame | None:
    """The first frame that decodes, trying every packet: the slow path, for streams whose keyframes are not
    flagged (a keyframes-only decoder skips everything there)."""
    with _open(path) as container:
        stream = _video_stream(container, path)
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue
            if frames:
                return frames[0]
    return None


def _header_end(stream: av.VideoStream, path: Path) -> int | None:
    """The tick where the stream ends according to the container's sample index (mp4, mov, avi), if trusted.

    Packet durations are no help: they follow decode order, not display order, with B-frames.
    """
    if not stream.duration or not stream.frames or _missing_from_index(stream, path, quick=True):
        return None
    return (stream.start_time or 0) + stream.duration


def _missing_from_index(
    stream: av.VideoStream, path: Path, *, quick: bool, before: float | None = None
) -> int:
    """Samples the container's index lists but the file does not hold: it was cut short.

    quick: look only at the last sample (1 if it is missing, else 0); cuts remove the tail of a file.
    before: count only samples whose decode timestamp is earlier.
    """
    entries = stream.index_entries
    if len(entries) == 0:
        return 0
    size = path.stat().st_size
    if quick:
        return int(entries[-1].pos + entries[-1].size > size)
    # A sample only partly present still demuxes (and then fails to decode), so count absent ones only.
    return sum(
        1
        for e in entries
        if e.pos >= size and not e.is_discard and (before is None or e.timestamp < before - _TICK_EPS)
    )


def _last_step(stamps: np.ndarray, stream: av.VideoStream) -> int:
    """How long the last frame lasts when nothing says: as long as the one before it."""
    return int(stamps[-1] - stamps[-2]) if len(stamps) >= 2 else _frame_ticks(stream)


def _timed(stream: av.VideoStream) -> bool:
    """Whether the container gives timestamps (raw elementary streams such as .h264 files do not)."""
    return stream.start_time is not None


def _source_fps(stream: av.VideoStream) -> float:
    """The average frame rate of the stream (for untimed streams FFmpeg's average is a placeholder)."""
    rate = stream.average_rate if _timed(stream) else None
    return float(rate or stream.guessed_rate or stream.average_rate or 0)


def _frame_ticks(stream: av.VideoStream) -> int:
    """Ticks of one frame at the stream's nominal rate (for timestamps the container does not give)."""
    rate = stream.guessed_rate or stream.average_rate
    return max(1, round(1 / (rate * stream.time_base))) if rate and stream.time_base else 1


def _variable_rate(stamps: np.ndarray) -> bool:
    """Whether frame steps differ by more than timestamp rounding (one tick, or 1% of a step)."""
    if len(stamps) < 3:
        return False
    steps = np.diff(stamps)  # (N-1,) ticks between consecutive frames
    median = float(np.median(steps))
    # Rounding to ticks makes a constant step alternate between floor and ceil (33/34 ms at 30 fps), but
    # when a step is a single tick (time base 1/fps) there is no rounding and any change is real.
    tolerance = max(1.0 if median >= 2 else 0.0, 0.01 * median)
    return float(steps.max() - steps.min()) > tolerance


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Describe a video file: one demux pass over its packets plus one decoded frame (for rotation).

    Raises a `VideoError` subclass naming the file and the reason when it cannot be used.
    """
    path = Path(path).expanduser()
    with _open(path) as container:
        stream = _video_stream(container, path)
        scan = _scan(container, stream, decode_first=True, limit=None)
        if scan.first_frame is None:  # no packet flagged as a keyframe decoded (some muxers flag none)
            scan.first_frame = _first_frame_of_any_packet(path)
        if scan.first_frame is None:
            raise NoFramesError(path, f"no frame decodes ({len(scan.stamps)} video packets)")
        stamps = scan.sorted_stamps()
        end = _header_end(stream, path)
        estimate = int(stamps[-1]) + _last_step(stamps, stream)
        # No index, or not these packets: the estimate. A header can also end before its own last frame does
        # (an mp4 whose B-frames start the decode times below zero was written 6000 ticks long for 6 frames
        # of 1001 ticks); the frames' stamps win then.
        trusted = end is not None and len(scan.stamps) == stream.frames
        end = max(end, estimate) if trusted else estimate
        ticks = Fraction(end - int(stamps[0])) * stream.time_base
        frame_count = len(scan.stamps)
        fps = frame_count / ticks if ticks > 0 else (stream.guessed_rate or stream.average_rate or 0)
        rotation = _rotation(scan.first_frame)
        width, height = stream.codec_context.width, stream.codec_context.height
        if rotation in (90, 270):
            width, height = height, width
        return VideoInfo(
            path=path,
            container=container.format.name,
            codec=stream.codec_context.name,
            width=width,
            height=height,
            rotation=rotation,
            fps=float(fps),
            variable_fps=_variable_rate(stamps),
            frame_count=frame_count,
            duration=float(ticks) if ticks > 0 else (frame_count / float(fps) if fps else 0.0),
            has_audio=len(container.streams.audio) > 0,
        )


# ----------------------------------------------------------------------------------------------------------
# read
# ----------------------------------------------------------------------------------------------------------
# Threads each `read` decoder may use in this process; 0 lets FFmpeg take one per core. Processes that run
# beside others which already fill the cores (the curation workers) lower it: there, the decoder's frame
# threads only add switching (8% slower curation with two workers on two cores).
_decoder_threads = 0


def set_decoder_threads(count: int) -> None:
    """Threads each decoder of `read` may use from now on, in this process (0: FFmpeg picks, one per core)."""
    global _decoder_threads
    if count < 0:
        raise ValueError(f"decoder threads must be >= 0 (0: one per core), got {count}")
    _decoder_threads = count


def decoder_threads() -> int:
    return _decoder_threads


@dataclass(frozen=True)
class _Window:
    """The requested span of the stream in ticks: frames with lo <= pts < hi (hi None: to the end)."""

    lo: float | None  # None: from the first frame
    hi: float | None


@dataclass
class _DecodeLog:
    """What the decode loop saw, for error reporting and truncation checks."""

    decoded: int = 0  # frames out of the decoder, including ones before the window
    failed: int = 0  # packets that raised, frames flagged corrupt, demux failures
    reached_eof: bool = False


def _check_read_args(
    start: int | None,
    end: int | None,
    start_time: float | None,
    end_time: float | None,
    fps: float | None,
    size: tuple[int, int] | None,
    max_frames: int | None,
) -> None:
    if (start is not None or end is not None) and (start_time is not None or end_time is not None):
        raise ValueError(
            f"give a frame range (start={start}, end={end}) or a time range "
            f"(start_time={start_time}, end_time={end_time}), not both"
        )
    if start is not None:
        check_int("start", start, minimum=0)
    if end is not None and check_int("end", end) <= (start or 0):
        raise ValueError(f"end must be > start, got start={start}, end={end}")
    if start_time is not None:
        check_finite("start_time", start_time, minimum=0)
    if end_time is not None and check_finite("end_time", end_time) <= (start_time or 0.0):
        raise ValueError(f"end_time must be > start_time, got start_time={start_time}, end_time={end_time}")
    if fps is not None and not (_is_number(fps) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a finite number > 0, got {fps!r}")
    if size is not None:
        _check_size(size)
    if max_frames is not None:
        check_int("max_frames", max_frames, minimum=1)


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    """`size` as (height, width) ints; whole floats such as 64.0 are taken, anything else is refused."""
    try:
        height, width = size
        whole = all(float(s) == int(s) and s >= 1 for s in size)
    except (TypeError, ValueError):
        whole = False
    if not whole or any(isinstance(s, bool) for s in size):
        raise ValueError(f"size must be (height, width) with two positive integers, got {size!r}")
    return int(height), int(width)


def read(
    path: str | os.PathLike[str],
    *,
    start: int | None = None,
    end: int | None = None,
    start_time: float | None = None,
    end_time: float | None = None,
    fps: float | None = None,
    size: tuple[int, int] | None = None,
    max_frames: int | None = None,
    allow_partial: bool = False,
    skip_loop_filter: bool = False,
) -> Video:
    """Decode frames [start, end) or [start_time, end_time) of a video into a `Video` (see the module doc).

    fps: resample to this rate by presentation timestamps (None: every source frame; `Video.fps` is then the
        stream's average rate, or the frames' own where the container states a rate they do not keep).
        size: (H, W), resize to cover then centre-crop (`resize_cover_crop`); None keeps the displayed size.
        max_frames: stop after this many output frames.
    allow_partial: on a truncated or damaged stream return what decodes, with `Video.decode_errors` counting
        the packets/frames that failed or are missing; otherwise raise `CorruptStreamError`.
    skip_loop_filter: decode without the in-loop deblocking filter (FFmpeg's `skip_loop_filter=all`; H.264,
        HEVC and the other codecs that honour it). About a sixth less decoding CPU; the frames drift from the
        exact decode by about 42-45 dB PSNR at native size on the sample clips, less once downscaled. For
        analysis and downscaled output, not for exact frames.
    Raises a `VideoError` subclass for unusable files and `ValueError` for bad arguments or a range past the end.
    """
    _check_read_args(start, end, start_time, end_time, fps, size, max_frames)
    size = None if size is None else _check_size(size)
    path = Path(path).expanduser()
    with _open(path) as container:
        stream = _decoding_stream(container, path, skip_loop_filter)
        window = _window(container, stream, path, start, end, start_time, end_time)
        sought = window.lo is not None and _timed(stream)
        decoded = None
        if not sought or _seek(container, stream, window.lo):
            decoded = _decode_window(container, stream, path, window, fps, max_frames, size)
    if decoded is not None and (not sought or decoded[1].decoded > 0):
        stack, log, source_fps = decoded
    else:
        # Some demuxers refuse a seek (the container stands wherever `_window`'s demuxing left it), or lose
        # their packets on one (a single .jpg: FFmpeg's image2 has nothing after a seek to 0 and answers
        # EPERM past it): decode from the start instead, which the window still bounds.
        with _open(path) as container:
            stream = _decoding_stream(container, path, skip_loop_filter)
            stack, log, source_fps = _decode_window(container, stream, path, window, fps, max_frames, size)
    if stack.count == 0:
        _raise_empty(path, log, start, start_time)
    if log.failed and not allow_partial:
        raise CorruptStreamError(
            path,
            f"truncated or corrupt video stream: {stack.count} frames decoded, {log.failed} packets failed "
            "or missing (read(..., allow_partial=True) keeps what decodes)",
            decoded=stack.count,
            failed=log.failed,
        )
    return Video(stack.frames(), fps=fps or source_fps, decode_errors=log.failed)


def _decoding_stream(
    container: av.container.InputContainer, path: Path, skip_loop_filter: bool
) -> av.VideoStream:
    """The video stream, its decoder set up for `read`."""
    stream = _video_stream(container, path)
    stream.thread_type = "AUTO"  # frame + slice threads: the main decode speed-up
    stream.codec_context.thread_count = _decoder_threads
    if skip_loop_filter:  # read by the decoder when it opens, at the first packet
        stream.codec_context.options = {**stream.codec_context.options, "skip_loop_filter": "all"}
    return stream


def _seek(container: av.container.InputContainer, stream: av.VideoStream, tick: float) -> bool:
    """Seek to the keyframe at or before `tick`; False when the demuxer cannot (`read` then starts over)."""
    try:
        container.seek(int(tick), stream=stream, backward=True)
    except av.error.FFmpegError:
        return False
    return True


def _decode_window(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    path: Path,
    window: _Window,
    fps: float | None,
    max_frames: int | None,
    size: tuple[int, int] | None,
) -> tuple[_FrameStack, _DecodeLog, float]:
    """Decode from where the container stands: the frames `read` returns, what decoding saw, the source fps."""
    log = _DecodeLog()
    stack = _FrameStack(_capacity(stream, window, fps, max_frames))
    span = _Span()
    chosen = span.watch(_select(_decode(container, stream, log), stream, path, window, fps, max_frames))
    _convert(chosen, size, stack)
    if log.reached_eof:  # decoding ran into the end of the file: was it cut short inside the window?
        log.failed += _missing_from_index(stream, path, quick=False, before=window.hi)
    return stack, log, span.rate(stream)


@dataclass
class _Span:
    """The first and last timestamps of the frames `read` returns, for their frame rate."""

    first: int | None = None
    previous: int | None = None
    last: int | None = None
    count: int = 0

    def watch(self, frames: Iterator[av.VideoFrame]) -> Iterator[av.VideoFrame]:
        for frame in frames:
            if self.first is None:
                self.first = frame.pts
            self.previous, self.last = self.last, frame.pts
            self.count += 1
            yield frame

    def rate(self, stream: av.VideoStream) -> float:
        """The frames' own average rate, or the stream's when they agree to timestamp rounding.

        A container's stated rate can be wrong: Matroska and WebM state a default frame duration, and a
        variable-rate recording (screen capture, WebRTC) that states 25 fps but holds 14 frames a second
        would otherwise be edited or clipped 1.8 times too fast.
        """
        nominal = _source_fps(stream)
        if self.count < 2 or not _timed(stream) or self.last <= self.previous:
            return nominal
        # As `probe` counts it: the last frame lasts as long as the one before it.
        ticks = 2 * self.last - self.previous - self.first
        measured = float(self.count / (ticks * stream.time_base))
        if not nominal:
            return measured
        # Timestamps are rounded to ticks, and `ticks` adds three of them: up to two ticks off (a millisecond
        # time base puts 3 frames at 60 fps 2% off), or 1% over long spans.
        expected = self.count / (nominal * stream.time_base)
        return nominal if abs(ticks - expected) <= max(2.0, 0.01 * expected) else measured


def _window(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    path: Path,
    start: int | None,
    end: int | None,
    start_time: float | None,
    end_time: float | None,
) -> _Window:
    """Turn a frame-index or time range into stream ticks."""
    if start is None and end is None:
        origin = stream.start_time or 0
        lo = None if start_time is None else origin + start_time / stream.time_base
        hi = None if end_time is None else origin + end_time / stream.time_base
        return _Window(lo, hi)
    first, stop = start or 0, end
    if not _timed(stream):  # decoding numbers frames at the nominal rate from 0 (raw streams cannot seek)
        step = _frame_ticks(stream)
        return _Window(float(first * step), None if stop is None else float(stop * step))
    # Frame indices need the presentation order of packets: demux (no decoding) just far enough.
    needed = (stop if stop is not None else first + 1) + _REORDER_MARGIN
    scan = _scan(container, stream, decode_first=False, limit=needed)
    stamps = scan.sorted_stamps()
    if first >= len(stamps):
        raise ValueError(f"start={first} is past the last frame of {path} ({len(stamps)} frames)")
    hi = float(stamps[stop]) if stop is not None and stop < len(stamps) else None
    return _Window(float(stamps[first]), hi)


def _select(
    frames: Iterator[av.VideoFrame],
    stream: av.VideoStream,
    path: Path,
    window: _Window,
    fps: float | None,
    max_frames: int | None,
) -> Iterator[av.VideoFrame]:
    """The frames `read` returns, in order (a frame may repeat when resampling)."""
    limit = max_frames if max_frames is not None else math.inf
    if fps is None:
        return _select_native(frames, window, limit)
    step = 1.0 / (fps * stream.time_base)  # ticks between output instants
    return _select_resampled(frames, window, step, limit, _header_end(stream, path), _frame_ticks(stream))


def _decode(
    container: av.container.InputContainer, stream: av.VideoStream, log: _DecodeLog
) -> Iterator[av.VideoFrame]:
    """Frames in presentation order. Failures are counted in `log`, not raised, so callers decide."""
    step = _frame_ticks(stream)
    next_pts = 0
    try:
        for packet in container.demux(stream):
            try:
                decoded = packet.decode()  # the final empty packet flushes the decoder
            except av.error.FFmpegError:
                log.failed += 1
                continue
            for frame in decoded:
                if frame.pts is None:  # raw streams: number frames at the nominal rate
                    frame.pts = next_pts
                next_pts = frame.pts + step
                log.decoded += 1
                log.failed += frame.is_corrupt
                yield frame
    except av.error.FFmpegError:
        log.failed += 1  # the container is damaged from here on
        return
    log.reached_eof = True


def _select_native(frames: Iterator[av.VideoFrame], window: _Window, limit: float) -> Iterator[av.VideoFrame]:
    """Every source frame inside the window, up to `limit` of them."""
    count = 0
    for frame in frames:
        if window.lo is not None and frame.pts < window.lo - _TICK_EPS:
            continue  # decoded only because decoding starts at the keyframe before the window
        if window.hi is not None and frame.pts >= window.hi - _TICK_EPS:
            return
        yield frame
        count += 1
        if count >= limit:
            return


def _select_resampled(
    frames: Iterator[av.VideoFrame],
    window: _Window,
    step: float,
    limit: float,
    stream_end: int | None,
    frame_ticks: int,
) -> Iterator[av.VideoFrame]:
    """For instants t_k = t0 + k * step (ticks) inside the window, the last frame with pts <= t_k.

    A frame may be yielded several times in a row (held) or never (skipped). stream_end: the tick where the
    last frame stops showing, from the container's index; None: the last frame lasts as long as the one before,
    or `frame_ticks` (the nominal rate) when it is the only one (a still image, a one-frame mkv or webm).
    """
    held: av.VideoFrame | None = None
    t0 = window.lo
    count = 0
    last_step = frame_ticks  # ticks between the last two frames, for a last frame that carries no duration
    for frame in frames:
        if t0 is None:
            t0 = float(frame.pts)
        # Instants before this frame still show the held one (or this one, if the window starts earlier).
        bound = frame.pts if window.hi is None else min(frame.pts, window.hi)
        while count < limit and t0 + count * step < bound - _TICK_EPS:
            yield held if held is not None else frame
            count += 1
        if count >= limit or (window.hi is not None and frame.pts >= window.hi - _TICK_EPS):
            return
        if held is not None:
            last_step = frame.pts - held.pts
        held = frame
    if held is None or t0 is None:
        return
    # End of stream: the last frame stays on screen until the stream ends.
    stop = stream_end if stream_end is not None else held.pts + last_step
    if window.hi is not None:
        stop = min(stop, window.hi)
    while count < limit and t0 + count * step < stop - _TICK_EPS:
        yield held
        count += 1


class _FrameStack:
    """Output frames copied straight into one preallocated (capacity, H, W, 3) array, grown if it fills.

    Copying each frame while it is fresh in cache beats stacking a list at the end (a second pass over all
    the memory), and pages of the array past the frames written are never touched, so never allocated.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self.array: np.ndarray | None = None  # (capacity, H, W, 3) uint8
        self.count = 0

    def append(self, image: np.ndarray) -> None:
        if self.array is None:
            self.array = np.empty((self.capacity, *image.shape), dtype=np.uint8)
        elif image.shape != self.array.shape[1:]:
            image = _cover_crop_one(image, self.array.shape[1:3])  # the stream changed size mid-way
        if self.count == len(self.array):
            grown = np.empty((2 * len(self.array), *self.array.shape[1:]), dtype=np.uint8)
            grown[: self.count] = self.array
            self.array = grown
        self.array[self.count] = image
        self.count += 1

    def repeat_last(self) -> None:
        self.append(self.array[self.count - 1])

    def frames(self) -> np.ndarray:
        return self.array[: self.count]  # (F, H, W, 3)


def _convert(frames: Iterator[av.VideoFrame], size: tuple[int, int] | None, stack: _FrameStack) -> None:
    """Append the frames as displayed RGB (H, W, 3) to `stack`; a frame repeated in a row is converted once.

    Reused `VideoReformatter`s serve the whole read: `VideoFrame.to_ndarray`/`reformat` build a fresh swscale
    context for every frame, which costs more than decoding the frame (2.5x slower reads on the sample clips).
    """
    rgb = _RGB()
    previous: av.VideoFrame | None = None
    rotation = None
    for frame in frames:
        if frame is previous:
            stack.repeat_last()
            continue
        previous = frame
        if rotation is None:
            rotation = _rotation(frame)
        if size is None:
            image = rgb.native(frame)  # (h, w, 3) as stored
        else:
            image = _scaled_rgb(
                rgb, frame, rotation, size
            )  # (h', w', 3) as stored, covering size once rotated
        if rotation:
            image = cv2.rotate(image, _CV2_ROTATE[rotation])  # (H, W, 3) as displayed
        if size is not None:
            image = _centre_crop(image, size)
        stack.append(image)


# Pixel formats swscale scales within (no conversion); others are scaled and converted in one call.
_SCALABLE_FORMATS = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "gray", "yuv420p10le"}
)


class _RGB:
    """Frames -> RGB arrays, natively or at another size.

    Scaling takes two swscale calls: scale in the frame's own pixel format, then convert at the new size (the
    converter's fast path). One fused call takes swscale's generic path and is about 2x slower over the sample
    clips at 256 px. The RGB then carries the source's chroma layout at the new size (half-resolution colour
    for 4:2:0 video, as any 4:2:0 file written from it has). One thread per call: the fused call needs
    swscale's threads to keep up, the two-step one is fastest without them, and readers run in parallel
    processes anyway. Each step keeps its own reformatter, since one that alternates between two jobs
    rebuilds its swscale context every call.
    """

    def __init__(self) -> None:
        self.scaler = VideoReformatter()
        self.converter = VideoReformatter()

    def native(self, frame: av.VideoFrame) -> np.ndarray:
        return self.converter.reformat(frame, format="rgb24").to_ndarray()  # (h, w, 3) as stored

    def scaled(self, frame: av.VideoFrame, width: int, height: int, interpolation: str) -> np.ndarray:
        if frame.format.name not in _SCALABLE_FORMATS:
            fused = self.scaler.reformat(
                frame, width=width, height=height, format="rgb24", interpolation=interpolation, threads=1
            )
            return fused.to_ndarray()
        scaled = self.scaler.reformat(
            frame, width=width, height=height, interpolation=interpolation, threads=1
        )
        rgb = self.converter.reformat(scaled, format="rgb24", threads=1)
        return rgb.to_ndarray()  # (height, width, 3)


def _scaled_rgb(rgb: _RGB, frame: av.VideoFrame, rotation: int, size: tuple[int, int]) -> np.ndarray:
    """The frame as RGB scaled (aspect kept) to just cover `size` once rotated for display; area averaging
    when shrinking, bilinear when enlarging."""
    quarter_turn = rotation in (90, 270)
    shown_h, shown_w = (frame.width, frame.height) if quarter_turn else (frame.height, frame.width)
    scale = max(size[0] / shown_h, size[1] / shown_w)
    cover_h, cover_w = max(size[0], round(shown_h * scale)), max(size[1], round(shown_w * scale))
    width, height = (cover_h, cover_w) if quarter_turn else (cover_w, cover_h)
    return rgb.scaled(frame, width, height, "AREA" if scale < 1 else "BILINEAR")


def _centre_crop(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    top, left = (image.shape[0] - size[0]) // 2, (image.shape[1] - size[1]) // 2
    return np.ascontiguousarray(image[top : top + size[0], left : left + size[1]])


def _capacity(stream: av.VideoStream, window: _Window, fps: float | None, max_frames: int | None) -> int:
    """A generous guess of how many frames `read` returns, to preallocate for them."""
    origin = stream.start_time or 0
    # A window past the stream's end (`retake edit --duration 3600` of a short clip) must not preallocate
    # for frames that do not exist: gigabytes, or a MemoryError. A short stated duration only costs growth.
    ends = [
        end for end in (window.hi, origin + stream.duration if stream.duration else None) if end is not None
    ]
    end = min(ends) if ends else None
    rate = fps or float(stream.average_rate or stream.guessed_rate or 0)
    guess = 256
    if end is not None and rate:
        span = (end - (window.lo if window.lo is not None else origin)) * float(stream.time_base)
        guess = math.ceil(span * rate) + 2
    return max(1, min(guess, max_frames or guess))


def _raise_empty(path: Path, log: _DecodeLog, start: int | None, start_time: float | None) -> None:
    """No frame came out: either the range is past the end, or nothing decodes at all."""
    if log.decoded > 0:
        where = f"start={start}" if start is not None else f"start_time={start_time}"
        raise ValueError(f"{where} is past the end of {path}")
    raise NoFramesError(path, f"no frame decodes ({log.failed} packets failed)")


# ----------------------------------------------------------------------------------------------------------
# resize
# ----------------------------------------------------------------------------------------------------------
def resize_cover_crop(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale (F, H, W, C) frames to cover `size` = (h, w) keeping their aspect ratio, then centre-crop.

    Returns (F, h, w, C), same dtype (uint8 or float32). Implemented as crop-then-resize (one interpolation,
    exact output size): area averaging when shrinking, bilinear when enlarging. Same size: returned as is.
    """
    height, width = _check_size(size)
    if not isinstance(frames, np.ndarray) or frames.ndim != 4:
        raise ValueError(f"frames must be a numpy array (F, H, W, C), got {_describe(frames)}")
    if frames.dtype not in (np.uint8, np.float32):
        raise ValueError(f"frames must be uint8 or float32, got {frames.dtype}")
    if frames.shape[1:3] == (height, width):
        return frames
    if (
        not 1 <= frames.shape[3] <= 4
    ):  # OpenCV's area resize (shrinking) takes at most 4, failing an assertion
        raise ValueError(f"frames must have 1 to 4 channels (F, H, W, C), got shape {frames.shape}")
    out = np.empty((frames.shape[0], height, width, frames.shape[3]), dtype=frames.dtype)
    for i, image in enumerate(frames):
        out[i] = _cover_crop_one(image, (height, width))
    return out


def _cover_crop_one(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, C) -> (h, w, C): the largest centred crop with the target's aspect ratio, resized to it."""
    height, width = image.shape[:2]
    out_h, out_w = int(size[0]), int(size[1])
    if width * out_h > out_w * height:  # wider than the target: crop columns
        crop_h, crop_w = height, max(1, round(height * out_w / out_h))
    else:  # taller (or same aspect): crop rows
        crop_h, crop_w = max(1, round(width * out_h / out_w)), width
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    crop = image[top : top + crop_h, left : left + crop_w]
    if (crop_h, crop_w) == (out_h, out_w):
        return np.ascontiguousarray(crop)
    interpolation = cv2.INTER_AREA if crop_h > out_h else cv2.INTER_LINEAR
    resized = cv2.resize(crop, (out_w, out_h), interpolation=interpolation)
    return resized.reshape(out_h, out_w, image.shape[2])  # cv2 drops a single channel axis


# ----------------------------------------------------------------------------------------------------------
# write
# ----------------------------------------------------------------------------------------------------------
# x264's output depends on its thread count, which it otherwise picks from the machine's cores: a fixed count
# makes the same frames give the same bytes on every machine (seeded data sets are byte-reproducible, and a
# resumed run rewrites a shard exactly). One thread: on 2 cores it encoded 61 frames of 480x768 as fast as 4
# did, and data pipelines run one encoder per worker anyway.
ENCODER_THREADS = 1
# x264's macroblock tree (rate control from the lookahead) made the bytes of some clips depend on what the
# process had allocated before: the same nine 64x64 Flatland frames gave 3721, 3730 or 3731 bytes after
# different heap use, and SIGKILL-resumed data sets differed from uninterrupted ones. Without it the bytes are
# fixed; the files are larger at the same crf (4668 bytes for that clip).
X264_OPTIONS = {"mbtree": "0"}


def check_output(path: str | os.PathLike[str], suffixes: tuple[str, ...] = (".mp4", ".gif")) -> Path:
    """`path` if a video can be written there (`write` for .mp4, `write_gif` for .gif), else an
    UnwritableOutputError saying why. Call it before a long computation whose result goes there."""
    path = Path(path).expanduser()
    if path.suffix.lower() not in suffixes:
        raise UnwritableOutputError(
            path, f"the output must end in {' or '.join(suffixes)}, not {path.suffix or 'no extension'!r}"
        )
    if path.is_dir():
        raise UnwritableOutputError(
            path, f"is a folder; give a file name such as {path / ('edit' + suffixes[0])}"
        )
    reason = files.unwritable_reason(path)
    if reason is not None:
        raise UnwritableOutputError(path, reason)
    return path


def write(
    video: Video,
    path: str | os.PathLike[str],
    *,
    crf: int = 18,
    preset: str = "medium",
    threads: int = ENCODER_THREADS,
) -> Path:
    """Encode `video` as H.264 yuv420p in an .mp4 (index at the front, so a cut file still plays); atomic.

    Odd sizes are *padded* to even by repeating the last row/column (4:2:0 chroma needs even sizes, and
    H.264 cannot crop a single pixel away in 4:2:0): a 33x45 video is written as 34x46, nothing is lost.
    crf: x264 quality, 0 (lossless) .. 51 (worst); 18 is visually lossless. preset: x264 speed preset.
    threads: encoder threads; fixed (not "auto") so the bytes do not depend on the machine's core count.
    """
    path = Path(path).expanduser()
    check_video_object(video)
    if path.suffix.lower() != ".mp4":
        raise ValueError(f"write() makes .mp4 files, got {path.name!r} (use write_gif for .gif)")
    if video.num_frames == 0:
        raise ValueError(f"cannot write a video with no frames to {path}")
    if not (_is_number(crf) and 0 <= crf <= 51):  # x264 takes a fractional crf
        raise ValueError(f"crf must be a number in 0..51, got {crf!r}")
    if preset not in X264_PRESETS:
        raise ValueError(f"preset must be one of {', '.join(X264_PRESETS)}; got {preset!r}")
    check_int("threads", threads, minimum=1)  # x264 would take "1.5" threads as given
    # Not `retake.files.temp_sibling`: the muxer picks the container from the extension, and the Flatland
    # folders know a killed write by this name.
    temp = path.with_name(f".{path.stem}.partial.mp4")
    with _writing(path, temp):
        _encode_mp4(video, temp, crf=crf, preset=preset, threads=threads)
        os.replace(temp, path)  # readers never see a half-written file
    return path


def check_video_object(video: object) -> None:
    """ValueError unless `video` is a `Video`, saying how to make one of the array or object given."""
    if not isinstance(video, Video):
        raise ValueError(
            f"video must be a retake.video.Video (wrap frames in Video(frames, fps)), got {_describe(video)}"
        )


@contextmanager
def _writing(path: Path, temp: Path) -> Iterator[None]:
    """Make `path`'s folder and run the block that writes `temp` and moves it to `path`; an OS refusal
    (permissions, a folder at `path`, a full disk) becomes an UnwritableOutputError naming `path`, and
    `temp` never outlives the block."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield
    except OSError as exc:
        raise UnwritableOutputError(path, f"cannot write it: {exc.strerror or exc}") from exc
    finally:
        with suppress(OSError):  # its folder could not be made or read: there is nothing to clean
            temp.unlink(missing_ok=True)


def _encode_mp4(video: Video, path: Path, *, crf: int, preset: str, threads: int) -> None:
    rate = Fraction(video.fps).limit_denominator(1001)  # exact for 24, 25, 30000/1001, ...
    pad_h, pad_w = video.height % 2, video.width % 2
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        options = {"crf": str(crf), "preset": preset, "threads": str(threads), **X264_OPTIONS}
        stream = container.add_stream("libx264", rate=rate, options=options)
        stream.width, stream.height = video.width + pad_w, video.height + pad_h
        stream.pix_fmt = "yuv420p"
        for image in video.frames:
            if pad_h or pad_w:
                image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")  # (H+ph, W+pw, 3)
            planes = rgb_to_i420(image)  # (3(H+ph)/2, W+pw): no conversion left for the encoder to do
            container.mux(stream.encode(av.VideoFrame.from_ndarray(planes, format="yuv420p")))
        container.mux(stream.encode(None))  # flush delayed frames


# RGB -> (Cb, Cr) of BT.601 limited range (studio swing, 16..240), offsets in the last column: cv2.transform's
# affine form. The same matrix swscale uses for untagged RGB input.
_RGB_TO_CBCR_601 = np.array(
    [[-0.1482229, -0.2909928, 0.4392157, 128.0], [0.4392157, -0.3677883, -0.0714274, 128.0]], np.float32
)


def rgb_to_i420(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB, H and W even -> (3H/2, W) uint8 I420 planes (Y, then U and V at half size),
    BT.601 limited range, each chroma sample from the mean of its 2x2 pixels.

    Why not swscale: converting the RGB frames was a third of x264's encoding time for small clips, and this
    is 2x faster at the same quality. Why not OpenCV's COLOR_RGB2YUV_I420 alone: it takes each chroma sample
    from one pixel of the four, which aliases sharp colour edges (2.5 dB lost on a synthetic pattern).
    """
    if not (
        isinstance(image, np.ndarray)
        and image.ndim == 3
        and image.shape[2] == 3
        and image.dtype == np.uint8
        and image.shape[0] % 2 == image.shape[1] % 2 == 0
    ):
        raise ValueError(f"need an even-sized (H, W, 3) uint8 image, got {_describe(image)}")
    height, width = image.shape[:2]
    image = np.ascontiguousarray(image)
    planes = cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420)  # its Y is exact; U and V are replaced below
    means = cv2.resize(image, (width // 2, height // 2), interpolation=cv2.INTER_AREA)  # (H/2, W/2, 3)
    chroma = cv2.transform(means, _RGB_TO_CBCR_601)  # (H/2, W/2, 2), rounded and saturated to uint8
    flat = planes.reshape(-1)  # a view: U and V planes do not fill whole rows of W when H/2 is odd
    luma, quarter = height * width, (height // 2) * (width // 2)
    flat[luma : luma + quarter] = chroma[..., 0].reshape(-1)
    flat[luma + quarter :] = chroma[..., 1].reshape(-1)
    return planes


def write_gif(video: Video, path: str | os.PathLike[str], *, max_size: int | None = None) -> Path:
    """An animated GIF for reports: 256 colours per frame, loops forever; atomic.

    max_size caps the longer side in pixels (area downscaling). Frame delays are whole centiseconds, spread so
    the total duration stays right; above 50 fps frames are dropped, since browsers slow faster GIFs down.
    """
    path = Path(path).expanduser()
    check_video_object(video)
    if path.suffix.lower() != ".gif":
        raise ValueError(f"write_gif() makes .gif files, got {path.name!r} (use write for .mp4)")
    if video.num_frames == 0:
        raise ValueError(f"cannot write a video with no frames to {path}")
    if max_size is not None:
        check_int("max_size", max_size, minimum=1)
    stride = max(1, math.ceil(video.fps / _GIF_MAX_FPS - 1e-9))
    frames = video.frames[::stride]
    longest = max(video.height, video.width)
    if max_size is not None and longest > max_size:
        scale = max_size / longest
        new_size = (max(1, round(video.height * scale)), max(1, round(video.width * scale)))
        frames = resize_cover_crop(frames, new_size)
    # Delays in whole centiseconds, rounded on the running total so errors do not accumulate.
    centis = [round((i + 1) * 100 * stride / video.fps) for i in range(len(frames))]
    # GIF stores a delay in 16 bits of centiseconds: a slower frame shows for the longest it can (655 s).
    delays_ms = [10 * min(b - a, _GIF_MAX_CENTIS) for a, b in zip([0, *centis[:-1]], centis, strict=True)]
    images = [Image.fromarray(frame) for frame in frames]
    temp = path.with_name(f".{path.stem}.partial.gif")
    with _writing(path, temp):
        images[0].save(
            temp, format="GIF", save_all=True, append_images=images[1:], duration=delays_ms, loop=0
        )
        os.replace(temp, path)
    return path
