"""The streaming .npz writer the inspector export and ``cnnviz inspect`` share."""

from __future__ import annotations

import io

import numpy as np
import pytest

from cnnviz.core.npz import write_npz


def test_round_trips_through_np_load_with_names_np_savez_would_choke_on():
    arrays = {"file": np.arange(6, dtype=np.float32).reshape(2, 3),      # np.savez(file, **{"file": …}) clashes
              "allow_pickle": np.ones((1, 4, 4), np.float32),
              "layer1.0.conv1": np.full((64, 8, 8), -1.5, np.float32)}
    buf = io.BytesIO()
    seen = []
    count = write_npz(buf, iter(arrays.items()), len(arrays), lambda d, t, name: seen.append((d, t, name)))
    assert count == 3
    assert seen == [(1, 3, "file"), (2, 3, "allow_pickle"), (3, 3, "layer1.0.conv1")]
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        assert sorted(z.files) == sorted(arrays)
        for k, v in arrays.items():
            assert z[k].dtype == v.dtype and np.array_equal(z[k], v)


def test_a_repeated_name_is_refused():
    with pytest.raises(ValueError, match="two arrays are named 'x'"):
        write_npz(io.BytesIO(), [("x", np.zeros(1)), ("x", np.ones(1))])


def test_arrays_are_made_one_at_a_time():
    made = []

    def items():
        for i in range(3):
            made.append(i)
            yield f"a{i}", np.zeros(2)

    progress_at = []
    write_npz(io.BytesIO(), items(), 3, lambda d, t, name: progress_at.append(len(made)))
    assert progress_at == [1, 2, 3]   # the next array is not made before the last is written
