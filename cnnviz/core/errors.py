"""Errors that the user sees.

Every error raised for bad input is a :class:`CnnvizError`: its message names the cause
and, where there is one, the fix. The CLI prints it as one line (exit code 2) and the
window shows it in the status bar or a dialog; neither shows a traceback for these.
"""

from __future__ import annotations


class CnnvizError(ValueError):
    """Bad input the user can fix. ``str(err)`` is the whole message.

    Parameters
    ----------
    cause:
        What is wrong, e.g. ``"kernel row 2 has 2 values, row 1 has 3"``.
    fix:
        What to do about it, e.g. ``"give every row the same number of values"``.
    """

    def __init__(self, cause: str, fix: str | None = None):
        self.cause = cause
        self.fix = fix
        super().__init__(cause if not fix else f"{cause}; {fix}")


class KernelError(CnnvizError):
    """A kernel (literal, file or preset) that cannot be used."""


class SpecError(CnnvizError):
    """A convolution / activation / pooling setting that cannot work."""


class ImageLoadError(CnnvizError):
    """An image file that cannot be read safely."""


class ModelLoadError(CnnvizError):
    """A model or weights file that cannot be loaded."""


class TrustRequired(ModelLoadError):
    """The file can run code when loaded and the user has not said they trust it."""


class SourceError(CnnvizError):
    """A camera or video source that cannot be opened or has stopped."""


class SettingsError(CnnvizError):
    """A settings or user-data file that is corrupt or unreadable."""


def a_noun(noun: str) -> str:
    """``noun`` with its indefinite article: "an int", "a dict", "an OrderedDict"."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"
