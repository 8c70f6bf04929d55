"""Solutions to the exercises of the Vision Transformer lesson (attention over images)."""
import _setup  # noqa: F401  (the repository root on the path)

import numpy as np

import tinyattn as ta
import tinyattn.nn as nn

SIZE, WIDTH = 16, 32


def to_patches(images, patch):
    """(n, SIZE, SIZE) -> (n, patches, patch·patch), row by row over the patch grid (with tinyattn ops)."""
    n, grid = images.shape[0], SIZE // patch
    x = ta.reshape(ta.tensor(images), (n, grid, patch, grid, patch))
    return ta.reshape(ta.permute(x, (0, 1, 3, 2, 4)), (n, grid * grid, patch * patch))


def exercise_1():
    """Patches of 2 x 2 (and 8 x 8) instead of 4 x 4: tokens per image, and the patch embedding's parameters."""
    images = np.random.default_rng(0).normal(size=(1, SIZE, SIZE))
    out = {}
    for patch in (2, 4, 8):
        patches = to_patches(images, patch)
        embed = nn.Linear(patch * patch, WIDTH)
        out[patch] = {"tokens_with_cls": patches.shape[1] + 1, "pixels_per_patch": patches.shape[2],
                      "patch_embed_parameters": embed.num_parameters()}
    return out


class TinyViT(nn.Module):
    """The lesson's model (one pre-norm layer, [CLS] read out), with the position embedding optional."""

    def __init__(self, use_positions, patch=4):
        super().__init__()
        self.use_positions, self.patch = use_positions, patch
        n_patches = (SIZE // patch) ** 2
        self.patch_embed = nn.Linear(patch * patch, WIDTH, dtype="float64")
        self.cls_token = nn.Parameter(ta.randn(1, 1, WIDTH, dtype="float64") * 0.02)
        self.position = nn.LearnedPositionalEmbedding(n_patches + 1, WIDTH, batch_first=True, dtype="float64")
        layer = nn.TransformerEncoderLayer(WIDTH, 2, dim_feedforward=2 * WIDTH, dropout=0.0, batch_first=True,
                                           norm_first=True, dtype="float64")
        self.encoder = nn.TransformerEncoder(layer, 1, norm=nn.LayerNorm(WIDTH, dtype="float64"))

    def cls_output(self, patches):
        x = self.patch_embed(patches)
        x = ta.concatenate([ta.broadcast_to(self.cls_token, (x.shape[0], 1, WIDTH)), x], axis=1)
        if self.use_positions:
            x = self.position(x)
        with ta.no_grad():
            return self.encoder(x)[:, 0].numpy()


def exercise_2():
    """Shuffle the 16 patches of an image: how much does [CLS]'s output move, without and with positions?"""
    images = np.random.default_rng(1).normal(size=(2, SIZE, SIZE))
    patches = to_patches(images, 4).numpy()
    perm = np.random.default_rng(2).permutation(16)
    out = {}
    for use_positions in (False, True):
        ta.manual_seed(0)
        model = TinyViT(use_positions).eval()
        a = model.cls_output(ta.tensor(patches, dtype="float64"))
        b = model.cls_output(ta.tensor(patches[:, perm], dtype="float64"))
        out["with positions" if use_positions else "without positions"] = float(np.abs(a - b).max())
    return out


if __name__ == "__main__":
    _setup.main(globals())
