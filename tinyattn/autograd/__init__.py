"""The engine: Tensor, Function/Context, the op registry and gradcheck."""
from .function import Context, Function, enable_grad, is_grad_enabled, no_grad
from .gradcheck import GradcheckError, gradcheck
from .registry import register, registered_ops
from .tensor import Tensor, get_default_dtype, set_default_dtype, sum_to_shape

__all__ = ["Context", "Function", "GradcheckError", "Tensor", "enable_grad", "get_default_dtype",
           "gradcheck", "is_grad_enabled", "no_grad", "register", "registered_ops",
           "set_default_dtype", "sum_to_shape"]
