"""The user guide's classroom pictures, taken from the real app under Xvfb.

One command (from the repository root)::

    docs/screenshots/classroom.sh            # or: .venv/bin/python docs/screenshots/classroom.py [OUT_DIR]

For each screen size (1280×720, a projector; 1920×1080) and theme (light, dark) it starts a
virtual X server of that size, and for each picture launches the real window —
``python -m cnnviz.cli gui SCENE.json`` with ``CNNVIZ_CONFIG_DIR`` pointing to a fresh
temporary folder whose settings hold the theme — fills the screen with it (``xdotool``),
waits until the screen stops changing and grabs the whole screen (``import -window root``).

The states are *scenes* (``cnnviz.core.scenes``), the same files a teacher saves with File ▸
Save scene: opening a scene file from the command line is an ordinary feature of the app,
so no debug hook is needed. The deck editor picture opens a deck and presses Ctrl+Shift+D.

Needs: Xvfb, xdotool and ImageMagick's ``import`` (``apt-get install xvfb xdotool imagemagick``).
Writes ``classroom-{first-screen,presentation,kernel-7x7,full-colour}-{W}x{H}-{theme}.png`` (16),
``classroom-presentation-pool-1280x720-{theme}.png`` and ``classroom-deck-1280x720-{theme}.png``
into OUT_DIR (default ``docs/images``), about 2 minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SIZES = ((1280, 720), (1920, 1080))
THEMES = ("light", "dark")
DISPLAY_NUM = int(os.environ.get("CNNVIZ_SHOTS_DISPLAY", "77"))
WINDOW_NAME = "kernel playground"


def make_scenes(folder: Path) -> dict[str, Path]:
    """The pictures' states as scene files (pure core: no Qt)."""
    from cnnviz.core.kernels import Kernel, preset
    from cnnviz.core.scenes import Deck, Scene, save_scenes
    from cnnviz.core.settings import PlaygroundParams

    photo = {"kind": "sample", "name": "photo"}
    sobel = (preset("sobel-x").kernel,)
    default = PlaygroundParams().to_dict()
    bank = tuple(preset("oriented-bank").kernels)
    blur = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4
    red = Kernel(np.stack([blur, -blur / 2, -blur / 2]), name="red-selective")   # C_in × kH × kW
    scenes = {
        "first-screen": Scene(sobel, params=default, source=photo, view={"explained": ["conv", 0, 180, 200]},
                              title="Sobel x finds vertical edges"),
        "presentation": Scene(sobel, params=default, source=photo,
                              view={"presentation": True, "position": [180, 200]}, title="The sliding window"),
        "presentation-pool": Scene(sobel, params=PlaygroundParams(activation="relu", pool="max").to_dict(),
                                   source=photo, view={"presentation": True, "position": [64, 101], "stage": "pool"},
                                   title="Max pooling, window by window"),
        "kernel-7x7": Scene(bank, selected=2, params=default, source={"kind": "sample", "name": "pattern"},
                            view={"selection": 2, "explained": ["conv", 2, 209, 357]}, title="Oriented 7×7 filters"),
        "full-colour": Scene((red,), params=PlaygroundParams(channels="full", padding=(1, 1)).to_dict(),
                             source=photo, view={"explained": ["conv", 0, 380, 100]}, title="A red-selective filter"),
    }
    out = {}
    for name, s in scenes.items():
        out[name] = save_scenes(folder / f"{name}.json", s)
    deck = Deck([scenes["first-screen"],
                 Scene(sobel, params=PlaygroundParams(stride=(2, 2)).to_dict(), source=photo,
                       title="Stride 2 halves the map"),
                 Scene(sobel, params=PlaygroundParams(activation="relu", pool="max").to_dict(), source=photo,
                       title="ReLU, then max pooling"),
                 scenes["kernel-7x7"], scenes["full-colour"]])
    out["deck"] = deck.save(folder / "lesson.json")
    return out


def write_settings(config: Path, theme: str) -> None:
    from cnnviz.core.settings import Settings, save_settings

    config.mkdir(parents=True, exist_ok=True)
    save_settings(Settings(theme=theme), config / "settings.json")


def run(cmd: list[str], env: dict, check: bool = True) -> str:
    return subprocess.run(cmd, env=env, check=check, capture_output=True, text=True).stdout.strip()


def wait_for(predicate, seconds: float, what: str):  # noqa: ANN001, ANN201
    t = time.monotonic()
    while time.monotonic() - t < seconds:
        got = predicate()
        if got:
            return got
        time.sleep(0.2)
    raise SystemExit(f"classroom screenshots: timed out waiting for {what}")


