"""The window's persistent settings: one typed object, one JSON file, written atomically.

The file lives in the user's config directory (``platformdirs``), or in
``$CNNVIZ_CONFIG_DIR`` when that is set (tests point it at a temporary directory).
A file that cannot be read (bad JSON, wrong types, a newer schema, nesting deeper than any
settings file needs, more than :data:`MAX_FILE_BYTES`, or not a regular file at all — a FIFO
would block the window's start forever) is moved aside to ``settings.json.bak`` and the
window starts with defaults and says so in the status bar — the user's file is never
silently overwritten. Entries that are oversized but otherwise valid (a 1 MB path in the
recent files) are dropped, the original file is copied to a backup first, and the status
bar says so. Reads and writes go through :mod:`cnnviz.core.files`.

This module imports no widgets; :class:`PlaygroundParams` is the plain data behind the
parameters panel and turns itself into the core's specs.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from cnnviz.core.conv import (ACTIVATIONS, CHANNEL_MODES, PADDING_MODES, ActivationSpec, ConvSpec,
                              PoolSpec)
from cnnviz.core.errors import SettingsError
from cnnviz.core.files import (atomic_write, atomic_write_text, backup_path_for, file_kind, load_json_bounded,
                               read_bounded)
from cnnviz.core.kernels import Kernel

SCHEMA = "cnnviz.settings"
SCHEMA_VERSION = 1
FILENAME = "settings.json"
MAX_RECENT = 10
#: Largest settings file read (a real one is a few KB; the window state is at most ~100 KB).
MAX_FILE_BYTES = 8 * 1024 * 1024
#: Longest path kept (recent files, last image); longer ones are dropped.
MAX_PATH_CHARS = 4096
#: Longest base64 window geometry/state kept.
MAX_STATE_CHARS = 1024 * 1024
#: Longest short string (colormap name…) kept.
MAX_NAME_CHARS = 256
#: Most kernels kept in the saved bank.
MAX_SAVED_KERNELS = 256
ENV_DIR = "CNNVIZ_CONFIG_DIR"


def config_dir() -> Path:
    """``$CNNVIZ_CONFIG_DIR`` or the platform's per-user config directory for cnnviz."""
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env)
    import platformdirs  # noqa: PLC0415 - only needed here

    return Path(platformdirs.user_config_dir("cnnviz", "cnnviz"))


def settings_path() -> Path:
    return config_dir() / FILENAME


# ---------------------------------------------------------------------------------------
# Parameters of the playground (what the parameters panel edits)
# ---------------------------------------------------------------------------------------
PADDING_KINDS = ("number", "same", "valid")
POOL_CHOICES = ("none", "max", "avg")


def _pair(v: Any, name: str, minimum: int) -> tuple[int, int]:
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        a, b = int(v[0]), int(v[1])
    elif isinstance(v, int) and not isinstance(v, bool):
        a = b = int(v)
    else:
        raise SettingsError(f"setting '{name}' is {v!r}, not one or two whole numbers", "fix or delete the settings file")
    if a < minimum or b < minimum:
        raise SettingsError(f"setting '{name}' is {v!r}, below {minimum}", "fix or delete the settings file")
    return a, b


