"""Scenes: everything a demo needs in one versioned JSON file.

A :class:`Scene` is the source (a bundled sample, a picture file referenced by path, or the
picture itself embedded as PNG), the kernel bank (with the selected kernel and the gradient
pair), the parameters (the plain dict of the playground's parameters) and the view shown
(which kernel/mosaic/magnitude, presentation mode and the explained position). A file holds
one scene or a *deck* (a list of scenes a teacher steps through in presentation mode).

Files are written atomically (:func:`cnnviz.core.kernels.atomic_write_text`) and read with a
size bound; a bad file raises :class:`SceneError` naming the cause and the fix.

Pure Python + numpy: no Qt (the window turns a scene into its state and back).
"""

from __future__ import annotations

import base64
import io
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CnnvizError
from .kernels import Kernel, atomic_write_text

SCHEMA = "cnnviz.scene"
VERSION = 1
MAX_FILE_BYTES = 64_000_000
SOURCE_KINDS = ("sample", "file", "embedded", "none")


class SceneError(CnnvizError):
    """A scene file that cannot be used (cause and fix)."""


@dataclass(frozen=True)
class Scene:
    """One demo setup. ``params`` is the playground's parameters as a plain dict
    (``PlaygroundParams.to_dict()``); ``source`` is ``{"kind": "sample", "name": ...}``,
    ``{"kind": "file", "path": ...}``, ``{"kind": "embedded", "png": <base64>}`` or
    ``{"kind": "none"}``; ``view`` holds ``selection`` (kernel index, "mosaic" or
    "magnitude"), ``presentation`` (bool), ``position`` ([y, x] presentation mode explains) with its ``stage`` ("conv" or "pool")
    and, when a pixel was clicked, ``explained`` ([stage, kernel, y, x] the Explain panel shows)."""

    kernels: tuple[Kernel, ...]
    selected: int = 0
    magnitude_pair: tuple[int, int] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=lambda: {"kind": "none"})
    view: dict[str, Any] = field(default_factory=dict)
    title: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        if not self.kernels:
            raise SceneError("a scene needs at least one kernel", "add a kernel to the bank")
        if not 0 <= self.selected < len(self.kernels):
            raise SceneError(f"selected kernel {self.selected + 1} is outside the bank of {len(self.kernels)}",
                             "fix 'selected' in the scene file")
        if self.source.get("kind") not in SOURCE_KINDS:
            raise SceneError(f"scene source kind {self.source.get('kind')!r} is not known",
                             f"use one of {', '.join(SOURCE_KINDS)}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Scene):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:  # frozen dataclass with a custom __eq__
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    # -- JSON -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "notes": self.notes,
            "source": dict(self.source),
            "kernels": [k.to_dict() for k in self.kernels],
            "selected": int(self.selected),
            "magnitude_pair": list(self.magnitude_pair) if self.magnitude_pair is not None else None,
            "params": dict(self.params),
            "view": dict(self.view),
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "scene") -> "Scene":
        if not isinstance(d, dict):
            raise SceneError(f"{where} is {type(d).__name__}, not an object", "save the scene again from cnnviz")
        ks = d.get("kernels")
        if not isinstance(ks, list) or not ks:
            raise SceneError(f"{where} has no kernels", "a scene needs a 'kernels' list with at least one kernel")
        try:
            kernels = tuple(Kernel.from_dict(k, where=f"{where}, kernel {i + 1}") for i, k in enumerate(ks))
        except CnnvizError as err:
            raise SceneError(err.cause, err.fix) from None
        except (TypeError, ValueError) as exc:
            raise SceneError(f"{where} has a broken kernel ({exc})", "save the scene again from cnnviz") from None
        pair = d.get("magnitude_pair")
        if pair is not None:
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(i, int) for i in pair)):
                raise SceneError(f"{where}: magnitude_pair {pair!r} is not two kernel numbers", "use [0, 1] or null")
            pair = (int(pair[0]), int(pair[1]))
        for name, typ in (("params", dict), ("source", dict), ("view", dict)):
            if name in d and not isinstance(d[name], typ):
                raise SceneError(f"{where}: '{name}' is {type(d[name]).__name__}, not an object",
                                 "save the scene again from cnnviz")
        selected = d.get("selected", 0)
        if not isinstance(selected, int) or isinstance(selected, bool):
            raise SceneError(f"{where}: 'selected' is {selected!r}", "use a kernel number from 0")
        return cls(kernels=kernels, selected=selected, magnitude_pair=pair, params=dict(d.get("params", {})),
                   source=dict(d.get("source", {"kind": "none"})), view=dict(d.get("view", {})),
                   title=str(d.get("title", "")), notes=str(d.get("notes", "")))


