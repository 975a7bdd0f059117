"""Settings: one typed object, atomic JSON, corrupt files kept as .bak and reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnviz.core.conv import ConvSpec, PoolSpec
from cnnviz.core.errors import SettingsError, SpecError
from cnnviz.core.kernels import preset
from cnnviz.core.settings import (MAX_RECENT, SCHEMA_VERSION, PlaygroundParams, Settings, load_settings,
                                save_settings, settings_path)


def test_config_dir_follows_the_environment(config_dir):
    from cnnviz.core import settings

    assert settings.config_dir() == Path(config_dir)
    assert settings_path() == Path(config_dir) / "settings.json"


def test_round_trip(tmp_path):
    s = Settings()
    s.last_image = "/pictures/cat.png"
    s.set_kernel_bank(preset("sobel-pair").kernels, 1, (0, 1))
    s.params = PlaygroundParams(stride=(2, 1), padding_kind="number", padding=(1, 2), padding_mode="reflect",
                                dilation=(2, 2), bias=0.25, flip=True, channels="each", activation="leaky_relu",
                                slope=0.2, pool="avg", pool_size=(3, 3), pool_stride=(2, 2), pool_padding=(1, 1),
                                ceil_mode=True)
    s.window_geometry = Settings.encode_bytes(b"\x01\x02geometry")
    s.window_state = Settings.encode_bytes(b"\x00state\xff")
    s.theme = "dark"
    s.recent_files = ["/a.png", "/b.jpg"]
    s.linked_zoom = False
    s.colormap = "viridis"
    s.levels_mode = "fixed"
    p = save_settings(s, tmp_path / "settings.json")
    back, msg = load_settings(p)
    assert msg is None
    assert back.to_dict() == s.to_dict()
    assert back.kernel_bank() == list(preset("sobel-pair").kernels)
    assert back.magnitude_pair == (0, 1)
    assert back.params == s.params
    assert Settings.decode_bytes(back.window_state) == b"\x00state\xff"
    assert json.loads(p.read_text())["schema_version"] == SCHEMA_VERSION
    assert [f.name for f in tmp_path.iterdir()] == ["settings.json"]  # no temporary files left


def test_params_make_the_core_specs():
    p = PlaygroundParams(stride=(2, 2), padding=(1, 1), dilation=(1, 2), pool="max", pool_size=(3, 3),
                         pool_stride=(2, 2))
    conv, act, pool = p.to_specs()
    assert conv == ConvSpec(stride=2, padding=1, dilation=(1, 2))
    assert act.kind == "none"
    assert pool == PoolSpec("max", size=3, stride=2)
    assert PlaygroundParams(padding_kind="same").conv_spec().padding == "same"
    assert PlaygroundParams().pool_spec() is None


def test_params_refuse_what_the_core_refuses():
    with pytest.raises(SpecError, match="stride 1"):
        PlaygroundParams(padding_kind="same", stride=(2, 2)).to_specs()


def test_missing_file_gives_defaults_without_a_message(tmp_path):
    s, msg = load_settings(tmp_path / "nope.json")
    assert msg is None
    assert s.to_dict() == Settings().to_dict()


@pytest.mark.parametrize("content, cause", [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe\x00garbage", "not text"),
    (b"[1, 2, 3]", "not an object"),
    (json.dumps({"schema_version": 1, "params": {"stride": "two"}}).encode(), "stride"),
    (json.dumps({"schema_version": 1, "theme": "purple"}).encode(), "theme"),
    (json.dumps({"schema_version": 1, "kernels": [{"name": "k", "weights": [[1, 2], [3]]}]}).encode(), "kernel"),
    (json.dumps({"schema_version": 99}).encode(), "newer"),
])
def test_corrupt_file_is_kept_as_backup_and_reported(tmp_path, content, cause):
    p = tmp_path / "settings.json"
    p.write_bytes(content)
    s, msg = load_settings(p)
    assert s.to_dict() == Settings().to_dict()
    assert msg is not None and cause in msg and "defaults" in msg
    bak = tmp_path / "settings.json.bak"
    assert bak.read_bytes() == content          # the user's file is kept, byte for byte
    assert not p.exists()
    assert str(bak) in msg


def test_from_dict_names_the_bad_entry():
    with pytest.raises(SettingsError, match="recent_files"):
        Settings.from_dict({"recent_files": [1, 2]})
    with pytest.raises(SettingsError, match="magnitude_pair"):
        Settings.from_dict({"magnitude_pair": [0]})


def test_unknown_keys_are_ignored_and_missing_keys_default():
    s = Settings.from_dict({"schema_version": 1, "future_option": 3, "theme": "light"})
    assert s.theme == "light"
    assert s.params == PlaygroundParams()


def test_recent_files_are_unique_newest_first_and_bounded(tmp_path):
    s = Settings()
    for i in range(MAX_RECENT + 3):
        s.add_recent(tmp_path / f"{i}.png")
    s.add_recent(tmp_path / "5.png")
    assert len(s.recent_files) == MAX_RECENT
    assert s.recent_files[0] == str((tmp_path / "5.png").resolve())
    assert len(set(s.recent_files)) == len(s.recent_files)
