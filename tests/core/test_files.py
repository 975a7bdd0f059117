"""core.files: the one module every loader and saver uses (regular-file checks, bounded
reads, bounded JSON, atomic writes) and core.archive_guard's budgets for archives."""

from __future__ import annotations

import io
import os
import stat
import threading
import zipfile

import pytest

from cnnviz.core import files
from cnnviz.core.archive_guard import MAX_INFLATE_RATIO, check_tensor_ranges, check_torch_zip
from cnnviz.core.errors import CnnvizError, KernelError, ModelLoadError
from cnnviz.core.files import (atomic_write, check_regular_file, json_depth, load_json_bounded, open_regular,
                               read_bounded)

posix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and /dev/zero are POSIX")


@posix_only
def test_a_fifo_is_refused_by_its_type_without_being_opened(tmp_path):
    fifo = tmp_path / "k.json"
    os.mkfifo(fifo)
    done = threading.Event()
    errors = []

    def read():
        try:
            read_bounded(fifo, 100, "kernel file", error=KernelError)
        except KernelError as exc:
            errors.append(exc)
        done.set()

    # in a thread: were the FIFO opened, the read would block forever (no writer) and the
    # event would never be set
    threading.Thread(target=read, daemon=True).start()
    assert done.wait(30)
    assert "named pipe" in str(errors[0]) and "not a regular file" in str(errors[0])


@posix_only
def test_a_fifo_swapped_in_after_the_check_does_not_block_the_open(tmp_path, monkeypatch):
    path = tmp_path / "x.png"
    path.write_bytes(b"data")
    real_check = files.check_regular_file

    def check_then_swap(p, what="file", *, error=CnnvizError):
        st = real_check(p, what, error=error)
        os.unlink(path)
        os.mkfifo(path)  # the race: a regular file at the check, a FIFO at the open
        return st

    monkeypatch.setattr(files, "check_regular_file", check_then_swap)
    with pytest.raises(CnnvizError, match="named pipe"):
        open_regular(path, "image file")


@posix_only
def test_a_symlink_to_dev_zero_is_a_device_never_an_empty_or_endless_file(tmp_path):
    link = tmp_path / "k.json"
    os.symlink("/dev/zero", link)
    with pytest.raises(KernelError, match=r"a link to /dev/zero\) is a character device") as err:
        read_bounded(link, 10_000_000, "kernel file", error=KernelError)
    assert "empty" not in str(err.value)


def test_folders_missing_files_and_oversized_files_name_cause_and_fix(tmp_path):
    with pytest.raises(CnnvizError, match="is a folder, not an image file; choose an image file inside it"):
        check_regular_file(tmp_path, "image file")
    with pytest.raises(CnnvizError, match="does not exist") as err:
        read_bounded(tmp_path / "nope.json", 10, "kernel file")
    assert err.value.fix
    big = tmp_path / "big.json"
    big.write_bytes(b"x" * 101)
    with pytest.raises(CnnvizError, match="101 bytes, more than the 100 bytes"):
        read_bounded(big, 100, "kernel file")
    assert read_bounded(big, 101, "kernel file") == b"x" * 101  # the limit itself is fine


def test_read_bounded_never_reads_past_the_limit_when_the_file_lies_about_its_size(tmp_path, monkeypatch):
    p = tmp_path / "grows.json"
    p.write_bytes(b"x" * 1000)
    real_fstat = os.fstat

    def small_fstat(fd):  # the file claims 10 bytes (it grew after the stat)
        st = real_fstat(fd)
        return os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid, st.st_gid, 10,
                               st.st_atime, st.st_mtime, st.st_ctime))

    monkeypatch.setattr(files.os, "fstat", small_fstat)
    with pytest.raises(CnnvizError, match="grew past"):
        read_bounded(p, 100, "kernel file")


@pytest.mark.parametrize("text, depth", [
    ("[]", 1), ("[[1], [2]]", 2), ('{"a": "[[[[[["}', 1), ('["\\"[[["]', 1), ("1", 0), ("[" * 500 + "]" * 500, 500),
])
def test_json_depth_counts_brackets_outside_strings(text, depth):
    assert json_depth(text.encode()) == depth


def test_load_json_bounded_accepts_a_bom_and_refuses_depth_huge_ints_and_bad_text():
    assert load_json_bounded(b"\xef\xbb\xbf[[1, 2]]") == [[1, 2]]
    assert load_json_bounded("[[1e999]]") == [[float("inf")]]  # floats are the caller's to judge
    assert load_json_bounded("[" * 64 + "]" * 64) is not None  # the limit itself is fine
    with pytest.raises(KernelError, match="nesting 65 levels deep; at most 64"):
        load_json_bounded("[" * 65 + "]" * 65, what="kernel literal", error=KernelError)
    with pytest.raises(KernelError, match="nesting 100000 levels"):  # never a RecursionError
        load_json_bounded("[" * 100_000, what="kernel literal", error=KernelError)
    with pytest.raises(KernelError, match="an integer of 41 digits"):
        load_json_bounded("[[" + "9" * 41 + "]]", error=KernelError)
    with pytest.raises(KernelError, match="an integer of 5000 digits"):  # Python's own limit is 4300
        load_json_bounded("[-" + "9" * 5000 + "]", error=KernelError)
    with pytest.raises(CnnvizError, match="not text"):
        load_json_bounded(b"\xff\xfe[1]")
    with pytest.raises(CnnvizError, match="not valid JSON"):
        load_json_bounded("[1,")
    with pytest.raises(CnnvizError, match="more than the 10 bytes"):
        load_json_bounded("[" + " " * 20 + "]", limit=10)