@dataclass(frozen=True)
class PlaygroundParams:
    """Everything the parameters panel shows, as plain values.

    ``to_specs`` builds the core's frozen specs and raises :class:`SpecError` for
    combinations that cannot work (for example padding 'same' with stride 2).
    """

    stride: tuple[int, int] = (1, 1)
    padding_kind: str = "number"          # "number" | "same" | "valid"
    padding: tuple[int, int] = (0, 0)     # used when padding_kind == "number"
    padding_mode: str = "zeros"
    dilation: tuple[int, int] = (1, 1)
    bias: float = 0.0
    flip: bool = False
    channels: str = "gray"
    activation: str = "none"
    slope: float = 0.01
    pool: str = "none"                    # "none" | "max" | "avg"
    pool_size: tuple[int, int] = (2, 2)
    pool_stride: tuple[int, int] = (2, 2)
    pool_padding: tuple[int, int] = (0, 0)
    ceil_mode: bool = False

    def conv_spec(self) -> ConvSpec:
        padding: Any = self.padding if self.padding_kind == "number" else self.padding_kind
        return ConvSpec(stride=self.stride, padding=padding, padding_mode=self.padding_mode,
                        dilation=self.dilation, bias=self.bias, flip=self.flip, channels=self.channels)

    def activation_spec(self) -> ActivationSpec:
        return ActivationSpec(kind=self.activation, slope=self.slope)

    def pool_spec(self) -> PoolSpec | None:
        if self.pool == "none":
            return None
        return PoolSpec(kind=self.pool, size=self.pool_size, stride=self.pool_stride, padding=self.pool_padding,
                        ceil_mode=self.ceil_mode)

    def to_specs(self) -> tuple[ConvSpec, ActivationSpec, PoolSpec | None]:
        return self.conv_spec(), self.activation_spec(), self.pool_spec()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Any) -> "PlaygroundParams":
        if not isinstance(d, dict):
            raise SettingsError(f"'params' is {type(d).__name__}, not an object", "fix or delete the settings file")
        defaults = cls()
        kw: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in d:
                continue
            v = d[f.name]
            default = getattr(defaults, f.name)
            if isinstance(default, tuple):
                minimum = 0 if "padding" in f.name else 1
                kw[f.name] = _pair(v, f.name, minimum)
            elif isinstance(default, bool):
                if not isinstance(v, bool):
                    raise SettingsError(f"setting '{f.name}' is {v!r}, not true/false", "fix or delete the settings file")
                kw[f.name] = v
            elif isinstance(default, float):
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise SettingsError(f"setting '{f.name}' is {v!r}, not a number", "fix or delete the settings file")
                kw[f.name] = float(v)
            else:
                allowed = {"padding_kind": PADDING_KINDS, "padding_mode": PADDING_MODES, "channels": CHANNEL_MODES,
                           "activation": ACTIVATIONS, "pool": POOL_CHOICES}[f.name]
                if v not in allowed:
                    raise SettingsError(f"setting '{f.name}' is {v!r}", f"use one of {', '.join(allowed)}")
                kw[f.name] = v
        return cls(**kw)


