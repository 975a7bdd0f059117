"""Hostile and odd inputs, generated here, each run through the real ``cnnviz`` command in a
subprocess: FIFOs, symlinks to devices, deflate bombs inside torch archives, safetensors
header lies, TIFF tile lies, deep JSON, huge integers, BOMs, odd paths, corrupt and oversized
settings and trust files, truncated videos.

Every case asserts what a user would notice:

- the exit code (2 for bad input; 0 where the input is odd but valid),
- one line on stderr, with no "Traceback" and no "internal error", that names the cause,
- no hang: the command finishes within a generous subprocess timeout (a hang, such as
  ``open()`` on a FIFO, would otherwise wait forever),
- a bounded peak memory: the child's peak RSS (``ru_maxrss`` of ``RUSAGE_CHILDREN``, measured
  in a fresh wrapper process so no earlier child counts) stays within :data:`RSS_MARGIN_MB`
  of the same command's baseline on a good input.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = [
    pytest.mark.slow,  # ~2-3 minutes: every case is a real subprocess
    pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs, /dev/zero and getrusage are POSIX"),
]

REPO = Path(__file__).resolve().parents[2]
#: A refused input may cost at most this much memory beyond the baseline of the same command.
RSS_MARGIN_MB = 300
#: Hang detector only (no timing assertion): real runs take a few seconds.
HANG_S = 120

_WRAPPER = textwrap.dedent("""
    import json, resource, subprocess, sys
    try:
        p = subprocess.run(sys.argv[2:], capture_output=True, timeout=float(sys.argv[1]), cwd=None)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = "hang", exc.stdout or b"", exc.stderr or b""
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"rc": rc, "out": out.decode("utf-8", "replace"), "err": err.decode("utf-8", "replace"),
                      "rss_mb": rss / 1024 if sys.platform != "darwin" else rss / 2**20}))
