"""Load trained PyTorch models in the forms people save them, without running untrusted code.

Formats (detected from the file's bytes, never its extension):

==============  ==========================================  ==============================
format          how it was saved                            loaded with
==============  ==========================================  ==============================
state_dict      ``torch.save(model.state_dict())`` or a     ``torch.load(weights_only=True)``
                checkpoint dict ``{"state_dict": …}``
safetensors     ``safetensors.torch.save_file``             ``safetensors`` (header checked
                                                            first)
torchscript     ``torch.jit.save``                          ``torch.jit.load`` — needs trust
export          ``torch.export.save`` (``.pt2``)            ``torch.export.load`` — needs trust
pickle          ``torch.save(model)`` / ``pickle.dump``     the unrestricted ``torch.load``
                                                            — needs trust
python          a ``.py`` file named as ``net.py:Net``      imported — needs trust
==============  ==========================================  ==============================

Security
--------
TorchScript archives, ``torch.export`` programs, pickles and Python files are programs: loading
them can run code the file's author chose. Nothing from such a file runs unless the caller
passes ``trust=True`` or the file's SHA-256 is in the :class:`~cnnviz.core.trust.TrustStore`
given; otherwise :class:`~cnnviz.core.errors.TrustRequired` is raised before the file is
opened by any loader. Every loader that can run code from a file is reached through
:func:`_unsafe_load_trusted` and nowhere else. Weights files are loaded with
``torch.load(weights_only=True)`` or safetensors; when weights-only loading refuses a file,
that is reported and nothing falls back to the unrestricted loader (an attacker can make the
safe loader fail at will). Besides torch's own allowlist, weights-only loading accepts numpy's
arrays, scalars and dtypes (checkpoints often hold ``np.float64`` accuracies); the items of an
object array still need allowed globals, so a payload hidden in one is refused.

Format detection reads the pickle opcodes without executing them, to tell a plain state_dict
from a pickled object. Detection is only a routing decision, never the safety boundary: a
file classified ``state_dict`` is still loaded weights-only.

A ``.py`` model is trusted "by the act of choosing code": the CLI passes ``trust=True`` when
the user names ``file.py:Class`` on the command line (they asked for that file to be run),
while anything that loads specs it did not just get from the user — a settings file, a
recent-files list — must go through the trust store like any other code-bearing file.

Modules
-------
``preprocessing``  :class:`Preprocessing`, the image -> input tensor transform
``loaded``         :class:`LoadedModel`; :func:`input_channels` of the first convolution a model runs
``detect``         format sniffing from the bytes (pickle opcodes scanned, nothing run)
``trust_gate``     the trust gate and the one loader that runs code from a file
``weights``        state_dict / checkpoint / safetensors loading (weights-only), ``apply_state_dict``
``zoo``            torchvision architectures by name, pretrained weights
``python_file``    ``file.py:Class`` models
``labels``         class-name files
``load``           :func:`load_model`, :func:`move_model`, :func:`resolve_device`
"""

from __future__ import annotations

from cnnviz.core.devices import available_devices
from cnnviz.core.models.detect import FORMATS, detect_format
from cnnviz.core.models.labels import load_labels
from cnnviz.core.models.load import load_model, move_model, resolve_device
from cnnviz.core.models.loaded import LoadedModel, input_channels
from cnnviz.core.models.preprocessing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MAX_INPUT_PIXELS,
    MAX_INPUT_SIDE,
    Preprocessing,
    default_preprocessing,
)
from cnnviz.core.models.trust_gate import FORMATS_NEEDING_TRUST
from cnnviz.core.models.weights import apply_state_dict, load_state_dict_file
from cnnviz.core.models.zoo import torchvision_model_names

__all__ = [
    "FORMATS",
    "FORMATS_NEEDING_TRUST",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MAX_INPUT_PIXELS",
    "MAX_INPUT_SIDE",
    "LoadedModel",
    "Preprocessing",
    "apply_state_dict",
    "available_devices",
    "default_preprocessing",
    "input_channels",
    "detect_format",
    "load_labels",
    "load_model",
    "load_state_dict_file",
    "move_model",
    "resolve_device",
    "torchvision_model_names",
]

# The private name it had in models.py (feature visualization imports it): use input_channels.
_input_channels = input_channels
