"""python -m tinyattn.bench_gpu: the benchmark's GPU column. One training step of the toy Transformer
(embeddings, nn.Transformer with 2 encoder + 2 decoder layers, linear head, cross-entropy, Adam) at
a GPU-sized configuration, on tinyattn+NumPy (CPU, Numba kernels), tinyattn+CuPy (GPU) and PyTorch
CUDA when present.

    python -m tinyattn.bench_gpu                     # batch 256, length 128, d_model 256, 8 heads
    python -m tinyattn.bench_gpu --skip numpy        # the CPU row at this size takes seconds a step
    python -m tinyattn.bench_gpu --batch 64 --length 64 --json gpu.json

Each time is the median of ``--steps`` steps after ``--warmup`` steps (the first compiles the CuPy
kernels and fills the memory pool), with the device synchronised after every step, so a time is
the whole step, not its launch. Without a GPU it prints "skipped: no GPU" and exits 0.

From bench.py: ``from tinyattn import bench_gpu; rows = bench_gpu.run()`` returns one dict per
backend ({"backend", "ms_per_step", "steps", "note"}); ``bench_gpu.table(rows)`` formats them.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

GPU_CONFIG = dict(batch=256, length=128, d_model=256, nhead=8, vocab=1000)


def _cupy_reason():
    """None if CuPy can be used, else why not."""
    from . import backend  # noqa: PLC0415

    try:
        backend._import_cupy()
        return None
    except backend.BackendError as exc:
        return str(exc).split(". ")[0]


def _torch_cuda():
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        return None, "PyTorch is not installed"
    if not torch.cuda.is_available():
        return None, "PyTorch sees no CUDA device"
    return torch, None


def _data(batch, length, vocab, seed=0):
    import numpy as np  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    return (rng.integers(0, vocab, (batch, length)), rng.integers(0, vocab, (batch, length)),
            rng.integers(0, vocab, (batch, length)))


def _median_ms(step, sync, warmup, steps):
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _tinyattn_step(backend_name, batch, length, d_model, nhead, vocab, ff):
    """A ready-to-time step on tinyattn with arrays on ``backend_name``, and its sync."""
    import tinyattn as ta  # noqa: PLC0415
    from tinyattn import nn, optim  # noqa: PLC0415
    from tinyattn import functional as F  # noqa: PLC0415

    ta.set_backend(backend_name)
    ta.manual_seed(0)

    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.src_embed, self.tgt_embed = nn.Embedding(vocab, d_model), nn.Embedding(vocab, d_model)
            self.core = nn.Transformer(d_model, nhead, 2, 2, ff, dropout=0.0, batch_first=True)
            self.head = nn.Linear(d_model, vocab)

        def forward(self, s, t, mask):
            return self.head(self.core(self.src_embed(s), self.tgt_embed(t), tgt_mask=mask))

    model = Toy()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    src, tgt_in, tgt_out = (ta.tensor(a) for a in _data(batch, length, vocab))
    mask = nn.generate_square_subsequent_mask(length)

    def step():
        opt.zero_grad()
        logits = model(src, tgt_in, mask)
        loss = F.cross_entropy(logits.reshape(batch * length, vocab), tgt_out.reshape(-1))
        loss.backward()
        opt.step()

    if backend_name == "cupy":
        xp = ta.backend.active_module()
        return step, lambda: xp.cuda.Device().synchronize()
    return step, lambda: None


def _torch_step(torch, batch, length, d_model, nhead, vocab, ff):
    tnn = torch.nn
    dev = torch.device("cuda")

    class Toy(tnn.Module):
        def __init__(self):
            super().__init__()
            self.src_embed, self.tgt_embed = tnn.Embedding(vocab, d_model), tnn.Embedding(vocab, d_model)
            self.core = tnn.Transformer(d_model, nhead, 2, 2, ff, dropout=0.0, batch_first=True)
            self.head = tnn.Linear(d_model, vocab)

        def forward(self, s, t, mask):
            return self.head(self.core(self.src_embed(s), self.tgt_embed(t), tgt_mask=mask))

    torch.manual_seed(0)
    model = Toy().to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    src, tgt_in, tgt_out = (torch.tensor(a, device=dev) for a in _data(batch, length, vocab))
    mask = tnn.Transformer.generate_square_subsequent_mask(length, device=dev)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(
            model(src, tgt_in, mask).reshape(batch * length, vocab), tgt_out.reshape(-1))
        loss.backward()
        opt.step()

    return step, torch.cuda.synchronize


def run(batch=GPU_CONFIG["batch"], length=GPU_CONFIG["length"], d_model=GPU_CONFIG["d_model"],
        nhead=GPU_CONFIG["nhead"], vocab=GPU_CONFIG["vocab"], ff=None, steps=10, warmup=3,
        skip=(), numpy_steps=3):
    """Time the step on each available backend. Returns rows, one per backend, in the order
    numpy, cupy, torch-cuda; a backend that cannot run has ms_per_step None and says why."""
    from . import backend  # noqa: PLC0415

    ff = 4 * d_model if ff is None else ff
    shape = dict(batch=batch, length=length, d_model=d_model, nhead=nhead, vocab=vocab, ff=ff)
    rows = []
    previous = backend.get_backend()
    try:
        for name in ("numpy", "cupy", "torch-cuda"):
            row = {"backend": name, "ms_per_step": None, "steps": 0, "note": "", **shape}
            rows.append(row)
            if name in skip:
                row["note"] = "skipped (--skip)"
                continue
            if name == "cupy" and (reason := _cupy_reason()):
                row["note"] = f"skipped: no GPU ({reason})"
                continue
            torch = None
            if name == "torch-cuda":
                torch, reason = _torch_cuda()
                if torch is None:
                    row["note"] = f"skipped: no GPU ({reason})"
                    continue
                step, sync = _torch_step(torch, batch, length, d_model, nhead, vocab, ff)
            else:
                step, sync = _tinyattn_step(name, batch, length, d_model, nhead, vocab, ff)
            n = min(steps, numpy_steps) if name == "numpy" else steps
            w = min(warmup, 1) if name == "numpy" else warmup
            row["ms_per_step"] = _median_ms(step, sync, w, n)
            row["steps"] = n
            row["note"] = ("CPU, Numba kernels" if name == "numpy" else
                           "GPU, CuPy kernels" if name == "cupy" else "GPU, PyTorch")
    finally:
        backend.set_backend(previous)
    return rows


def table(rows):
    if not rows:
        return "skipped: no GPU"
    r0 = rows[0]
    head = (f"toy Transformer training step, batch {r0['batch']}, length {r0['length']}, "
            f"d_model {r0['d_model']}, {r0['nhead']} heads, ff {r0['ff']}, vocab {r0['vocab']}")
    lines = [head, f"{'backend':<12} {'ms/step':>10} {'vs numpy':>9}  note"]
    base = rows[0]["ms_per_step"] if rows[0]["backend"] == "numpy" else None
    for r in rows:
        ms = r["ms_per_step"]
        speed = f"{base / ms:8.1f}x" if (ms and base) else ""
        lines.append(f"{r['backend']:<12} {'' if ms is None else f'{ms:10.1f}':>10} {speed:>9}  "
                     f"{r['note']}")
    return "\n".join(lines)


def gpu_present():
    return _cupy_reason() is None or _torch_cuda()[0] is not None


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tinyattn.bench_gpu", description=__doc__.split("\n")[0])
    for k in ("batch", "length", "d_model", "nhead", "vocab"):
        p.add_argument(f"--{k.replace('_', '-')}", type=int, default=GPU_CONFIG[k])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--skip", nargs="*", default=[], choices=("numpy", "cupy", "torch-cuda"))
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    if not gpu_present():
        print(f"skipped: no GPU (CuPy: {_cupy_reason()}; PyTorch CUDA: {_torch_cuda()[1]})")
        return 0
    rows = run(args.batch, args.length, args.d_model, args.nhead, args.vocab, steps=args.steps,
               warmup=args.warmup, skip=tuple(args.skip))
    print(table(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