""")

CLI = "import sys; from cnnviz.cli import main; sys.exit(main())"


def run_measured(args: list[str], cwd: Path) -> dict:
    """Run ``python args…`` from ``cwd`` in a fresh wrapper; its exit code, output and peak RSS."""
    env = dict(os.environ, PYTHONPATH=str(REPO), QT_QPA_PLATFORM="offscreen")
    env.pop("CNNVIZ_DEBUG", None)
    p = subprocess.run([sys.executable, "-c", _WRAPPER, str(HANG_S), sys.executable, *args], cwd=cwd,
                       capture_output=True, text=True, timeout=HANG_S + 30, env=env)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def cli(*argv: str, cwd: Path) -> dict:
    return run_measured(["-c", CLI, *argv], cwd)


# ----------------------------------------------------------------------------- the files


def _png(path: Path, size=(32, 24)) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def _png_0x0(path: Path) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b""))
                     + chunk(b"IEND", b""))
    return path


def _tiff_tile_lie(path: Path, width=10_000, height=8_000, tile=16) -> Path:
    """A little-endian TIFF declaring width×height RGB pixels in 16×16 tiles that all point
    at the same 768 bytes (312,500 tiles, 2.5 MB of tables)."""
    n = (width // tile) * (height // tile)
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 3, None), (259, 3, 1, 1), (262, 3, 1, 2),
               (277, 3, 1, 3), (322, 3, 1, tile), (323, 3, 1, tile), (324, 4, n, None), (325, 4, n, None)]
    ifd_at = 8
    ifd_size = 2 + 12 * len(entries) + 4
    bits_at = ifd_at + ifd_size
    offsets_at = bits_at + 6
    counts_at = offsets_at + 4 * n
    data_at = counts_at + 4 * n
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd_at))
    out += struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        if tag == 258:
            value = bits_at
        elif tag == 324:
            value = offsets_at
        elif tag == 325:
            value = counts_at
        if typ == 3 and count == 1:
            out += struct.pack("<HHIHH", tag, typ, count, value, 0)
        else:
            out += struct.pack("<HHII", tag, typ, count, value)
    out += struct.pack("<I", 0)
    out += struct.pack("<HHH", 8, 8, 8)
    out += struct.pack(f"<{n}I", *([data_at] * n))
    out += struct.pack(f"<{n}I", *([tile * tile * 3] * n))
    out += bytes(range(256)) * 3
    path.write_bytes(bytes(out))
    return path


def _deep(n: int = 100_000) -> str:
    return "[" * n + "]" * n


NET_PY = textwrap.dedent("""
    import torch
    from torch import nn

    class Picky(nn.Module):
        def forward(self, x):
            return x[[7]]  # fails on a batch of one: IndexError deep inside the model

    class Breaks(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.block = nn.Sequential(nn.ReLU(), Picky())

        def forward(self, x):
            return self.block(self.conv(x))

    class Detector(nn.Module):  # a detector's output: a list of dicts with no boxes
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            y = self.conv(x)
            return [{"boxes": y.new_zeros((0, 4)), "scores": y.new_zeros((0,))}]

    class Net(nn.Module):
        def __init__(self, width: int = 4):
            super().__init__()
            self.conv = nn.Conv2d(3, width, 3)
            self.head = nn.Linear(width, 10)

        def forward(self, x):
            return self.head(self.conv(x).mean((2, 3)))
""")


def _torch_archive(path: Path, replace: dict[str, bytes] | None = None,
                   bomb: tuple[str, int] | None = None) -> Path:
    """A real ``torch.save`` state_dict archive, with members replaced (``name: bytes``) or
    one member turned into ``size`` bytes of zeros deflated at level 1 (``bomb``; streamed,
    never in memory: ~1 s for 1 GiB)."""
    import torch

    good = path.with_suffix(".good")
    torch.save({"conv.weight": torch.zeros(4, 3, 3, 3)}, good)
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w", compresslevel=1) as dst:
        for info in src.infolist():
            base = info.filename.split("/", 1)[-1]
            if bomb is not None and base == bomb[0]:
                zi = zipfile.ZipInfo(info.filename)
                zi.compress_type = zipfile.ZIP_DEFLATED
                with dst.open(zi, "w") as member:
                    chunk = bytes(1 << 24)
                    for _ in range(bomb[1] // len(chunk)):
                        member.write(chunk)
                continue
            data = (replace or {}).get(base, src.read(info))
            dst.writestr(zipfile.ZipInfo(info.filename), data)
    good.unlink()
    return path


def _safetensors(path: Path, header: dict | str, data: bytes) -> Path:
    raw = (header if isinstance(header, str) else json.dumps(header)).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def _pt2_with_forbidden_target(path: Path) -> Path:
    import torch

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c = torch.nn.Conv2d(3, 2, 3)

        def forward(self, x):
            return torch.relu(self.c(x))

    good = path.with_suffix(".good.pt2")
    torch.export.save(torch.export.export(M(), (torch.zeros(1, 3, 16, 16),)), good)
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith(".json"):
                data = data.replace(b"torch.ops.aten.relu.default", b"builtins.eval")
            dst.writestr(info, data)
    good.unlink()
    return path


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    """One folder of hostile files, built once for the module."""
    d = tmp_path_factory.mktemp("hostile")
    _png(d / "photo.png")
    _png(d / "photo512.png", (512, 512))
    _png(d / "with space ü.png")
    _png(d / "-dash.png")
    _png_0x0(d / "empty0x0.png")
    _tiff_tile_lie(d / "tiles.tif")
    (d / "folder.png").mkdir()
    (d / "fifo-out").mkdir()
    for name in ("fifo.png", "fifo.json", "fifo.pt", "fifo.txt", "fifo-out/summary.json"):
        os.mkfifo(d / name)
    for name in ("zero.png", "zero.json", "zero.pt", "zero.txt"):
        os.symlink("/dev/zero", d / name)
    (d / "deep.json").write_text(_deep())
    (d / "huge-int.json").write_text("[[1" + "0" * 400 + "]]")
    (d / "bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps({"weights": [[0, 1, 0], [1, -4, 1], [0, 1, 0]]}).encode())
    (d / "big.json").write_bytes(b"[[1]]" + b" " * 11_000_000)
    (d / "bank.json").write_text(json.dumps({"kernels": [{"weights": [[1]]}] * 4000}))
    (d / "net.py").write_text(NET_PY)
    _torch_archive(d / "bomb.pth", bomb=("data/0", 1 << 30))
    _torch_archive(d / "bigpkl.pth", bomb=("data.pkl", 200 << 20))
    # data.pkl = OrderedDict(1): collections.OrderedDict called with an int
    od1 = b"\x80\x02ccollections\nOrderedDict\nq\x00K\x01\x85q\x01Rq\x02."
    _torch_archive(d / "od1.pth", replace={"data.pkl": od1})
    (d / "bytes.pkl").write_bytes(pickle.dumps({"a": b"\x00" * 64, "b": b"xyz"}))
    _safetensors(d / "overlap.safetensors", {
        f"t{i}": {"dtype": "F32", "shape": [1024], "data_offsets": [0, 4096]} for i in range(64)}, bytes(4096))
    _safetensors(d / "lenlie.safetensors", "{}", b"")
    (d / "lenlie.safetensors").write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    _safetensors(d / "deep.safetensors", "{\"a\":" + _deep(50_000) + "}", b"")
    _pt2_with_forbidden_target(d / "forbidden.pt2")
    return d


# ----------------------------------------------------------------------------- the cases

CONVOLVE = ("convolve",)
# (id, argv, expected exit code, words the one line must hold)
CASES = [
    # images
    ("image-fifo", (*CONVOLVE, "fifo.png", "-k", "sobel-x"), 2, ("named pipe",)),
    ("image-dev-zero", (*CONVOLVE, "zero.png", "-k", "sobel-x"), 2, ("character device",)),
    ("image-folder", (*CONVOLVE, "folder.png", "-k", "sobel-x"), 2, ("folder",)),
    ("image-0x0-png", (*CONVOLVE, "empty0x0.png", "-k", "sobel-x"), 2, ("PNG",)),
    ("image-tiff-tile-lie", (*CONVOLVE, "tiles.tif", "-k", "sobel-x"), 2, ("implausible",)),
    ("odd-path-space-unicode", (*CONVOLVE, "with space ü.png", "-k", "sobel-x"), 0, ()),
    ("odd-path-leading-dash", (*CONVOLVE, "-k", "sobel-x", "--", "-dash.png"), 0, ()),
    ("odd-path-missing", (*CONVOLVE, "no such ü.png", "-k", "sobel-x"), 2, ("does not exist",)),
    # kernels
    ("kernel-fifo", (*CONVOLVE, "photo.png", "-k", "fifo.json"), 2, ("named pipe",)),
    ("kernel-dev-zero", (*CONVOLVE, "photo.png", "-k", "zero.json"), 2, ("character device",)),
    ("kernel-deep-json-file", (*CONVOLVE, "photo.png", "-k", "deep.json"), 2, ("levels deep",)),
    ("kernel-deep-json-literal", (*CONVOLVE, "photo.png", "-k", _deep(50_000)), 2, ("levels deep",)),
    ("kernel-huge-int-file", (*CONVOLVE, "photo.png", "-k", "huge-int.json"), 2, ("digits",)),
    ("kernel-huge-int-literal", (*CONVOLVE, "photo.png", "-k", "[[1" + "0" * 400 + "]]"), 2, ("digits",)),
    ("kernel-bom", (*CONVOLVE, "photo.png", "-k", "bom.json"), 0, ()),
    ("kernel-oversized-file", (*CONVOLVE, "photo.png", "-k", "big.json"), 2, ("MB",)),
    ("kernel-bank-20000", (*CONVOLVE, "photo512.png", *(["-k", "bank.json"] * 5)), 2, ("20000 kernel", "budget")),
    # models and weights
    ("model-fifo", ("inspect", "fifo.pt", "photo.png", "--out", "o"), 2, ("named pipe",)),
    ("model-dev-zero", ("inspect", "zero.pt", "photo.png", "--out", "o"), 2, ("character device",)),
    ("weights-fifo", ("inspect", "net.py:Net", "photo.png", "--trust", "--weights", "fifo.pt", "--out", "o"), 2,
     ("weights file 'fifo.pt' is a named pipe",)),
    ("weights-deflate-bomb-1GiB", ("inspect", "net.py:Net", "photo.png", "--trust", "--weights", "bomb.pth",
                                   "--out", "o"), 2, ("decompression bomb",)),
    ("weights-200MB-data-pkl", ("inspect", "net.py:Net", "photo.png", "--trust", "--weights", "bigpkl.pth",
                                "--out", "o"), 2, ("data.pkl",)),
    ("weights-ordereddict-1", ("inspect", "net.py:Net", "photo.png", "--trust", "--weights", "od1.pth",
                               "--out", "o"), 2, ("could not be read",)),
    ("weights-plain-bytes-pickle", ("inspect", "net.py:Net", "photo.png", "--trust", "--weights", "bytes.pkl",
                                    "--out", "o"), 2, ("only data",)),
    ("safetensors-overlap", ("inspect", "net.py:Net", "photo.png", "--trust", "--weights", "overlap.safetensors",
                             "--out", "o"), 2, ("share bytes",)),
    ("safetensors-length-lie", ("inspect", "net.py:Net", "photo.png", "--trust", "--weights",
                                "lenlie.safetensors", "--out", "o"), 2, ("header claims",)),
    ("safetensors-deep-header", ("inspect", "net.py:Net", "photo.png", "--trust", "--weights",
                                 "deep.safetensors", "--out", "o"), 2, ("levels deep",)),
    ("pt2-forbidden-target", ("inspect", "forbidden.pt2", "photo.png", "--trust", "--out", "o"), 2,
     ("builtins.eval",)),
    ("forward-fails-in-a-layer", ("inspect", "net.py:Breaks", "photo.png", "--trust", "--out", "o"), 2,
     ("layer 'block.1' (Picky)", "IndexError")),
    ("detector-output-with-no-boxes", ("inspect", "net.py:Detector", "photo.png", "--trust", "--out", "o"), 0, ()),
    ("out-folder-summary-is-a-fifo", ("inspect", "net.py:Net", "photo.png", "--trust", "--out", "fifo-out"), 0,
     ()),
    ("labels-deep-json", ("inspect", "net.py:Net", "photo.png", "--trust", "--labels", "deep.json", "--out", "o"),
     2, ("levels deep",)),
    ("labels-fifo", ("inspect", "net.py:Net", "photo.png", "--trust", "--labels", "fifo.txt", "--out", "o"), 2,
     ("named pipe",)),
    ("labels-dev-zero", ("inspect", "net.py:Net", "photo.png", "--trust", "--labels", "zero.txt", "--out", "o"), 2,
     ("character device",)),
    ("model-args-deep-json", ("inspect", "net.py:Net", "photo.png", "--trust", "--model-args", _deep(50_000),
                              "--out", "o"), 2, ("levels deep",)),
    ("model-args-huge-int", ("inspect", "net.py:Net", "photo.png", "--trust", "--model-args",
                             '{"width": 1' + "0" * 5000 + "}", "--out", "o"), 2, ("digits",)),
]


@pytest.fixture(scope="module")
def baselines(hostile) -> dict[str, float]:
    """Peak RSS of each command on a good input, measured the same way."""
    conv = cli("convolve", "photo.png", "-k", "sobel-x", cwd=hostile)
    assert conv["rc"] == 0, conv["err"]
    insp = cli("inspect", "net.py:Net", "photo.png", "--trust", "--out", "good", cwd=hostile)
    assert insp["rc"] == 0, insp["err"]
    return {"convolve": conv["rss_mb"], "inspect": insp["rss_mb"]}


def assert_one_clean_line(res: dict, rc: int, words: tuple[str, ...]) -> None:
    assert res["rc"] != "hang", f"hung: {res['err'][-500:]}"
    err = res["err"].strip()
    assert res["rc"] == rc, (res["rc"], err[-2000:])
    assert "Traceback" not in err and "internal error" not in err, err[-2000:]
    if rc == 2:
        lines = err.splitlines()
        assert len(lines) == 1, err[-2000:]  # nothing from a library before the message
        assert lines[0].startswith("cnnviz: error: "), lines[0]
        assert "<_io." not in lines[0] and "(0 bytes)" not in lines[0], lines[0]  # no misleading words
        assert " a int" not in lines[0] and "can run any code" not in lines[0], lines[0]
        for w in words:
            assert w in lines[0], (w, lines[0])


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_hostile_cli_input_is_one_clean_line_without_hang_or_blowup(hostile, baselines, case):
    _name, argv, rc, words = case
    res = cli(*argv, cwd=hostile)
    assert_one_clean_line(res, rc, words)
    base = baselines[argv[0]]
    assert res["rss_mb"] <= base + RSS_MARGIN_MB, (res["rss_mb"], base)


# ----------------------------------------------------------------------------- settings, trust store, video

SETTINGS_SCRIPT = textwrap.dedent("""
    import sys
    from cnnviz.core.settings import load_settings
    s, msg = load_settings(sys.argv[1])
    print(msg)
""")
TRUST_SCRIPT = textwrap.dedent("""
    import sys
    from cnnviz.core.trust import TrustStore
    t = TrustStore(sys.argv[1])
    print(t.warning)
""")


def _fifo(p: Path) -> None:
    os.mkfifo(p)


def _dev_zero(p: Path) -> None:
    os.symlink("/dev/zero", p)


def _deep_file(p: Path) -> None:
    p.write_text(_deep())


def _oversized(p: Path) -> None:
    with open(p, "wb") as fh:  # a valid file whose recent list holds a 100 MB path
        fh.write(b'{"schema_version": 1, "recent_files": ["/' + b"x" * (100 << 20) + b'"]}')


def _garbage(p: Path) -> None:
    p.write_bytes(b"\x00\xff" * 1000)


USER_FILE_CASES = {"fifo": _fifo, "dev-zero": _dev_zero, "deep-json": _deep_file, "oversized-100MB": _oversized,
                   "garbage": _garbage}


@pytest.mark.parametrize("kind", list(USER_FILE_CASES))
@pytest.mark.parametrize("which", ["settings", "trust-store"])
def test_hostile_settings_and_trust_files_are_set_aside_and_reported(tmp_path, baselines, kind, which):
    path = tmp_path / ("settings.json" if which == "settings" else "trusted_models.json")
    USER_FILE_CASES[kind](path)
    script = SETTINGS_SCRIPT if which == "settings" else TRUST_SCRIPT
    res = run_measured(["-c", script, str(path)], tmp_path)
    assert res["rc"] == 0, res["err"][-2000:]
    assert "Traceback" not in res["err"]
    msg = res["out"].strip()
    assert msg and msg != "None"  # reported
    bak = path.with_name(path.name + ".bak")
    assert bak.exists() or bak.is_symlink(), msg  # kept, never silently replaced
    assert str(bak) in msg
    assert not (path.exists() or path.is_symlink())  # the next save writes a fresh file
    assert res["rss_mb"] <= baselines["convolve"] + RSS_MARGIN_MB


def test_an_oversized_entry_is_dropped_with_a_backup_and_a_message(tmp_path):
    from cnnviz.core.settings import load_settings

    p = tmp_path / "settings.json"
    original = json.dumps({"schema_version": 1, "theme": "dark",
                           "recent_files": ["/ok.png", "/" + "x" * 1_000_000]}).encode()
    p.write_bytes(original)
    s, msg = load_settings(p)
    assert s.theme == "dark" and s.recent_files == ["/ok.png"]  # the rest is kept
    assert msg is not None and "oversized" in msg and "recent file" in msg
    assert (tmp_path / "settings.json.bak").read_bytes() == original


VIDEO_SCRIPT = textwrap.dedent("""
    import sys, time
    from cnnviz.core.errors import SourceError
    from cnnviz.core.sources import VideoFileSource
    src = VideoFileSource(sys.argv[1], loop=False)
    try:
        cap = src._open_file()
    except SourceError as exc:
        print("error:", exc)
        sys.exit(0)
    n = 0
    while n < 1000:
        ok, frame = cap.read()
        if not ok:
            break
        n += 1
    cap.release()
    print("frames:", n)
""")


def _video(path: Path, frames: int = 20) -> Path:
    import cv2

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    rng = np.random.default_rng(1)
    for _ in range(frames):
        w.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    w.release()
    return path


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "truncated", "garbage"])
def test_hostile_video_files_end_in_an_error_or_fewer_frames_never_a_hang(tmp_path, kind):
    path = tmp_path / "clip.avi"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        os.symlink("/dev/zero", path)
    elif kind == "truncated":
        full = _video(tmp_path / "full.avi").read_bytes()
        path.write_bytes(full[: len(full) // 2])
    else:
        path.write_bytes(os.urandom(4096))
    res = run_measured(["-c", VIDEO_SCRIPT, str(path)], tmp_path)
    assert res["rc"] == 0, res["err"][-2000:]
    out = res["out"].strip()
    if kind in ("fifo", "dev-zero"):
        assert out.startswith("error:") and "not a regular file" in out, out
    elif kind == "truncated":
        assert out.startswith("frames:") and int(out.split()[-1]) < 20, out
    else:
        assert out in ("frames: 0",) or out.startswith("error:"), out
