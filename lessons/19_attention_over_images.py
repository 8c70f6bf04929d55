"""Lesson 19 - attention over images: a tiny Vision Transformer.

Attention works on anything that can be cut into a sequence of vectors. A Vision Transformer (ViT)
cuts an image into square patches, flattens each patch into a vector, maps it to the model width,
adds a learned position embedding (attention is blind to order, lesson 11, and here "order" is
where a patch sits in the image), prepends one extra learned token [CLS], and runs a Transformer
encoder. The classifier reads only the [CLS] token's output, so [CLS] must *attend* to the patches
that matter - and its attention weights, drawn over the image, show where it looked.

Task: synthetic 16 x 16 grey images of noise with a bright 3 x 3 square and an equally bright
"plus" distractor; the label is the quadrant the square is in (4 classes). Patches are 4 x 4, so an
image is a sequence of 16 patches. (Lesson 20 turns the same encoder layers into a decoder-only
model.)

The source articles cited as doc 000 .. doc 004 are described in docs/sources.md.
Reproduces: doc 003 §6 (attention over image regions).
Criterion: >= 95% accuracy on 500 test images, and [CLS]'s attention visibly points at the
object: the square's patch gets on average >= 5x the uniform share (1/16) of [CLS]'s attention
to the patches, and is the most-attended patch in >= 75% of the test images.
"""
# %%
from _common import Lesson, Progress

import numpy as np

import tinyattn as ta
import tinyattn.functional as F
import tinyattn.nn as nn
from tinyattn import optim, viz

lesson = Lesson(19, "attention over images: a tiny Vision Transformer")
rng = lesson.rng
SIZE, PATCH, SQUARE = 16, 4, 3
GRID = SIZE // PATCH                                   # 4 x 4 patches
N_PATCHES = GRID * GRID

# %% [markdown]
# ## 1. The data: where is the bright square?
# Background: Gaussian noise (σ = 0.3). Two bright objects, each inside one 4 x 4 patch (at a random
# offset) and never in the same patch: a filled 3 x 3 square, and a "plus" of 5 pixels that is just
# as bright in total (each pixel 9/5 as bright). The label is the quadrant of the *square*:
# 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right. Counting brightness per quadrant cannot
# solve this (both objects are equally bright); the model has to find the square - which is what
# attention is for.


# %%
SQUARE_LEVEL = 1.2
PLUS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=float)


