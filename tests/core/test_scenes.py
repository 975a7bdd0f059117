"""Scenes: one versioned JSON file with source, kernel bank, parameters and view."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnviz.core.kernels import Kernel, preset
from cnnviz.core.scenes import (Scene, SceneError, embed_image, embedded_pixels, load_scenes, save_scenes,
                                scenes_from_json, scenes_to_json)


def _scene(**kw) -> Scene:
    base = dict(kernels=tuple(preset("sobel-pair").kernels) + (Kernel(np.full((3, 3, 3), 0.25, np.float32), name="rgb"),),
                selected=1, magnitude_pair=(0, 1), params={"stride": [2, 1], "channels": "full", "bias": 0.5},
                source={"kind": "sample", "name": "photo"}, view={"selection": "magnitude", "presentation": True,
                                                                  "position": [3, 4]},
                title="Edges", notes="two kernels")
    base.update(kw)
    return Scene(**base)


def test_a_scene_round_trips_through_a_file(tmp_path):
    s = _scene()
    p = save_scenes(tmp_path / "edges.json", s)
    data = json.loads(p.read_text())
    assert data["schema"] == "cnnviz.scene" and data["version"] == 1
    assert load_scenes(p) == [s]
    assert not list(tmp_path.glob(".*tmp"))               # written atomically, no leftovers


def test_a_deck_round_trips_and_relative_paths_resolve(tmp_path):
    a = _scene(title="one")
    b = _scene(title="two", source={"kind": "file", "path": "pics/p.png"}, selected=0)
    p = save_scenes(tmp_path / "deck.json", [a, b])
    got = load_scenes(p)
    assert [s.title for s in got] == ["one", "two"]
    assert got[1].source["path"] == str((tmp_path / "pics" / "p.png").resolve())
    assert scenes_from_json(scenes_to_json([a, b])) == [a, b]


def test_an_embedded_picture_comes_back_to_16_bits():
    rng = np.random.default_rng(0)
    for img in (rng.random((7, 9), dtype=np.float32), rng.random((5, 6, 3), dtype=np.float32)):
        back = embedded_pixels(embed_image(img))
        assert back.shape == img.shape
        np.testing.assert_allclose(back, img, atol=1 / 65535)


@pytest.mark.parametrize("text, words", [
    ("{", "not valid JSON"),
    ('{"schema": "other"}', "not a cnnviz scene"),
    ('{"schema": "cnnviz.scene", "version": 9, "kernels": []}', "newer than this cnnviz"),
    ('{"schema": "cnnviz.scene", "version": 1, "kernels": []}', "has no kernels"),
    ('{"schema": "cnnviz.scene", "version": 1, "kernels": [{"name": "k", "weights": [[1]]}], "selected": 3}',
     "outside the bank"),
    ('{"schema": "cnnviz.scene", "version": 1, "kernels": [{"name": "k", "weights": [[1]]}], '
     '"source": {"kind": "webcam"}}', "not known"),
])
def test_bad_scene_files_name_the_cause_and_the_fix(text, words):
    with pytest.raises(SceneError) as info:
        scenes_from_json(text)
    assert words in str(info.value) and info.value.fix


def test_missing_and_folder_paths_are_reported(tmp_path):
    with pytest.raises(SceneError, match="does not exist"):
        load_scenes(tmp_path / "nope.json")
    with pytest.raises(SceneError, match="is a folder"):
        load_scenes(tmp_path)


# -- decks -----------------------------------------------------------------------------------------
def test_a_deck_is_edited_and_round_trips_through_a_file(tmp_path):
    from cnnviz.core.scenes import Deck

    a, b, c = _scene(title="one"), _scene(title="", selected=0), _scene(title="three", source={"kind": "none"})
    deck = Deck([a])
    assert deck.add(b) == 1 and deck[1].title == "Scene 2"       # untitled scenes get a name
    assert deck.add(c, index=0) == 0
    assert deck.titles() == ["three", "one", "Scene 2"]
    assert deck.move(0, 1) == 1 and deck.titles() == ["one", "three", "Scene 2"]
    assert deck.move(2, 5) == 2 and deck.move(0, -3) == 0       # clamped at the ends
    deck.rename(2, "  edges  ")
    assert deck.titles() == ["one", "three", "edges"]
    with pytest.raises(SceneError):
        deck.rename(0, "   ")
    deck.reorder([2, 0, 1])
    assert deck.titles() == ["edges", "one", "three"]
    with pytest.raises(SceneError, match="not an order"):
        deck.reorder([0, 0, 1])
    deck.reorder([1, 2, 0])
    assert deck.titles() == ["one", "three", "edges"]
    assert deck.remove(1) == c and deck.titles() == ["one", "edges"]
    with pytest.raises(SceneError, match="no scene 5"):
        deck.remove(4)
    p = deck.save(tmp_path / "deck.json")
    assert json.loads(p.read_text())["scenes"][1]["title"] == "edges"
    assert Deck.load(p) == deck
    one = Deck([a])                                              # a deck of one stays a deck
    assert "scenes" in json.loads(one.save(tmp_path / "one.json").read_text())
    assert Deck.load(tmp_path / "one.json") == one
    save_scenes(tmp_path / "single.json", a)                     # a single scene opens as a deck of one
    assert Deck.load(tmp_path / "single.json").scenes() == [a]


def test_a_corrupt_deck_file_names_the_cause(tmp_path):
    from cnnviz.core.scenes import Deck

    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "cnnviz.scene", "version": 1, "scenes": [{"kernels": []}]}')
    with pytest.raises(SceneError, match="scene 1 has no kernels"):
        Deck.load(bad)
    bad.write_text("{nope")
    with pytest.raises(SceneError, match="not valid JSON"):
        Deck.load(bad)


def test_describe_scene_tells_scenes_apart():
    from cnnviz.core.scenes import describe_scene

    s = _scene()
    text = describe_scene(s)
    assert text.startswith("sample 'photo' · sobel-x, sobel-y, rgb (3×3)")
    assert "stride 2×1" in text and "channels full" in text and "presentation" in text
    plain = describe_scene(_scene(params={}, view={}, source={"kind": "none"}))
    assert plain.startswith("no picture") and "stride" not in plain