def scenes_to_json(scenes: list[Scene] | tuple[Scene, ...], *, deck: bool = False) -> str:
    """One scene (a plain object) or a deck (``"scenes": [...]``), versioned. ``deck`` writes
    the list form even for one scene (a deck file stays a deck)."""
    scenes = list(scenes)
    if not scenes:
        raise SceneError("nothing to save", "make a scene first")
    body: dict[str, Any] = {"schema": SCHEMA, "version": VERSION}
    if len(scenes) == 1 and not deck:
        body.update(scenes[0].to_dict())
    else:
        body["scenes"] = [s.to_dict() for s in scenes]
    return json.dumps(body, indent=1)


def scenes_from_json(text: str, where: str = "scene file") -> list[Scene]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SceneError(f"{where} is not valid JSON ({exc.msg}, line {exc.lineno})",
                         "save the scene again from cnnviz") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise SceneError(f"{where} is not a cnnviz scene (no \"schema\": \"{SCHEMA}\")",
                         "open a file saved with File ▸ Save scene")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SceneError(f"{where} has version {version!r}", "save the scene again from cnnviz")
    if version > VERSION:
        raise SceneError(f"{where} is scene version {version}, newer than this cnnviz ({VERSION})", "update cnnviz")
    if "scenes" in data:
        items = data["scenes"]
        if not isinstance(items, list) or not items:
            raise SceneError(f"{where} has an empty list of scenes", "add at least one scene")
        return [Scene.from_dict(s, where=f"{where}, scene {i + 1}") for i, s in enumerate(items)]
    return [Scene.from_dict(data, where=where)]


def save_scenes(path: str | os.PathLike, scenes) -> Path:  # noqa: ANN001
    """Write one scene or a deck atomically; returns the path."""
    if isinstance(scenes, Scene):
        scenes = [scenes]
    p = Path(path)
    atomic_write_text(p, scenes_to_json(scenes))
    return p


def load_scenes(path: str | os.PathLike) -> list[Scene]:
    """Read a scene file (a bounded read); relative picture paths resolve against its folder."""
    p = Path(path)
    try:
        if p.is_dir():
            raise SceneError(f"'{p}' is a folder, not a scene file", "choose a .json scene file")
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SceneError(f"scene file '{p.name}' is {size} bytes, too large", "embed a smaller picture")
        raw = p.read_bytes()
    except FileNotFoundError:
        raise SceneError(f"scene file '{p}' does not exist", "check the path") from None
    except OSError as exc:
        raise SceneError(f"cannot read scene file '{p}': {exc.strerror}", "check its permissions") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SceneError(f"scene file '{p.name}' is not text", "choose a .json scene file") from None
    scenes = scenes_from_json(text, where=f"scene file '{p.name}'")
    out = []
    for s in scenes:
        src = s.source
        if src.get("kind") == "file" and isinstance(src.get("path"), str) and not Path(src["path"]).is_absolute():
            src = dict(src, path=str((p.parent / src["path"]).resolve()))
            s = Scene(s.kernels, s.selected, s.magnitude_pair, s.params, src, s.view, s.title, s.notes)
        out.append(s)
    return out