def test_atomic_write_takes_text_bytes_or_a_writer_and_sets_permissions(tmp_path):
    p = tmp_path / "sub" / "a.txt"
    atomic_write(p, "héllo")
    assert p.read_text(encoding="utf-8") == "héllo"
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~files.umask()  # like any new file
    os.chmod(p, 0o600)
    atomic_write(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    assert stat.S_IMODE(p.stat().st_mode) == 0o600  # an existing file keeps its own
    atomic_write(p, lambda fh: fh.write(b"w"), "wb")
    assert p.read_bytes() == b"w"
    assert sorted(f.name for f in p.parent.iterdir()) == ["a.txt"]  # no temporary file left


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    p = tmp_path / "a.json"
    p.write_text("old")

    def fail(fh):
        fh.write("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(p, fail)
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["a.json"]


# ----------------------------------------------------------------------------- archive_guard


def _zip(members: list[tuple[str, bytes, int]]) -> zipfile.ZipFile:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data, kind in members:
            zf.writestr(name, data, compress_type=kind)
    return zipfile.ZipFile(io.BytesIO(buf.getvalue()))


def test_the_guard_refuses_a_member_that_inflates_past_the_ratio_before_inflating_it():
    bomb = _zip([("a/data.pkl", b"\x80\x02}q\x00.", zipfile.ZIP_STORED),
                 ("a/data/0", bytes(8 << 20), zipfile.ZIP_DEFLATED)])
    with pytest.raises(ModelLoadError, match=r"'a/data/0' would inflate from .* to 8.0 MB .*decompression bomb"):
        check_torch_zip(bomb, "w.pth", archive_size=len(bomb.fp.getvalue()))


def test_the_guard_lets_real_archives_and_modest_compression_through():
    import numpy as np

    noise = np.random.default_rng(0).standard_normal(1 << 18).astype(np.float32).tobytes()  # 1 MB
    ok = _zip([("a/data.pkl", b"\x80\x02}q\x00.", zipfile.ZIP_STORED), ("a/data/0", noise, zipfile.ZIP_DEFLATED),
               ("a/version", b"3\n", zipfile.ZIP_DEFLATED), ("a/data/1", bytes(1000), zipfile.ZIP_DEFLATED)])
    check_torch_zip(ok, "w.pth", archive_size=len(ok.fp.getvalue()))
    assert MAX_INFLATE_RATIO >= 20  # float weights never need more


def test_the_guard_refuses_members_outside_the_file_and_stored_size_lies():
    z = _zip([("a/data.pkl", b"x" * 100, zipfile.ZIP_STORED)])
    with pytest.raises(ModelLoadError, match="beyond the end"):
        check_torch_zip(z, "w.pth", archive_size=50)
    z.infolist()[0].file_size = 1 << 30  # the directory declares 1 GiB for 100 stored bytes
    with pytest.raises(ModelLoadError, match="declares 1024.0 MB but holds 100 bytes"):
        check_torch_zip(z, "w.pth", archive_size=len(z.fp.getvalue()))


def test_tensor_ranges_may_not_overlap_or_leave_the_data():
    check_tensor_ranges([("a", 0, 8), ("b", 8, 16), ("empty", 16, 16)], 16, "w.safetensors")
    with pytest.raises(ModelLoadError, match="'a' and 'b' share bytes 4..8"):
        check_tensor_ranges([("a", 0, 8), ("b", 4, 12)], 16, "w.safetensors")
    with pytest.raises(ModelLoadError, match="outside the 16 data bytes"):
        check_tensor_ranges([("a", 8, 24)], 16, "w.safetensors")


# ----------------------------------------------------------------------------- quiet


def test_library_log_output_is_captured_not_printed_and_its_root_cause_quoted(capfd):
    import logging

    from cnnviz.core.quiet import captured_library_logs, first_line

    lib = logging.getLogger("torch._fake_cnnviz_test")
    top = logging.getLogger("torch")
    before = (list(top.handlers), top.propagate)
    printer = logging.StreamHandler()  # a library that prints its tracebacks (as torch does)
    top.addHandler(printer)
    try:
        with captured_library_logs() as logs:
            try:
                try:
                    raise KeyError("builtins.eval")
                except KeyError as inner:
                    raise ValueError("We failed to resolve builtins.eval to an operator. Please file an issue.") \
                        from inner
            except ValueError:
                lib.warning("Ran into the following error when deserializing", exc_info=True)
        assert top.handlers == [*before[0], printer]  # put back exactly
    finally:
        top.removeHandler(printer)
    out, err = capfd.readouterr()
    assert "deserializing" not in err and "Traceback" not in err  # nothing reached the terminal
    assert first_line(logs) == "KeyError: 'builtins.eval'"  # the root cause, one line
    assert first_line([]) is None
