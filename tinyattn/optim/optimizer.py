"""Optimizer: the bookkeeping every optimiser shares (parameter groups, per-parameter state,
zero_grad, state_dict / load_state_dict), laid out as PyTorch lays it out.

A subclass only writes ``_update(p, grad, state, group)``: change ``p.array`` in place from the
gradient and the state it keeps for that parameter.

State dict format (the same structure as PyTorch's)::

    {"state": {0: {"step": 3, "exp_avg": array, ...}, 1: {...}},     # by parameter index
     "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), ..., "params": [0, 1, 2]}]}

Parameters are numbered in the order they appear across groups; arrays are NumPy copies.
``tinyattn.save(opt.state_dict(), path)`` writes it to an .npz (each array under a name such as
``state/0/exp_avg``; numbers, tuples and the structure in a JSON entry), and ``tinyattn.load``
gives the same dict back, ready for ``load_state_dict``.
"""
from __future__ import annotations

import copy
import math
import numbers

from .. import backend
from ..autograd.function import no_grad
from ..autograd.tensor import Tensor
from .grads import grad_array, zero_grads


class Optimizer:
    """Base class. ``params``: an iterable of Parameters, or of dicts {"params": [...], **options}
    to give groups their own options (e.g. no weight decay for biases)."""

    # hyperparameter -> (lowest value, first value too high or None): checked in every group (at
    # construction, add_param_group and load_state_dict). A NaN or infinite lr or eps would not
    # fail: it would write NaN into every parameter at the first step.
    hyperparameters: dict = {}

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}           # Parameter -> dict of its state (as PyTorch: opt.state[p])
        if isinstance(params, Tensor) or hasattr(params, "state_dict"):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of parameters, "
                            f"got a {type(params).__name__}. Pass model.parameters() (or "
                            f"[tensor] for a single tensor).")
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list. Pass "
                             f"model.parameters() (did the model register its layers as attributes?).")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group):
        group = dict(group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for p in group["params"]:
            if not isinstance(p, Tensor) or not p.is_leaf:
                raise TypeError(f"{type(self).__name__}: can only optimise leaf tensors "
                                f"(Parameters), got {type(p).__name__}.")
            if id(p) in seen:
                raise ValueError(f"{type(self).__name__}: a parameter of shape {p.shape} appears "
                                 f"in more than one group.")
            seen.add(id(p))
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self._check_hyperparameters(group)
        self.param_groups.append(group)

    def _check_hyperparameters(self, group):
        """Every hyperparameter of ``group`` a finite real number in its range (see
        ``hyperparameters``); a pair such as Adam's betas, each of its numbers."""
        for key, (low, high) in self.hyperparameters.items():
            if key not in group:
                continue
            value = group[key]
            if key == "betas":
                if not isinstance(value, (tuple, list)) or len(value) != 2:
                    raise TypeError(f"{type(self).__name__}: betas must be a pair of numbers "
                                    f"(beta1, beta2), e.g. (0.9, 0.999); got {value!r}.")
                group[key] = tuple(self._checked(f"betas[{i}]", v, low, high)
                                   for i, v in enumerate(value))
            else:
                group[key] = self._checked(key, value, low, high)

    def _checked(self, key, value, low, high):
        name = type(self).__name__
        if (backend.is_array(value) or isinstance(value, Tensor)) and value.ndim == 0:
            value = value.item()                # a number held in a 0-d tensor, as torch allows
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            hint = (f" (a number, not the string {value!r})" if isinstance(value, str) else "")
            raise TypeError(f"{name}: {key} must be a real number{hint}, got {value!r} of type "
                            f"{type(value).__name__}.")
        bound = f">= {low}" + ("" if high is None else f" and < {high}")
        if not math.isfinite(value) or value < low or (high is not None and value >= high):
            raise ValueError(f"{name}: {key} must be a finite number {bound}, got {value!r}.")
        return value

    def zero_grad(self, set_to_none=True):
        """Forget the gradients before the next backward (which would otherwise add to them)."""
        zero_grads(self._all_params(), set_to_none)

    def step(self):
        """One update of every parameter that has a gradient."""
        with no_grad():
            for g, group in enumerate(self.param_groups):
                for i, p in enumerate(group["params"]):
                    if p.grad is None:
                        continue
                    grad = grad_array(p)
                    if tuple(grad.shape) != tuple(p.shape):
                        self._wrong_gradient(p, i, g, f"shape {tuple(grad.shape)}")
                    if grad.dtype.kind != "f":
                        self._wrong_gradient(p, i, g, f"dtype {grad.dtype}")
                    state = self.state.setdefault(p, {})
                    self._update(p, grad, state, group)
                    p._version += 1        # the array changed: graphs that saved it are stale

    def _wrong_gradient(self, p, i, g, what):
        """A gradient that does not fit its parameter would be broadcast (or cast) onto it."""
        label = f"{p.name!r} " if p.name else ""
        raise ValueError(f"{type(self).__name__}.step: parameter {label}{i} of group {g} has shape "
                         f"{tuple(p.shape)} and dtype {p.dtype}, but its .grad has {what}; a "
                         f"gradient has its parameter's shape and floating dtype. Was .grad set by "
                         f"hand, or .data replaced after backward?")

    def _update(self, p, grad, state, group):  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ state dicts
    def _all_params(self):
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self):
        """{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]} - copies."""
        index = {id(p): i for i, p in enumerate(self._all_params())}
        state = {}
        for p in self._all_params():
            if p in self.state:
                state[index[id(p)]] = {k: (backend.to_numpy(v).copy() if backend.is_array(v)
                                           else copy.deepcopy(v))
                                       for k, v in self.state[p].items()}
        groups = []
        for g in self.param_groups:
            d = {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
            d["params"] = [index[id(p)] for p in g["params"]]
            groups.append(d)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and per-parameter state saved by ``state_dict`` (or read back by
        ``tinyattn.load``), so that training continues exactly where it stopped. The optimiser must
        have been built over the same parameters, in the same order and groups."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            keys = sorted(map(str, state_dict))[:4] if isinstance(state_dict, dict) else None
            got = (f"a dict with keys {keys}{' ...' if len(state_dict) > 4 else ''}"
                   if keys is not None else f"a {type(state_dict).__name__}")
            raise ValueError(f"{name}.load_state_dict: expected an optimiser's state dict (keys "
                             f"'state' and 'param_groups', from opt.state_dict()), got {got}. A "
                             f"model's state dict goes to model.load_state_dict.")
        saved_groups = state_dict["param_groups"]
        if not isinstance(saved_groups, (list, tuple)) or not all(
                isinstance(g, dict) and isinstance(g.get("params"), (list, tuple))
                for g in saved_groups):
            raise ValueError(f"{name}.load_state_dict: 'param_groups' must be a list of dicts, "
                             f"each with a 'params' list, as opt.state_dict() writes.")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the saved state has {len(saved_groups)} "
                             f"parameter groups, this optimiser has {len(self.param_groups)}.")
        for i, (sg, g) in enumerate(zip(saved_groups, self.param_groups)):
            if len(sg["params"]) != len(g["params"]):
                raise ValueError(f"{name}.load_state_dict: group {i} has {len(sg['params'])} "
                                 f"parameters in the saved state but {len(g['params'])} here; "
                                 f"build the optimiser over the same model.")
        by_index = {}
        for sg, g in zip(saved_groups, self.param_groups):
            for i, p in zip(sg["params"], g["params"]):
                by_index[int(i)] = p
        new_state = {}
        for i, s in state_dict["state"].items():
            p = by_index.get(int(i))
            if p is None:
                raise ValueError(f"{name}.load_state_dict: state for parameter {i}, which no "
                                 f"group lists.")
            entry = {}
            for k, v in s.items():
                if backend.is_array(v) and v.ndim > 0:
                    if tuple(v.shape) != tuple(p.shape):
                        raise ValueError(f"{name}.load_state_dict: state '{k}' of parameter {i} "
                                         f"has shape {tuple(v.shape)}, the parameter has "
                                         f"{tuple(p.shape)}.")
                    v = backend.to_backend(v.astype(p.dtype, copy=True),
                                           backend.device_backend(p.device))
                elif backend.is_array(v):
                    v = v.item()            # a 0-d array (e.g. from a PyTorch-style step)
                entry[k] = v
            new_state[p] = entry
        restored = []
        for sg, g in zip(saved_groups, self.param_groups):
            group = dict(g)
            group.update({k: copy.deepcopy(v) for k, v in sg.items() if k != "params"})
            self._check_hyperparameters(group)          # before anything changes
            restored.append(group)
        for g, group in zip(self.param_groups, restored):
            g.update(group)
        self.state = new_state

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines) + "\n)"