# ---------------------------------------------------------------------------------------
# The settings object
# ---------------------------------------------------------------------------------------
@dataclass
class Settings:
    """Everything the window remembers between runs."""

    schema_version: int = SCHEMA_VERSION
    last_image: str | None = None               # a file path, or "sample:<name>"
    kernels: list[dict[str, Any]] = field(default_factory=list)   # Kernel.to_dict() of the bank
    selected_kernel: int = 0
    magnitude_pair: tuple[int, int] | None = None
    params: PlaygroundParams = field(default_factory=PlaygroundParams)
    window_geometry: str = ""                   # base64 of QMainWindow.saveGeometry()
    window_state: str = ""                      # base64 of QMainWindow.saveState()
    theme: str = "system"                       # "system" | "light" | "dark"
    recent_files: list[str] = field(default_factory=list)
    linked_zoom: bool = True
    colormap: str = "auto"
    levels_mode: str = "auto"                   # "auto" | "fixed"
    last_dirs: dict[str, str] = field(default_factory=dict)  # file dialog kind -> last folder used
    font_scale: float = 1.0                     # the whole app's font size (Ctrl +/-)

    # -- folders the file dialogs open in -------------------------------------------------------
    def last_dir(self, kind: str) -> str:
        """The folder a ``kind`` ("image", "kernels", "video", "export", "scene") dialog last
        used, when it still exists; else the last folder any dialog used; else the home folder."""
        for d in (self.last_dirs.get(kind), *self.last_dirs.values()):
            if d and Path(d).is_dir():
                return d
        return str(Path.home())

    def remember_dir(self, kind: str, path: str | os.PathLike) -> None:
        """Remember the folder of ``path`` (a file, or a folder itself) for ``kind`` dialogs."""
        p = Path(path)
        self.last_dirs[kind] = str(p if p.is_dir() else p.parent)

    # -- kernels ----------------------------------------------------------------------------
    def kernel_bank(self) -> list[Kernel]:
        """The saved bank as kernels (raises SettingsError for a broken entry)."""
        out = []
        for i, d in enumerate(self.kernels):
            try:
                out.append(Kernel.from_dict(d, where=f"saved kernel {i + 1}"))
            except ValueError as exc:
                raise SettingsError(f"saved kernel {i + 1} is broken ({exc})", "fix or delete the settings file") from None
        return out

    def set_kernel_bank(self, kernels: list[Kernel] | tuple[Kernel, ...], selected: int = 0,
                        magnitude_pair: tuple[int, int] | None = None) -> None:
        self.kernels = [k.to_dict() for k in kernels]
        self.selected_kernel = int(selected)
        self.magnitude_pair = tuple(magnitude_pair) if magnitude_pair is not None else None  # type: ignore[assignment]

    # -- recent files -------------------------------------------------------------------------
    def add_recent(self, path: str | os.PathLike) -> None:
        p = str(Path(path).resolve())
        self.recent_files = [p] + [r for r in self.recent_files if r != p]
        del self.recent_files[MAX_RECENT:]

    # -- Qt byte arrays as base64 -----------------------------------------------------------------
    @staticmethod
    def encode_bytes(data: bytes) -> str:
        return base64.b64encode(bytes(data)).decode("ascii")

    @staticmethod
    def decode_bytes(text: str) -> bytes:
        try:
            return base64.b64decode(text.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError):
            return b""

    # -- JSON -------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "last_image": self.last_image,
            "kernels": self.kernels,
            "selected_kernel": self.selected_kernel,
            "magnitude_pair": list(self.magnitude_pair) if self.magnitude_pair is not None else None,
            "params": self.params.to_dict(),
            "window_geometry": self.window_geometry,
            "window_state": self.window_state,
            "theme": self.theme,
            "recent_files": list(self.recent_files),
            "linked_zoom": self.linked_zoom,
            "colormap": self.colormap,
            "levels_mode": self.levels_mode,
            "last_dirs": dict(self.last_dirs),
            "font_scale": self.font_scale,
        }

    @classmethod
    def from_dict(cls, d: Any, dropped: list[str] | None = None) -> "Settings":
        """Parse a settings object; raises SettingsError naming the bad entry.

        Oversized entries (paths, window state, names, too many kernels) are dropped or
        cut back to their default; each is named in ``dropped`` when a list is given.
        """
        notes = dropped if dropped is not None else []
        fix = "fix or delete the settings file"
        if not isinstance(d, dict):
            raise SettingsError(f"the settings file holds {type(d).__name__}, not an object", fix)
        if d.get("schema", SCHEMA) != SCHEMA:
            raise SettingsError(f"the settings file has schema {d.get('schema')!r}", fix)
        version = d.get("schema_version", SCHEMA_VERSION)
        if not isinstance(version, int) or isinstance(version, bool):
            raise SettingsError(f"settings schema_version is {version!r}", fix)
        if version > SCHEMA_VERSION:
            raise SettingsError(f"the settings file is version {version}, newer than this cnnviz ({SCHEMA_VERSION})",
                                "update cnnviz; the file was kept as a backup")
        s = cls()

        def get(name: str, types: tuple[type, ...], allow_none: bool = False):
            if name not in d:
                return getattr(s, name)
            v = d[name]
            if v is None and allow_none:
                return None
            if isinstance(v, bool) and bool not in types:
                raise SettingsError(f"setting '{name}' is {v!r}", fix)
            if not isinstance(v, types):
                raise SettingsError(f"setting '{name}' is {v!r}, expected {'/'.join(t.__name__ for t in types)}", fix)
            return v

        s.last_image = get("last_image", (str,), allow_none=True)
        if s.last_image is not None and len(s.last_image) > MAX_PATH_CHARS:
            notes.append(f"last image path of {len(s.last_image)} characters")
            s.last_image = None
        kernels = get("kernels", (list,))
        if not all(isinstance(k, dict) for k in kernels):
            raise SettingsError("setting 'kernels' holds entries that are not kernel objects", fix)
        if len(kernels) > MAX_SAVED_KERNELS:
            notes.append(f"{len(kernels) - MAX_SAVED_KERNELS} kernels beyond the first {MAX_SAVED_KERNELS}")
            kernels = kernels[:MAX_SAVED_KERNELS]
        s.kernels = kernels
        s.selected_kernel = int(get("selected_kernel", (int,)))
        pair = get("magnitude_pair", (list,), allow_none=True)
        if pair is not None:
            if len(pair) != 2 or not all(isinstance(i, int) and not isinstance(i, bool) for i in pair):
                raise SettingsError(f"setting 'magnitude_pair' is {pair!r}", fix)
            pair = (int(pair[0]), int(pair[1]))
        s.magnitude_pair = pair
        if "params" in d:
            s.params = PlaygroundParams.from_dict(d["params"])
        for name in ("window_geometry", "window_state"):
            value = get(name, (str,))
            if len(value) > MAX_STATE_CHARS:
                notes.append(f"{name} of {len(value)} characters")
                value = ""
            setattr(s, name, value)
        theme = get("theme", (str,))
        if theme not in ("system", "light", "dark"):
            raise SettingsError(f"setting 'theme' is {theme!r}", "use system, light or dark")
        s.theme = theme
        recent = get("recent_files", (list,))
        if not all(isinstance(r, str) for r in recent):
            raise SettingsError("setting 'recent_files' holds entries that are not paths", fix)
        long = [r for r in recent if len(r) > MAX_PATH_CHARS]
        if long:
            notes.append(f"{len(long)} recent file path(s) longer than {MAX_PATH_CHARS} characters "
                         f"(the longest has {max(len(r) for r in long)})")
        s.recent_files = [r for r in recent if len(r) <= MAX_PATH_CHARS][:MAX_RECENT]
        s.linked_zoom = bool(get("linked_zoom", (bool,)))
        s.colormap = get("colormap", (str,))
        if len(s.colormap) > MAX_NAME_CHARS:
            notes.append(f"colormap name of {len(s.colormap)} characters")
            s.colormap = cls.colormap
        lm = get("levels_mode", (str,))
        if lm not in ("auto", "fixed"):
            raise SettingsError(f"setting 'levels_mode' is {lm!r}", "use auto or fixed")
        s.levels_mode = lm
        dirs = get("last_dirs", (dict,))
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in dirs.items()):
            raise SettingsError("setting 'last_dirs' holds entries that are not folder names", fix)
        s.last_dirs = dict(dirs)
        scale = get("font_scale", (int, float))
        if not 0.5 <= float(scale) <= 3.0:
            raise SettingsError(f"setting 'font_scale' is {scale!r}", "use a number from 0.5 to 3")
        s.font_scale = float(scale)
        if s.kernels:
            s.kernel_bank()  # validate now so a broken kernel is reported like any corrupt file
        return s


