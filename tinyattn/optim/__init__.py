"""Optimisers, learning-rate schedules and gradient clipping, as torch.optim names them."""
from . import lr_scheduler
from .adam import Adam
from .adamw import AdamW
from .clip import clip_grad_norm_, clip_grad_value_
from .lr_scheduler import CosineAnnealingLR, LambdaLR, LRScheduler, NoamLR, StepLR
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Adam", "AdamW", "CosineAnnealingLR", "LRScheduler", "LambdaLR", "NoamLR", "Optimizer",
           "SGD", "StepLR", "clip_grad_norm_", "clip_grad_value_", "lr_scheduler"]