class Deck:
    """An ordered list of scenes a teacher steps through in presentation mode.

    The editing operations return the index the edited scene has afterwards, so a view can
    keep it selected. Scenes are frozen: renaming replaces the scene with a retitled copy.
    """

    def __init__(self, scenes=()) -> None:  # noqa: ANN001 - any iterable of Scene
        self._scenes: list[Scene] = []
        for s in scenes:
            self.add(s)

    # -- reading ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._scenes)

    def __getitem__(self, i: int) -> Scene:
        return self._scenes[i]

    def __iter__(self):  # noqa: ANN204
        return iter(self._scenes)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Deck):
            return self._scenes == other._scenes
        if isinstance(other, (list, tuple)):
            return self._scenes == list(other)
        return NotImplemented

    __hash__ = None  # mutable

    def scenes(self) -> list[Scene]:
        return list(self._scenes)

    def titles(self) -> list[str]:
        return [s.title for s in self._scenes]

    # -- editing ------------------------------------------------------------------------------------
    def _check(self, i: int) -> int:
        if not 0 <= i < len(self._scenes):
            raise SceneError(f"there is no scene {i + 1} in a deck of {len(self._scenes)}", "pick a scene of the list")
        return i

    def add(self, scene: Scene, index: int | None = None) -> int:
        """Insert ``scene`` (at the end by default); an untitled one is called "Scene n"."""
        if not isinstance(scene, Scene):
            raise SceneError(f"a deck holds scenes, not {type(scene).__name__}", "capture a scene first")
        i = len(self._scenes) if index is None else max(0, min(len(self._scenes), int(index)))
        if not scene.title.strip():
            scene = replace(scene, title=f"Scene {len(self._scenes) + 1}")
        self._scenes.insert(i, scene)
        return i

    def remove(self, i: int) -> Scene:
        return self._scenes.pop(self._check(i))

    def move(self, i: int, delta: int) -> int:
        """Move scene ``i`` by ``delta`` places (clamped to the ends); returns its new index."""
        self._check(i)
        j = max(0, min(len(self._scenes) - 1, i + int(delta)))
        self._scenes.insert(j, self._scenes.pop(i))
        return j

    def reorder(self, order) -> None:  # noqa: ANN001 - a sequence of the scenes' indices
        """Put the scenes in ``order`` (a permutation of their indices: a drag in a list)."""
        order = [int(i) for i in order]
        if sorted(order) != list(range(len(self._scenes))):
            raise SceneError(f"{order} is not an order of the {len(self._scenes)} scenes", "give each scene once")
        self._scenes = [self._scenes[i] for i in order]

    def rename(self, i: int, title: str) -> None:
        title = str(title).strip()
        if not title:
            raise SceneError("a scene needs a title", "type a title")
        self._scenes[self._check(i)] = replace(self._scenes[i], title=title)

    def replace_scene(self, i: int, scene: Scene) -> None:
        """Put ``scene`` in place of scene ``i`` (keeping its title when the new one has none)."""
        old = self._scenes[self._check(i)]
        self._scenes[i] = scene if scene.title.strip() else replace(scene, title=old.title)

    # -- files ----------------------------------------------------------------------------------------
    def to_json(self) -> str:
        return scenes_to_json(self._scenes, deck=True)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the deck atomically (always the list form, even with one scene)."""
        p = Path(path)
        atomic_write_text(p, self.to_json())
        return p

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Deck":
        """A deck file (or a one-scene file, as a deck of one); :class:`SceneError` when bad."""
        return cls(load_scenes(path))


def describe_scene(scene: Scene) -> str:
    """One line saying which scene is which: its picture, kernels and the parameters that differ
    from the defaults (the deck editor's preview)."""
    src = scene.source
    kind = src.get("kind")
    if kind == "sample":
        pic = f"sample '{src.get('name', '')}'"
    elif kind == "file":
        pic = f"file {Path(str(src.get('path', ''))).name}"
    elif kind == "embedded":
        pic = "embedded picture"
    else:
        pic = "no picture"
    names = [k.name or f"kernel {i + 1}" for i, k in enumerate(scene.kernels)]
    ks = ", ".join(names[:3]) + (f" … ({len(names)} kernels)" if len(names) > 3 else "")
    size = "×".join(str(v) for v in scene.kernels[0].size)
    p = scene.params
    parts = []
    for key, label in (("channels", "channels"), ("stride", "stride"), ("padding", "padding"),
                       ("activation", ""), ("pool", "pool")):
        v = p.get(key)
        if v in (None, "", "none", "gray", [1, 1], [0, 0], (1, 1), (0, 0)):
            continue
        if key == "padding" and p.get("padding_kind", "number") != "number":
            v = p["padding_kind"]
        if isinstance(v, (list, tuple)):
            v = "×".join(str(x) for x in v)
        parts.append(f"{label} {v}".strip())
    view = scene.view
    if view.get("presentation"):
        parts.append("presentation")
    return f"{pic} · {ks} ({size}){' · ' + ', '.join(parts) if parts else ''}"


# -- embedded pictures -----------------------------------------------------------------------
def embed_image(pixels: np.ndarray) -> dict[str, Any]:
    """A source holding the picture itself: float [0, 1] (H, W) or (H, W, 3) → 16-bit PNG
    (base64), so a pasted or live picture travels with the scene (to 1/65535)."""
    import cv2  # noqa: PLC0415 - OpenCV is a core dependency; loaded only when embedding

    a = np.asarray(pixels, dtype=np.float32)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise SceneError(f"a picture of shape {a.shape} cannot be embedded", "use (H, W) grey or (H, W, 3) RGB")
    if a.ndim == 3:
        a = a[..., :3][..., ::-1]  # RGB → BGR for OpenCV
    u16 = np.clip(np.rint(a * 65535.0), 0, 65535).astype(np.uint16)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(u16))
    if not ok:
        raise SceneError("the picture could not be encoded as PNG", "try another picture")
    return {"kind": "embedded", "png": base64.b64encode(buf.tobytes()).decode("ascii")}


def embedded_pixels(source: dict[str, Any]) -> np.ndarray:
    """The float32 picture of an ``embedded`` source ((H, W) or (H, W, 3), RGB)."""
    import cv2  # noqa: PLC0415

    try:
        data = base64.b64decode(str(source.get("png", "")).encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise SceneError("the scene's embedded picture is not base64", "save the scene again from cnnviz") from None
    arr = cv2.imdecode(np.frombuffer(io.BytesIO(data).getbuffer(), np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise SceneError("the scene's embedded picture is not a PNG", "save the scene again from cnnviz")
    scale = 65535.0 if arr.dtype == np.uint16 else 255.0
    out = arr.astype(np.float32) / scale
    if out.ndim == 3:
        out = np.ascontiguousarray(out[..., :3][..., ::-1])
    return out
