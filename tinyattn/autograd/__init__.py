"""The engine: Tensor, Function/Context, grad mode, the op registry and gradcheck.

Import order, one direction only: ``grad_mode`` and ``anomaly`` (depend on nothing here) <-
``tensor`` (Tensor, as_array, unwrap) <- ``function`` (Function.apply wraps results in Tensors) <-
the ops in ``tinyattn/ops``. Tensor's methods reach the ops as ``tinyattn.ops.<name>`` when they are
called, so ``tensor.py`` never imports them.
"""
from .anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled, set_detect_anomaly
from .function import Context, Function
from .grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad
from .gradcheck import GradcheckError, gradcheck
from .registry import register_op, registered_ops
from .tensor import Tensor, get_default_dtype, set_default_dtype, sum_to_shape
from .explicit_grad import grad  # noqa: E402 - after tensor, which it walks

__all__ = ["AnomalyError", "Context", "Function", "GradcheckError", "Tensor", "detect_anomaly",
           "enable_grad", "get_default_dtype", "grad", "gradcheck", "inference_mode", "is_anomaly_enabled", "is_grad_enabled",
           "no_grad", "register_op", "registered_ops", "set_default_dtype", "set_detect_anomaly",
           "sum_to_shape"]
