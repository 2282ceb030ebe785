import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from media import read_index

from dfd_kit.inference.decode import DALIDecoder, FallbackDecoder, OpenCVDecoder, PacketIndex, PyAVDecoder, Sampling, make_decoder
from dfd_kit.errors import DecodeError

CPU_DECODERS = [OpenCVDecoder, PyAVDecoder]


def _index(path):
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return PacketIndex.of(stream, [p for p in container.demux(stream) if p.size])


def _ffmpeg_reference_frames(path) -> set[int]:
    """Display indices of the frames FFmpeg itself still decodes with ``skip_frame="NONREF"``."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rank = {t: i for i, t in enumerate(sorted(p.pts for p in container.demux(stream) if p.size))}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONREF"
        return {rank[f.pts] for f in container.decode(stream)}


@pytest.mark.parametrize("decoder_cls", CPU_DECODERS, ids=lambda c: c.name)
@pytest.mark.parametrize(
    "clip, shape",
    [("h264_1080p", (1080, 1920)), ("portrait", (1920, 1080)), ("yuv444_odd", (481, 645)), ("small", (360, 640)), ("bframes", (240, 320))],
)
def test_decodes_exactly_the_sampled_frames(media, decoder_cls, clip, shape):
    frames = decoder_cls().read(media[clip], Sampling(7))
    n_total = frames.n_total
    expected = np.unique(np.linspace(0, n_total - 1, 7).round().astype(int))
    assert frames.frames.dtype == np.uint8
    assert frames.frames.shape == (len(expected), *shape, 3)
    assert frames.indices.tolist() == expected.tolist()
    assert [read_index(f) for f in frames.frames] == expected.tolist()


@pytest.mark.parametrize("decoder_cls", CPU_DECODERS, ids=lambda c: c.name)
def test_explicit_indices_and_rgb_order(media, decoder_cls):
    frames = decoder_cls().read(media["small"], [19, 3, 3, 400, -1])
    assert frames.indices.tolist() == [3, 19]  # sorted, unique, out-of-range dropped
    assert [read_index(f) for f in frames.frames] == [3, 19]
    # the synthetic background is blue 90 and red rising left to right: check channel order is RGB
    corner = frames.frames[0, -20:, -20:].reshape(-1, 3).mean(0)
    assert corner[0] > corner[2] > 60


@pytest.mark.parametrize("clip", ["bframes", "h264_1080p", "yuv444_odd", "portrait"])
def test_pyav_gives_the_pixels_of_a_full_decode_from_fewer_frames(media, clip):
    full = OpenCVDecoder().read(media[clip], Sampling(7))  # decodes every frame up to the last wanted one
    fewer = PyAVDecoder().read(media[clip], Sampling(7))
    assert fewer.indices.tolist() == full.indices.tolist() and fewer.n_total == full.n_total
    assert np.array_equal(fewer.frames, full.frames)
    assert fewer.decoded == _index(media[clip]).needed(fewer.indices).sum()
    if clip == "bframes":
        assert fewer.decoded < full.decoded == 60  # the non-reference B frames it need not show were skipped


def test_packet_index_reads_what_ffmpeg_decodes(media):
    index = _index(media["bframes"])
    refs = _ffmpeg_reference_frames(media["bframes"])
    assert 20 < len(refs) < 50  # the clip has non-reference frames to skip
    assert set(index.display[index.reference].tolist()) == refs
    assert index.display[index.key].tolist() == [0, 20, 40] and index.restart.tolist() == index.key.tolist()
    # frame 30 needs reference frames since the IDR frame 20 (some of them shown after it), and no other
    sent = set(index.display[index.needed(np.array([30]))].tolist())
    assert 30 in sent and min(sent) == 20 and sent - {30} <= refs


def test_reference_mode_decodes_only_reference_frames(media):
    refs = sorted(_ffmpeg_reference_frames(media["bframes"]))
    frames = PyAVDecoder(mode="reference").read(media["bframes"], Sampling(7))
    sampled = np.unique(np.linspace(0, 59, 7).round().astype(int))
    nearest = sorted({min(refs, key=lambda r: (abs(r - i), r)) for i in sampled})
    assert frames.indices.tolist() == nearest != sampled.tolist()  # moved to reference frames, and says so
    assert [read_index(f) for f in frames.frames] == nearest
    index = _index(media["bframes"])
    send = index.needed(frames.indices)
    assert frames.decoded == send.sum() and not (send & ~index.reference).any()


def test_keyframes_mode_decodes_the_nearest_keyframes_alone(media):
    frames = PyAVDecoder(mode="keyframes").read(media["bframes"], Sampling(7))
    assert frames.indices.tolist() == [0, 20, 40] and frames.decoded == 3  # IDR frames every 20
    assert [read_index(f) for f in frames.frames] == [0, 20, 40]


def test_snap_to_the_nearest_candidate():
    index = PacketIndex(np.arange(10), np.ones(10, bool), np.zeros(10, bool), np.zeros(10, bool))
    candidates = np.isin(np.arange(10), [0, 4, 8])
    assert index.snap(np.array([2, 3, 5, 9]), candidates).tolist() == [0, 4, 8]  # 2 is a tie: the earlier one
    assert index.snap(np.array([1]), np.zeros(10, bool)).tolist() == []


def test_containers_and_edit_lists(media, tmp_path):
    """Timestamps from MKV and MPEG-TS index the frames; AVI and raw H.264 have none to trust (AVI's
    follow decode order), so their frames are counted as they come out; an edit list hides frames."""
    from media import ffmpeg

    import subprocess

    src = media["bframes"]
    cases = {"mkv": [], "ts": [], "avi": [], "h264": ["-bsf:v", "h264_mp4toannexb"]}
    for ext, extra in cases.items():
        subprocess.run([ffmpeg(), "-y", "-loglevel", "error", "-i", str(src), "-c", "copy", *extra, str(tmp_path / f"b.{ext}")], check=True)
        frames = PyAVDecoder().read(tmp_path / f"b.{ext}", Sampling(7))
        assert frames.n_total == 60, ext
        assert [read_index(f) for f in frames.frames] == frames.indices.tolist() == [0, 10, 20, 30, 39, 49, 59], ext
    cut = tmp_path / "cut.mp4"  # starts at frame 12, between keyframes: the frames before it are decoded, not shown
    subprocess.run([ffmpeg(), "-y", "-loglevel", "error", "-ss", "0.4", "-i", str(src), "-c", "copy", str(cut)], check=True)
    frames = PyAVDecoder().read(cut, Sampling(7))
    assert frames.n_total == 48 and frames.indices.tolist() == [0, 8, 16, 24, 31, 39, 47]
    assert [read_index(f) - 12 for f in frames.frames] == frames.indices.tolist()


@pytest.mark.parametrize("decoder_cls", CPU_DECODERS, ids=lambda c: c.name)
def test_bad_files_raise_decode_error(tmp_path, decoder_cls):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    for path in (empty, junk, tmp_path / "missing.mp4"):
        with pytest.raises(DecodeError):
            decoder_cls().read(path, Sampling(5))


def test_truncated_file_decodes_what_is_there_or_raises(media, tmp_path):
    data = media["small"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 9 // 10])
    decoder = make_decoder("cpu")
    try:
        frames = decoder.read(cut, Sampling(5))
    except DecodeError:
        return
    assert len(frames) >= 1 and frames.frames.dtype == np.uint8


def test_fallback_decoder_logs_and_falls_back(media, caplog):
    class Broken:
        name = "broken"

        def read(self, path, select):
            raise DecodeError("always broken")

    decoder = FallbackDecoder(Broken(), PyAVDecoder())
    with caplog.at_level("WARNING"):
        frames = decoder.read(media["small"], Sampling(3))
    assert frames.decoder == "pyav" and len(frames) == 3
    assert "always broken" in caplog.text


def test_real_clips_decode(shared_clips):
    meta = json.loads((shared_clips / "metadata.json").read_text())
    decoder = make_decoder("cpu")
    for name in ["widuwuoiur.mp4", "ffpp40_183.mp4"]:  # DFDC 1080p yuv420p; FF++ H.264 High 4:4:4
        frames = decoder.read(shared_clips / name, Sampling(4))
        assert name in meta
        assert len(frames) == 4 and frames.frames.ndim == 4 and frames.frames.shape[-1] == 3
        assert frames.indices[-1] == frames.n_total - 1
        full = OpenCVDecoder().read(shared_clips / name, Sampling(4))
        assert np.array_equal(frames.frames, full.frames) and frames.indices.tolist() == full.indices.tolist()
        assert frames.decoded < 0.6 * full.decoded  # half the frames are B frames that nothing refers to


@pytest.mark.gpu
def test_dali_decodes_exactly_the_sampled_frames(media):
    frames = DALIDecoder().read(media["h264_1080p"], Sampling(7))
    assert frames.frames.shape[1:] == (1080, 1920, 3)
    assert [read_index(f) for f in frames.frames] == frames.indices.tolist()


@pytest.fixture(scope="module")
def clip_bytes(media) -> bytes:
    return media["small"].read_bytes()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_corrupted_bytes_give_frames_or_decode_error(clip_bytes, tmp_path, data):
    raw = bytearray(clip_bytes)
    for _ in range(data.draw(st.integers(1, 40), label="flips")):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)), label="truncate at")
    path = tmp_path / "fuzz.mp4"
    path.write_bytes(bytes(raw[:cut]))
    try:
        frames = make_decoder("cpu").read(path, Sampling(5))
    except DecodeError:
        return
    assert frames.frames.dtype == np.uint8 and frames.frames.ndim == 4 and frames.frames.shape[-1] == 3
    assert len(frames.indices) == len(frames.frames) >= 1


@pytest.mark.gpu
def test_cuda_decoder_handles_variable_frame_rate(tmp_path, media):
    """DALI's file reader rejects VFR clips; decoding from memory by index (or the CPU fallback) must not."""
    from media import ffmpeg

    import subprocess

    vfr = tmp_path / "vfr.mp4"
    subprocess.run(
        [ffmpeg(), "-y", "-loglevel", "error", "-i", str(media["small"]), "-vf", "setpts='N/(30*TB)+if(mod(N\\,3)\\,0\\,0.02/TB)'",
         "-fps_mode", "vfr", "-c:v", "libx264", str(vfr)],
        check=True,
    )  # fmt: skip
    frames = make_decoder("cuda").read(vfr, Sampling(5))
    assert [read_index(f) for f in frames.frames] == frames.indices.tolist()
