"""The engine: Tensor, Function/Context, the op registry and gradcheck."""
from .anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled, set_detect_anomaly
from .function import Context, Function, enable_grad, is_grad_enabled, no_grad
from .gradcheck import GradcheckError, gradcheck
from .registry import register, registered_ops
from .tensor import Tensor, get_default_dtype, set_default_dtype, sum_to_shape

__all__ = ["AnomalyError", "Context", "Function", "GradcheckError", "Tensor", "detect_anomaly",
           "enable_grad", "get_default_dtype", "gradcheck", "is_anomaly_enabled", "is_grad_enabled",
           "no_grad", "register", "registered_ops", "set_default_dtype", "set_detect_anomaly",
           "sum_to_shape"]