def load_settings(path: str | os.PathLike | None = None) -> tuple[Settings, str | None]:
    """Read the settings; returns ``(settings, message)``.

    ``message`` is None when all went well (or there was no file yet). When the file is
    corrupt it is moved aside to ``<name>.bak`` (``.bak1``, ``.bak2``… when an older backup
    exists, which is never overwritten), defaults are returned and ``message`` says what
    happened, for the status bar.
    """
    p = Path(path) if path is not None else settings_path()
    try:
        st = os.stat(p)
    except FileNotFoundError:
        return Settings(), None
    except OSError as exc:
        return Settings(), f"Could not read settings {p} ({exc.strerror}); using defaults."
    try:
        if not stat.S_ISREG(st.st_mode):
            raise SettingsError(f"the settings file is {file_kind(st.st_mode)[0]}, not a regular file",
                                "it was moved aside")
        if st.st_size > MAX_FILE_BYTES:
            raise SettingsError(f"the settings file is {st.st_size:,} bytes, more than the "
                                f"{MAX_FILE_BYTES:,} a settings file may be", "it was kept as a backup")
        try:
            raw = read_bounded(p, MAX_FILE_BYTES, "settings file", error=SettingsError)
        except SettingsError as exc:
            return Settings(), f"Could not read settings ({exc.cause}); using defaults."
        data = load_json_bounded(raw, MAX_FILE_BYTES, "the settings file", error=SettingsError)
        dropped: list[str] = []
        settings = Settings.from_dict(data, dropped)
    except SettingsError as err:
        bak = backup_path_for(p)  # never overwrite an earlier backup: it may hold the good copy
        try:
            os.replace(p, bak)
            where = f"kept as {bak}"
        except OSError as exc:
            where = f"could not move it aside ({exc.strerror})"
        return Settings(), f"Settings were corrupt ({err.cause}); {where}. Started with defaults."
    if not dropped:
        return settings, None
    bak = backup_path_for(p)
    try:
        atomic_write(bak, raw)
        where = f"the original was kept as {bak}"
    except OSError as exc:
        where = f"the original could not be backed up ({exc.strerror})"
    return settings, f"Settings held oversized entries ({'; '.join(dropped)}); they were dropped and {where}."


def save_settings(settings: Settings, path: str | os.PathLike | None = None) -> Path:
    """Write the settings atomically (temporary file + rename); returns the path."""
    p = Path(path) if path is not None else settings_path()
    atomic_write_text(p, json.dumps(settings.to_dict(), indent=1))
    return p
