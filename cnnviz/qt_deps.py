"""Check, before Qt starts, that a window can open — and say how to fix it if not.

Qt's xcb platform plugin aborts with a cryptic "could not load the Qt platform plugin"
when system libraries are missing. This module finds that out first (without importing
Qt) and returns a message with the exact install command.
"""

from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
import sys

# Debian/Ubuntu package → a shared library it provides (what Qt 6's xcb plugin loads).
XCB_PACKAGES = {
    "libxcb-cursor0": "libxcb-cursor.so.0",
    "libxcb-icccm4": "libxcb-icccm.so.4",
    "libxcb-keysyms1": "libxcb-keysyms.so.1",
    "libxcb-image0": "libxcb-image.so.0",
    "libxcb-render-util0": "libxcb-render-util.so.0",
    "libxcb-xkb1": "libxcb-xkb.so.1",
    "libxkbcommon-x11-0": "libxkbcommon-x11.so.0",
    "libxcb-shape0": "libxcb-shape.so.0",
}


def _have_library(soname: str) -> bool:
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=5).stdout
        if soname in out:
            return True
    except (OSError, subprocess.SubprocessError):
        pass
    stem = soname.split(".so")[0].removeprefix("lib")
    return ctypes.util.find_library(stem) is not None


def missing_xcb_packages() -> list[str]:
    if not sys.platform.startswith("linux"):
        return []
    return [pkg for pkg, so in XCB_PACKAGES.items() if not _have_library(so)]


def install_command(packages: list[str]) -> str:
    if shutil.which("apt-get"):
        return "sudo apt-get install -y " + " ".join(packages)
    if shutil.which("dnf"):
        return "sudo dnf install -y xcb-util-cursor xcb-util-wm xcb-util-keysyms xcb-util-image xcb-util-renderutil libxkbcommon-x11"
    if shutil.which("pacman"):
        return "sudo pacman -S xcb-util-cursor xcb-util-wm xcb-util-keysyms xcb-util-image xcb-util-renderutil libxkbcommon-x11"
    return "install these with your package manager: " + " ".join(packages)


def check_gui_environment() -> str | None:
    """None when a window can open, else one message with the cause and the fix."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform.startswith(("offscreen", "minimal", "vnc")) or not sys.platform.startswith("linux"):
        return None
    if platform.startswith("wayland") or (not platform and os.environ.get("WAYLAND_DISPLAY") and not os.environ.get("DISPLAY")):
        return None
    if not os.environ.get("DISPLAY"):
        return ("no display found (DISPLAY is not set): run cnnviz on a desktop, or use "
                "QT_QPA_PLATFORM=offscreen for headless use, or 'cnnviz convolve/inspect' on the command line")
    missing = missing_xcb_packages()
    if missing:
        return ("Qt's X11 (xcb) plugin needs system libraries that are missing: " + ", ".join(missing)
                + ". Install them with: " + install_command(missing))
    return None


if __name__ == "__main__":  # used by `make run`
    msg = check_gui_environment()
    if msg:
        print(msg, file=sys.stderr)
        sys.exit(1)