def make_images(generator, n):
    images = generator.normal(0.0, 0.3, size=(n, SIZE, SIZE))
    square_patch = generator.integers(0, N_PATCHES, n)
    plus_patch = (square_patch + generator.integers(1, N_PATCHES, n)) % N_PATCHES   # a different patch
    for i in range(n):
        for patch, stamp in ((square_patch[i], np.full((SQUARE, SQUARE), SQUARE_LEVEL)),
                             (plus_patch[i], PLUS * SQUARE_LEVEL * 9 / 5)):
            top = (patch // GRID) * PATCH + generator.integers(0, PATCH - SQUARE + 1)
            left = (patch % GRID) * PATCH + generator.integers(0, PATCH - SQUARE + 1)
            images[i, top:top + SQUARE, left:left + SQUARE] += stamp
    row, col = square_patch // GRID, square_patch % GRID
    labels = 2 * (row >= GRID // 2) + (col >= GRID // 2)
    return images, labels, square_patch, plus_patch


lesson.section("1. the data: where is the bright square?")
train_images, train_labels, _, _ = make_images(rng, 3000)
test_images, test_labels, test_square, test_plus = make_images(np.random.default_rng(7_000 + lesson.seed), 500)
print(f"train {train_images.shape}, test {test_images.shape}; classes {np.bincount(test_labels).tolist()} (test)")

# %% [markdown]
# ## 2. Images to sequences of patches
# (n, 16, 16) -> (n, 4, 4, 4, 4) [patch row, row in patch, patch column, column in patch]
# -> (n, 16 patches, 16 pixels). Patch k is at grid row k // 4, column k % 4.


# %%
def to_patches(images):
    n = len(images)
    return images.reshape(n, GRID, PATCH, GRID, PATCH).transpose(0, 1, 3, 2, 4).reshape(n, N_PATCHES, PATCH * PATCH)


lesson.section("2. images to sequences of patches")
check = to_patches(test_images[:1])[0, GRID + 2].reshape(PATCH, PATCH)       # patch at grid (1, 2)
print("patch (1, 2) equals image rows 4-7, columns 8-11:", bool(np.array_equal(check, test_images[0, 4:8, 8:12])))

# %% [markdown]
# ## 3. The model
#     tokens = [CLS ; patches W_patchᵀ] + position embeddings       (17 tokens of width 32)
#     1 pre-norm encoder layer (2 heads) -> LayerNorm -> Linear on the [CLS] token -> 4 logits
# One layer keeps the picture honest: [CLS] gathers everything it knows in that one attention step,
# so its weights show exactly what it used. (With 2 layers the first can already move information
# between patches, and the second layer's map is harder to read.)


# %%
class TinyViT(nn.Module):
    def __init__(self, width=32, heads=2, layers=1, classes=4):
        super().__init__()
        self.patch_embed = nn.Linear(PATCH * PATCH, width)
        self.cls_token = nn.Parameter(ta.randn(1, 1, width).numpy() * 0.02)
        self.position = nn.LearnedPositionalEmbedding(N_PATCHES + 1, width, batch_first=True)
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=2 * width, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(width))
        self.head = nn.Linear(width, classes)

    def tokens(self, patches):
        x = self.patch_embed(ta.tensor(patches.astype(np.float32)))             # (n, 16, width)
        cls = ta.broadcast_to(self.cls_token, (x.shape[0], 1, x.shape[2]))
        return self.position(ta.concatenate([cls, x], axis=1))                 # (n, 17, width)

    def forward(self, patches):
        return self.head(self.encoder(self.tokens(patches))[:, 0])             # read [CLS] only

    def cls_attention(self, patches):
        """[CLS]'s attention over the 16 patches in each layer, mean of heads: (layers, n, 16)."""
        maps = []
        x = self.tokens(patches)
        for layer in self.encoder.layers:
            h = layer.norm1(x)                                                  # pre-norm: attention reads norm1(x)
            _, w = layer.self_attn(h, h, h, need_weights=True)                 # (n, 17, 17)
            maps.append(w.numpy()[:, 0, 1:])                                    # query [CLS], keys = patches
            x = layer(x)
        return np.stack(maps)


lesson.section("3. the model")
ta.manual_seed(lesson.seed)
model = TinyViT()
print(f"parameters: {model.num_parameters():,}")

# %% [markdown]
# ## 4. Training

# %%
lesson.section("4. training")


def accuracy(images, labels):
    model.eval()
    with ta.no_grad():
        predicted = model(to_patches(images)).numpy().argmax(-1)
    model.train()
    return float((predicted == labels).mean())


steps, batch = 500, 64
opt = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
schedule = optim.LambdaLR(opt, lambda t: min(1.0, (t + 1) / 40) * max(0.05, 1 - t / steps))  # warm-up, linear decay
progress = Progress(steps, every=50)
train_patches = to_patches(train_images)
for step in range(1, steps + 1):
    idx = rng.integers(0, len(train_images), batch)
    loss = F.cross_entropy(model(train_patches[idx]), ta.tensor(train_labels[idx]))
    opt.zero_grad()
    loss.backward()
    opt.step()
    schedule.step()
    if step % 50 == 0 or step == steps:
        progress(step, float(loss.numpy()), accuracy(test_images[:200], test_labels[:200]))
test_accuracy = accuracy(test_images, test_labels)
print(f"test accuracy on {len(test_images)} images: {test_accuracy:.2%} (chance 25%)")

# %% [markdown]
# ## 5. Where does [CLS] look?
# [CLS] attends to the 16 patches and to itself. For every test image we take the attention it
# gives to the patches (last layer, mean of heads) and ask what share lands on the square's patch,
# and on the distractor's. Uniform attention would give 1/16 to each.

# %%
lesson.section("5. where does [CLS] look? its attention over the patches")
model.eval()
with ta.no_grad():
    cls_maps = model.cls_attention(to_patches(test_images))                    # (layers, 500, 16)
model.train()
n_test = len(test_images)
on_patches = cls_maps[-1].sum(axis=1)                   # the rest [CLS] gives to itself
share = cls_maps[-1] / on_patches[:, None]              # how its attention to patches is divided
mass_on_object = share[np.arange(n_test), test_square]
mass_on_distractor = share[np.arange(n_test), test_plus]
print(f"[CLS] gives {on_patches.mean():.0%} of its attention to the patches (the rest to itself); of that, "
      f"{mass_on_object.mean():.0%} goes to the square's patch, {mass_on_distractor.mean():.0%} to the plus's "
      f"(uniform: 1/16 = {1 / 16:.0%} each)")
argmax_on_object = float(np.mean(cls_maps[-1].argmax(axis=1) == test_square))
print(f"the most-attended patch is the square's in {argmax_on_object:.1%} of test images")

# %%
import matplotlib.pyplot as plt  # noqa: E402

quadrant_names = ["top-left", "top-right", "bottom-left", "bottom-right"]
shown = [int(np.flatnonzero(test_labels == q)[0]) for q in range(4)] + [int(np.flatnonzero(test_labels == q)[1]) for q in range(4)]
fig, axes = plt.subplots(2, len(shown), figsize=(2.3 * len(shown), 5.2))
with ta.no_grad():
    model.eval()
    predictions = model(to_patches(test_images[shown])).numpy().argmax(-1)
    model.train()
for col, i in enumerate(shown):
    axes[0, col].imshow(test_images[i], cmap="gray")
    axes[0, col].set_title(f"label {quadrant_names[test_labels[i]]}\npredicted {quadrant_names[predictions[col]]}", fontsize=8)
    image = axes[1, col].imshow(np.kron(share[i].reshape(GRID, GRID), np.ones((PATCH, PATCH))),
                                cmap="magma", vmin=0, vmax=1)
    for patch, colour in ((test_square[i], "cyan"), (test_plus[i], "orange")):
        top, left = (patch // GRID) * PATCH, (patch % GRID) * PATCH
        axes[1, col].add_patch(plt.Rectangle((left - 0.5, top - 0.5), PATCH, PATCH, fill=False, ec=colour, lw=1.5))
    for ax in axes[:, col]:
        ax.set_xticks(np.arange(-0.5, SIZE, PATCH))
        ax.set_yticks(np.arange(-0.5, SIZE, PATCH))
        ax.set_xticklabels([])
        ax.set_yticklabels([])
        ax.grid(color="white", alpha=0.3, lw=0.5)
axes[0, 0].set_ylabel("input image\n(4 x 4 patch grid)")
axes[1, 0].set_ylabel("[CLS] attention\n(cyan: square, orange: plus)")
fig.colorbar(image, ax=axes[1].tolist(), fraction=0.02, label="share of [CLS]'s attention to patches")
fig.suptitle(f"tiny ViT, test accuracy {test_accuracy:.1%}: how [CLS] divides its attention among the 16 patches (mean of 2 heads)")
lesson.savefig(fig, "cls_attention_over_patches")

# %% [markdown]
# ## Explore the ViT's attention yourself
# [CLS]'s attention over the 4 x 4 patches of the eight test images shown in section 5, per layer and
# head (not their mean). Hover an image's [CLS] and the grid shows where it looks; the label says
# where that image's square (■) and plus (+) are.

# %%
model.eval()
with ta.no_grad():     # cls_attention's steps, keeping each head: (heads, images, patches) per layer
    x, per_layer = model.tokens(to_patches(test_images[shown])), []
    for layer in model.encoder.layers:
        h = layer.norm1(x)
        _, w = layer.self_attn(h, h, h, need_weights=True, average_attn_weights=False)
        per_layer.append(w.numpy()[:, :, 0, 1:].transpose(1, 0, 2))
        x = layer(x)
model.train()
cell = lambda p: f"r{p // GRID}c{p % GRID}"  # noqa: E731 - row and column of patch p
lesson.attention_explorer("vit_cls_attention",
                          [f"img {i}: ■ {cell(test_square[i])}, + {cell(test_plus[i])}" for i in shown],
                          [cell(p) for p in range(GRID * GRID)], per_layer, grid=(GRID, GRID),
                          layer_names=[f"layer {i + 1}" for i in range(len(per_layer))],
                          title="tiny ViT: where [CLS] looks among the 16 patches (weights on the patches)")

# %%
lesson.section("criterion")
lesson.record(test_accuracy=test_accuracy, mean_attention_on_object=float(mass_on_object.mean()),
              cls_attention_to_patches=float(on_patches.mean()),
              mean_attention_on_distractor=float(mass_on_distractor.mean()), uniform_share=1 / 16,
              argmax_on_object=argmax_on_object, n_test=n_test)
lesson.check("test accuracy >= 95%", test_accuracy >= 0.95, f"{test_accuracy:.2%} of {len(test_images)}")
lesson.check("[CLS] attention points at the square",
             mass_on_object.mean() >= 5 / 16 and argmax_on_object >= 0.75,
             f"{mass_on_object.mean():.0%} on the square's patch ({16 * mass_on_object.mean():.1f}x uniform), "
             f"{mass_on_distractor.mean():.0%} on the plus's; top patch is the square's in {argmax_on_object:.0%} of images")
lesson.finish()

# %% [markdown]
# ## Exercises
# Predict first, then change the code and check. Answers: `lessons/solutions/attention_over_images.py`
# (no training needed).
# 1. Cut the 16 x 16 images into 2 x 2 patches instead of 4 x 4 (and then 8 x 8). How many tokens
#    does the encoder see, [CLS] included, how many pixels does each patch vector hold, and how many
#    parameters does the patch embedding (to width 32) have? How does the attention matrix grow?
# 2. Shuffle the 16 patches of an image and compare [CLS]'s output before and after, once without
#    the position embedding and once with it. Predict both differences. Could a ViT without
#    position embeddings tell the top-left quadrant from the bottom-right one?
#
