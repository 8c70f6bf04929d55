"""Embedding: a lookup table of vectors, one row per token id (PyTorch's layout and init)."""
from __future__ import annotations

from .. import functional as F
from ..autograd.function import no_grad
from ..autograd.registry import register_op
from ..autograd.tensor import unwrap
from . import init
from .module import Module, Parameter, check_sizes, empty_parameter


@register_op("nn.Embedding")
class Embedding(Module):
    """indices (any shape, integers; a Tensor or NumPy array) -> (*indices.shape, embedding_dim).

    weight: (num_embeddings, embedding_dim), initialised N(0, 1) as in PyTorch. With
    ``padding_idx`` that row starts at zero and never receives a gradient, so it stays zero.
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None,
                 norm_type=2.0, scale_grad_by_freq=False, sparse=False, _weight=None, _freeze=False,
                 device=None, dtype=None):
        super().__init__()
        if max_norm is not None or scale_grad_by_freq or sparse:
            raise NotImplementedError("Embedding: max_norm, scale_grad_by_freq and sparse are not "
                                      "implemented; leave them at their defaults.")
        check_sizes("Embedding", num_embeddings=num_embeddings, embedding_dim=embedding_dim)
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.padding_idx = _normalise_padding_idx(padding_idx, self.num_embeddings)
        if _weight is None:
            self.weight = empty_parameter((self.num_embeddings, self.embedding_dim), dtype, device)
            self.reset_parameters()
        else:
            w = unwrap(_weight)
            if tuple(w.shape) != (self.num_embeddings, self.embedding_dim):
                raise ValueError(f"Embedding: _weight has shape {tuple(w.shape)}, expected "
                                 f"({self.num_embeddings}, {self.embedding_dim}).")
            self.weight = Parameter(w.copy(), requires_grad=not _freeze)

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight.array[self.padding_idx] = 0

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None):
        """An Embedding whose weight is a copy of ``embeddings`` (num_embeddings, embedding_dim)."""
        rows, dim = embeddings.shape
        return cls(rows, dim, padding_idx=padding_idx, _weight=embeddings, _freeze=freeze)

    def forward(self, input):
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")


def _normalise_padding_idx(padding_idx, num_embeddings):
    """PyTorch accepts -num_embeddings <= padding_idx < num_embeddings; negative counts from the end."""
    if padding_idx is None:
        return None
    padding_idx = int(padding_idx)
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(f"Embedding: padding_idx={padding_idx} must be within "
                         f"[-{num_embeddings}, {num_embeddings - 1}] (num_embeddings="
                         f"{num_embeddings}).")
    return padding_idx % num_embeddings
