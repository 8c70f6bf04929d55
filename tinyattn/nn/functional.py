"""``import tinyattn.nn.functional as F``: the same module as ``tinyattn.functional`` (one source
of truth; PyTorch's spelling). Registering it under this name makes the import give that module."""
import sys

from .. import functional as _functional

sys.modules[__name__] = _functional