def screen(env: dict):  # noqa: ANN201
    import numpy as np

    raw = subprocess.run(["import", "-window", "root", "-depth", "8", "gray:-"], env=env, check=True,
                         capture_output=True).stdout
    return np.frombuffer(raw, np.uint8)


def settle(env: dict, quiet_for: float = 1.5, seconds: float = 40.0) -> None:
    """Wait until the screen has not changed for ``quiet_for`` seconds (a blinking text caret,
    under 0.1 % of the pixels, does not count as a change)."""
    last, since, t0 = None, time.monotonic(), time.monotonic()
    while time.monotonic() - t0 < seconds:
        now = screen(env)
        if last is None or now.shape != last.shape or np.count_nonzero(now != last) > 0.001 * now.size:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_for:
            return
        time.sleep(0.3)


def shoot(scene: Path, out: Path, size: tuple[int, int], theme: str, env: dict, tmp: Path,
          keys: list[str] | None = None, grab: str | None = None) -> Path:
    """Launch the app on ``scene``, fill the screen, press ``keys``, then grab the screen (or
    only the window titled ``grab``)."""
    W, H = size
    config = Path(tempfile.mkdtemp(prefix="config-", dir=tmp))
    write_settings(config, theme)
    app_env = dict(env, CNNVIZ_CONFIG_DIR=str(config), QT_QPA_PLATFORM="xcb", PYTHONPATH=str(ROOT))
    app_env.pop("QT_SCALE_FACTOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "cnnviz.cli", "gui", str(scene)], env=app_env, cwd=str(ROOT),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def find():
            if proc.poll() is not None:
                raise SystemExit(f"classroom screenshots: the app exited: {proc.stderr.read()[-2000:]}")
            ids = run(["xdotool", "search", "--onlyvisible", "--name", WINDOW_NAME], env, check=False).split()
            return ids[0] if ids else None

        wid = wait_for(find, 90, "the window")
        run(["xdotool", "windowmove", wid, "0", "0"], env)
        run(["xdotool", "windowsize", wid, str(W), str(H)], env)
        run(["xdotool", "windowfocus", "--sync", wid], env, check=False)
        settle(env)
        for k in keys or []:
            run(["xdotool", "key", "--clearmodifiers", k], env)
            settle(env)
        target = "root"
        if grab is not None:
            target = wait_for(lambda: (run(["xdotool", "search", "--onlyvisible", "--name", grab], env,
                                           check=False).split() or [None])[0], 20, grab)
        run(["import", "-window", target, str(out)], env)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return out


def main(out_dir: Path) -> list[Path]:
    for tool in ("Xvfb", "xdotool", "import"):
        if shutil.which(tool) is None:
            raise SystemExit(f"classroom screenshots: {tool} is not installed — apt-get install xvfb xdotool imagemagick")
    out_dir.mkdir(parents=True, exist_ok=True)
    made = []
    with tempfile.TemporaryDirectory(prefix="cnnviz-shots-") as t:
        tmp = Path(t)
        scenes = make_scenes(tmp)
        for W, H in SIZES:
            display = f":{DISPLAY_NUM}"
            xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", f"{W}x{H}x24", "-nolisten", "tcp",
                                     "-noreset"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            env = dict(os.environ, DISPLAY=display)
            try:
                wait_for(lambda: run(["xdotool", "getdisplaygeometry"], env, check=False) == f"{W} {H}", 20, "Xvfb")
                for theme in THEMES:
                    for name in ("first-screen", "presentation", "kernel-7x7", "full-colour"):
                        p = shoot(scenes[name], out_dir / f"classroom-{name}-{W}x{H}-{theme}.png", (W, H), theme,
                                  env, tmp)
                        print(p, flush=True)
                        made.append(p)
                    if (W, H) == SIZES[0]:
                        p = shoot(scenes["presentation-pool"], out_dir / f"classroom-presentation-pool-{W}x{H}-{theme}.png",
                                  (W, H), theme, env, tmp)
                        print(p, flush=True)
                        made.append(p)
                        p = shoot(scenes["deck"], out_dir / f"classroom-deck-{W}x{H}-{theme}.png", (W, H), theme,
                                  env, tmp, keys=["ctrl+shift+d", "Tab", "Tab", "Down", "Down"],
                                  grab="Deck of scenes")
                        print(p, flush=True)
                        made.append(p)
            finally:
                xvfb.terminate()
                xvfb.wait(10)
    return made


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "images")
