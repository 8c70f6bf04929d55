"""Numba: memory-efficient attention forward and backward: tiles with an online softmax, on threads (reference: ops/memory_efficient_attention.py).

Each kernel is serial and ``nogil``; ``thread_split.split`` runs it on several threads, call k of n
taking every n-th task (interleaved: causal tiles grow along the sequence, so contiguous blocks
would leave the first threads idle).

Up to DECODE_MAX_QUERIES queries per sequence (decoding with a KV cache) the forward skips the
tiles: ``_attention_forward_rows`` takes one query row at a time, reading the cache's strided
views in place instead of copying them (equal to the twin to rounding, as the tiled kernel is).

The tile sizes are arguments, not constants: ``tile_sizes`` picks them from the CPU's level-2
cache and the sequence length at each call, so one compiled kernel serves every machine.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..lowlevel import cpu
from ..lowlevel import fastmath as fm
from ..lowlevel.blas_threads import single_threaded_blas
from ..lowlevel.thread_split import num_threads, split
from .. import register_kernel
from .rows import _JIT, _row_sum

# ---------------------------------------------------------------------------------- attention
SMALLEST_TILE, LARGEST_TILE = 64, 256
_tile_override = None   # (query tile, key tile) set by tests to walk many tiles on small inputs


def tile_sizes(itemsize):
    """(query tile, key tile) of the forward; the backward takes them swapped (``backward_tiles``).

    Bigger tiles make each tile product a bigger, more efficient BLAS call (one head of length
    16,384 ran ~1.7x faster with 256 x 256 tiles than with 64 x 64 on an AMD EPYC), as long as the
    scores tile - and backward's dS tile beside it - stay in the level-2 cache: the long side t is
    the largest power of two with t x t scores in a quarter of it. The short side is t / 2: with a
    causal mask the work above the diagonal that a tile pair computes and then masks is a triangle
    of the short side's size, so halving it halves that waste (causal, length 1024, d 64, 4 x 4
    heads, AMD EPYC znver4, 1 MiB L2: 256 x 256 -> forward 128 queries x 256 keys, backward 256
    queries x 128 keys, ~134 -> ~125 ms for the two kernels at one thread, best of 7), while
    the tile products stay as fast per FLOP. The tiles never depend on the sequence length: tiles at the same
    positions round the same way, so appending a token leaves the earlier outputs bit for bit
    unchanged (causal decoding relies on it)."""
    if _tile_override is not None:
        return _tile_override
    budget = cpu.l2_cache_bytes() // 4
    tile = LARGEST_TILE
    while tile > SMALLEST_TILE and tile * tile * itemsize > budget:
        tile //= 2
    return tile // 2, tile


def backward_tiles(itemsize):
    """(query tile, key tile) of the backward: the forward's swapped. The backward walks the
    queries below each key tile (keys-down), so its short side is the key tile."""
    query_tile, key_tile = tile_sizes(itemsize)
    return key_tile, query_tile


@njit(inline="always", **_JIT)
def _key_range(i0, i1, n_keys, causal, window):
    """Keys [lo, hi) that queries i0..i1-1 may see (the twin's ``key_range``; window < 0: none)."""
    lo, hi = 0, n_keys
    if causal:
        hi = min(hi, i1)
    if window >= 0:
        lo, hi = max(lo, i0 - window), min(hi, i1 + window)
    return lo, max(lo, hi)


@njit(inline="always", **_JIT)
def _allowed_keys(i, j0, nk, n_valid, causal, window):
    """Columns [c_lo, c_hi) of a tile row: the keys j0 + c that query i may see (j < n_valid,
    j <= i if causal, |i - j| <= window). They are one contiguous run, so a masked tile row is
    filled in three plain loops that vectorise, not with a test per element."""
    lo, hi = 0, n_valid
    if causal:
        hi = min(hi, i + 1)
    if window >= 0:
        lo, hi = max(lo, i - window), min(hi, i + window + 1)
    c_lo = min(max(lo - j0, 0), nk)
    return c_lo, min(max(hi - j0, c_lo), nk)


@njit(inline="always", **_JIT)
def _allowed_queries(j, i0, nq, n_valid, causal, window):
    """Columns [c_lo, c_hi) of a keys-down tile row: the queries i0 + c that may see key j."""
    if j >= n_valid:
        return 0, 0
    lo, hi = 0, i0 + nq
    if causal:
        lo = j
    if window >= 0:
        lo, hi = max(lo, j - window), min(hi, j + window + 1)
    c_lo = min(max(lo - i0, 0), nq)
    return c_lo, min(max(hi - i0, c_lo), nq)


@njit(inline="always", **_JIT)
def _tile_is_unmasked(i0, i1, j0, j1, n_valid, causal, window):
    """True when every (i, j) of the tile is allowed, so the per-element test can be skipped."""
    if j1 > n_valid or (causal and j1 - 1 > i0):
        return False
    return window < 0 or (j1 - 1 - i0 <= window and i1 - 1 - j0 <= window)


# The loops over part of a row [lo, hi) count in unsigned integers: Numba checks a signed index
# for being negative (and wraps it around), and that test stops LLVM from vectorising the loop
# (the forward ran ~1.7x slower that way); an unsigned one it does not check. (A view of the
# part, row[lo:hi], avoids the test too but costs ~50% more on short rows: T = 40.)
@njit(inline="always", **_JIT)
def _fill(row, lo, hi, value):
    for c in range(np.uintp(lo), np.uintp(hi)):
        row[c] = value


@njit(inline="always", **_JIT)
def _scale_in_place(row, lo, hi, scale):
    for c in range(np.uintp(lo), np.uintp(hi)):
        row[c] = row[c] * scale


@njit(inline="always", **_JIT)
def _exp_shifted(row, lo, hi, scale, shift):
    """row[lo:hi] = exp(row · scale - shift) in place (scale 1: exp(row - shift) exactly)."""
    for c in range(np.uintp(lo), np.uintp(hi)):
        row[c] = fm.exp(row[c] * scale - shift)


@njit(nogil=True, **_JIT)      # a call, not inlined: the kernel's code stays small to compile
def _online_softmax_tile(s, i0, j0, n_valid, causal, scale, window, full, m, l, acc):
    """s holds q_tile @ k_tileᵀ for queries i0.. and keys j0..; turn it, in place, into
    exp(s · scale - m_new) (0 where masked) and update the running maximum m, sum l and output
    acc of each query row (acc rescaled by exp(m - m_new); the caller adds s @ v_tile).
    Each row is summed on its own (_row_sum), not as one product s @ 1: BLAS's matrix-vector
    product is faster but rounds a row differently depending on how many rows the tile has, and
    appending a token must leave the earlier positions' outputs bit for bit unchanged."""
    nk, dv = s.shape[1], acc.shape[1]
    for r in range(s.shape[0]):
        i, sr = i0 + r, s[r]        # a 1-D row: loops over it vectorise
        c_lo, c_hi = (0, nk) if full else _allowed_keys(i, j0, nk, n_valid, causal, window)
        _fill(sr, 0, c_lo, -np.inf)
        _scale_in_place(sr, c_lo, c_hi, scale)
        _fill(sr, c_hi, nk, -np.inf)
        tile_max = fm.row_max(sr, nk)   # vectorised (on the bit patterns); skips a NaN as
        m_new = tile_max if tile_max > m[r] else m[r]   # max() would: the running maximum
        if m_new == -np.inf:        # no key allowed yet for this query - or only NaN scores,
            for c in range(nk):     # which max() skips: they must give NaN, as the plain path
                if sr[c] != sr[c]:
                    m_new = sr[c]
                    break
        if m_new == -np.inf:
            sr[:] = 0.0
            continue
        _fill(sr, 0, c_lo, 0.0)     # exp(-inf): the masked entries
        _exp_shifted(sr, c_lo, c_hi, type(scale)(1.0), m_new)
        _fill(sr, c_hi, nk, 0.0)
        row_sum = _row_sum(sr, nk)
        alpha = fm.exp(m[r] - m_new)    # rescales what earlier tiles added up
        l[r] = l[r] * alpha + row_sum
        m[r] = m_new
        if alpha != 1.0:
            accr = acc[r]
            for d in range(dv):
                accr[d] *= alpha


@njit(nogil=True, **_JIT)
def _attention_forward_tiles(q, k, v, lengths, causal, scale, window, query_tile, key_tile, out,
                             lse, share, n_shares):
    """Online softmax. For one tile of queries, walk the key tiles keeping per query the running
    maximum m, the running sum l = Σ exp(s - m) and the running output acc = Σ exp(s - m) v. When a
    new tile raises the maximum to m', the old sums are rescaled by exp(m - m'). At the end
    out = acc / l and lse = m + log l. The scores of one (query tile, key tile) pair are all that
    ever exist. Threads take whole (sequence, query tile) pairs (this call: every n_shares-th from
    ``share``): they never share an output row."""
    n_seq, tq, _ = q.shape
    tk, dv = k.shape[1], v.shape[2]
    n_tiles = (tq + query_tile - 1) // query_tile
    for task in range(share, n_seq * n_tiles, n_shares):
        bh = task // n_tiles
        i0 = (task % n_tiles) * query_tile
        i1 = min(tq, i0 + query_tile)
        n = i1 - i0
        m = np.full(n, -np.inf, dtype=q.dtype)     # in q's dtype: float32 inputs get float32 exp
        l = np.zeros(n, dtype=q.dtype)
        acc = np.zeros((n, dv), dtype=q.dtype)
        pv = np.empty((n, dv), dtype=q.dtype)
        q_tile = q[bh, i0:i1]
        lo, hi = _key_range(i0, i1, tk, causal, window)
        hi = min(hi, lengths[bh])
        for j0 in range(lo, hi, key_tile):
            j1 = min(hi, j0 + key_tile)
            s = np.dot(q_tile, k[bh, j0:j1].T)
            full = _tile_is_unmasked(i0, i1, j0, j1, lengths[bh], causal, window)
            _online_softmax_tile(s, i0, j0, lengths[bh], causal, scale, window, full, m, l, acc)
            np.dot(s, v[bh, j0:j1], pv)
            acc += pv
        for r in range(n):
            out_row = out[bh, i0 + r]
            if l[r] == 0.0:
                lse[bh, i0 + r] = -np.inf
                out_row[:] = 0.0
            else:
                lse[bh, i0 + r] = m[r] + math.log(l[r])
                accr = acc[r]
                for d in range(dv):
                    out_row[d] = accr[d] / l[r]


def _lengths(key_lengths):
    """int64, whatever integer type the caller used: one compiled specialisation, not one per type."""
    return np.ascontiguousarray(key_lengths, dtype=np.int64)


# ---------------------------------------------------------------------------------- few queries
DECODE_MAX_QUERIES = 4          # up to this many queries per sequence: one row at a time, no tiles
ROWS_WORK_PER_THREAD = 1 << 18  # multiply-adds below which a second thread costs more than it saves
# the same for the tiled forward: 16 heads of 40 queries x 40 keys, d 32 (1.6M multiply-adds) took
# 175 µs on one thread and 191 µs on two (AMD EPYC, no_grad); from ~4M on two threads gain
TILES_WORK_PER_THREAD = 1 << 22


@njit(nogil=True, **_JIT)
def _attention_forward_rows(q, k, v, lengths, causal, scale, window, out, lse, share, n_shares):
    """Few queries (decoding: one new token over a KV cache): each query row on its own - its
    scores over the keys it may see (one BLAS matrix-vector product), their softmax, the weighted
    sum of the values (another). A single query sees one contiguous range of keys (``_key_range``
    of one row), so there is no per-element mask test and no tile. q, k, v may be strided views
    (a cache's buffer: each sequence's (S, D) block is contiguous, only the sequences are apart):
    ``ascontiguousarray`` of one sequence is then a view, not a copy. The NaN and empty-row rules
    are the tiled kernel's. Calls share the sequences as the tiled kernel shares its tiles."""
    n_seq, tq, d = q.shape
    tk, dv = k.shape[1], v.shape[2]
    T = type(scale)                         # q's dtype: float32 inputs stay in float32
    s = np.empty(tk, dtype=q.dtype)
    acc = np.empty(dv, dtype=q.dtype)
    for bh in range(share, n_seq, n_shares):
        k_seq, v_seq = np.ascontiguousarray(k[bh]), np.ascontiguousarray(v[bh])
        q_seq = np.ascontiguousarray(q[bh])
        for i in range(tq):
            lo, hi = _key_range(i, i + 1, tk, causal, window)
            n = max(0, min(hi, lengths[bh]) - lo)
            out_row = out[bh, i]
            sr = s[:n]
            if n and d:
                np.dot(k_seq[lo:lo + n], q_seq[i], sr)
            else:
                sr[:] = 0.0                 # no key, or D = 0: every score is the empty sum
            m = T(-np.inf)
            for c in range(n):
                sr[c] *= scale
                if sr[c] > m:
                    m = sr[c]
            if m == -np.inf:                # no key - or only NaN scores, which give NaN
                for c in range(n):
                    if sr[c] != sr[c]:
                        m = sr[c]
                        break
            if m == -np.inf:
                lse[bh, i] = -np.inf
                out_row[:] = 0.0
                continue
            for c in range(n):              # exp as the tiled kernel's: vectorised
                sr[c] = fm.exp(sr[c] - m)
            total = T(_row_sum(sr, n))
            lse[bh, i] = m + math.log(total)
            if dv:
                np.dot(sr, v_seq[lo:lo + n], acc)
            for j in range(dv):
                out_row[j] = acc[j] / total


def _forward_rows(q, k, v, lengths, causal, scale, window):
    out = np.empty((q.shape[0], q.shape[1], v.shape[2]), dtype=q.dtype)
    lse = np.empty(q.shape[:2], dtype=q.dtype)
    work = q.shape[0] * q.shape[1] * k.shape[1] * (q.shape[2] + v.shape[2])
    if work < 2 * ROWS_WORK_PER_THREAD:     # decoding's usual size: one thread, BLAS as it is
        _attention_forward_rows(q, k, v, lengths, causal, scale, window, out, lse, 0, 1)
        return out, lse
    n = min(num_threads(), q.shape[0], work // ROWS_WORK_PER_THREAD)
    with single_threaded_blas():
        split(_attention_forward_rows, n, q, k, v, lengths, causal, scale, window, out, lse)
    return out, lse


@register_kernel("attention_forward", "numba")
def attention_forward(q, k, v, key_lengths, causal, scale, window):
    """Up to DECODE_MAX_QUERIES queries per sequence: row by row, on the arrays as they come
    (strided views of a KV cache included). More: the tiled online softmax, on contiguous copies."""
    if q.shape[1] <= DECODE_MAX_QUERIES:
        return _forward_rows(q, k, v, _lengths(key_lengths), bool(causal), q.dtype.type(scale),
                             -1 if window is None else int(window))
    q, k, v = (np.ascontiguousarray(a) for a in (q, k, v))
    out = np.empty((q.shape[0], q.shape[1], v.shape[2]), dtype=q.dtype)
    lse = np.empty(q.shape[:2], dtype=q.dtype)
    scale = q.dtype.type(scale)             # keep float32 arithmetic in float32
    query_tile, key_tile = tile_sizes(q.dtype.itemsize)
    n_tasks = q.shape[0] * -(-q.shape[1] // query_tile)
    work = q.shape[0] * q.shape[1] * k.shape[1] * (q.shape[2] + v.shape[2])
    threads = min(num_threads(), n_tasks, max(1, work // TILES_WORK_PER_THREAD))
    with single_threaded_blas():
        split(_attention_forward_tiles, threads, q, k, v, _lengths(key_lengths),
              bool(causal), scale, -1 if window is None else int(window), query_tile, key_tile,
              out, lse)
    return out, lse


@njit(nogil=True, **_JIT)      # a call, not inlined: compiled once for the two-pass kernels
def _tile_probabilities(p, i0, j0, row_lse, n_valid, causal, scale, window, full):
    """p holds q_tile @ k_tileᵀ; turn it, in place, into P = exp(p · scale - lse) - exactly the
    forward's probabilities, rebuilt - with 0 where masked and for queries that see no key."""
    for r in range(p.shape[0]):
        i, pr, lse_i = i0 + r, p[r], row_lse[i0 + r]
        nk = p.shape[1]
        c_lo, c_hi = (0, nk) if full else _allowed_keys(i, j0, nk, n_valid, causal, window)
        if lse_i == -np.inf:
            c_lo = c_hi = 0
        _fill(pr, 0, c_lo, 0.0)
        _exp_shifted(pr, c_lo, c_hi, scale, lse_i)
        _fill(pr, c_hi, nk, 0.0)


@njit(nogil=True, **_JIT)      # a call, not inlined: compiled once for the two-pass kernels
def _tile_ds(ds, p, d_rows, i0, scale):
    """ds holds g_tile @ v_tileᵀ = dP; turn it, in place, into dS · scale = P ⊙ (dP - D) · scale
    (the scale of dq = dS k · scale and dk = dSᵀ q · scale, applied once here, not per product)."""
    for r in range(ds.shape[0]):
        dsr, pr, d_r = ds[r], p[r], d_rows[i0 + r]
        for c in range(ds.shape[1]):
            dsr[c] = pr[c] * (dsr[c] - d_r) * scale


@njit(nogil=True, **_JIT)      # a call, not inlined: compiled once for both kernels using it
def _tile_probabilities_t(pt, i0, j0, row_lse, n_valid, causal, scale, window, full):
    """_tile_probabilities transposed: pt holds k_tile @ q_tileᵀ (a row per key j0.., a column per
    query i0..); turn it, in place, into Pᵀ, with 0 where masked and for queries that see no key."""
    nq = pt.shape[1]
    lse = row_lse[i0:i0 + nq]
    for r in range(pt.shape[0]):
        j, pr = j0 + r, pt[r]
        c_lo, c_hi = (0, nq) if full else _allowed_queries(j, i0, nq, n_valid, causal, window)
        _fill(pr, 0, c_lo, 0.0)
        for c in range(np.uintp(c_lo), np.uintp(c_hi)):
            pr[c] = fm.exp(pr[c] * scale - lse[c]) if lse[c] != -np.inf else 0.0
        _fill(pr, c_hi, nq, 0.0)


@njit(nogil=True, **_JIT)
def _tile_ds_t(dst, pt, d_rows, i0, scale):
    """_tile_ds transposed: dst holds v_tile @ g_tileᵀ = dPᵀ; in place into dSᵀ · scale."""
    nq = dst.shape[1]
    d_seg = d_rows[i0:i0 + nq]
    for r in range(dst.shape[0]):
        dsr, pr = dst[r], pt[r]
        for c in range(nq):
            dsr[c] = pr[c] * (dsr[c] - d_seg[c]) * scale


@njit(inline="always", **_JIT)
def _backward_tile_pair(g, q, k, v, lse, d_rows, bh, i0, i1, j0, j1, n_valid, causal, scale,
                        window, dq_rows, dk_tile, dv_tile):
    """The five tile products of one (query tile, key tile) pair, in the keys-down frame
    (Pᵀ = k qᵀ): then dv += Pᵀ g and dk += dSᵀ q read their left operand row by row, and only
    dq += (dSᵀ)ᵀ k reads one transposed - BLAS is ~15% slower on a transposed left operand, and
    the queries-down frame had two of them."""
    q_tile, g_tile = q[bh, i0:i1], g[bh, i0:i1]
    k_tile, v_tile = k[bh, j0:j1], v[bh, j0:j1]
    pt = np.dot(k_tile, q_tile.T)
    _tile_probabilities_t(pt, i0, j0, lse[bh], n_valid, causal, scale, window,
                          _tile_is_unmasked(i0, i1, j0, j1, n_valid, causal, window))
    dv_tile += np.dot(pt, g_tile)
    dst = np.dot(v_tile, g_tile.T)
    _tile_ds_t(dst, pt, d_rows[bh], i0, scale)
    dq_rows += np.dot(dst.T, k_tile)
    dk_tile += np.dot(dst, q_tile)


@njit(inline="always", **_JIT)
def _queries_seeing(j0, j1, tq, causal, window):
    """The queries [lo, hi) that can see keys j0..j1-1: i >= j0 if causal, |i - j| <= window."""
    lo, hi = 0, tq
    if causal:
        lo = j0
    if window >= 0:
        lo, hi = max(lo, j0 - window), min(hi, j1 + window)
    return lo, max(lo, hi)


@njit(nogil=True, **_JIT)
def _attention_backward_by_sequence(g, q, k, v, lse, d_rows, lengths, causal, scale, window,
                                    query_tile, key_tile, dq, dk, dv, share, n_shares):
    """Recompute P tile by tile from q, k and lse (formulas in the twin). Each thread owns whole
    sequences (bh): it walks key tiles, and for each the query tiles that can see them, adding into
    that key tile's dk, dv and into dq of its own sequence - no two threads write the same place.
    Five tile products per (query tile, key tile) pair."""
    n_seq, tq, _ = q.shape
    tk = k.shape[1]
    for bh in range(share, n_seq, n_shares):
        dq[bh] = 0.0
        dk[bh] = 0.0                        # rows of padding keys stay 0
        dv[bh] = 0.0
        n_valid = min(tk, lengths[bh])
        for j0 in range(0, n_valid, key_tile):
            j1 = min(n_valid, j0 + key_tile)
            dk_tile, dv_tile = dk[bh, j0:j1], dv[bh, j0:j1]
            qlo, qhi = _queries_seeing(j0, j1, tq, causal, window)
            for i0 in range(qlo, qhi, query_tile):
                i1 = min(qhi, i0 + query_tile)
                _backward_tile_pair(g, q, k, v, lse, d_rows, bh, i0, i1, j0, j1, n_valid, causal,
                                    scale, window, dq[bh, i0:i1], dk_tile, dv_tile)


@njit(nogil=True, **_JIT)
def _attention_backward_dk_dv(g, q, k, v, lse, d_rows, lengths, causal, scale, window,
                              query_tile, key_tile, dk, dv, share, n_shares):
    """dk, dv only; threads take (sequence, key tile) pairs - each owns its key rows."""
    n_seq, tq, _ = q.shape
    tk = k.shape[1]
    n_tiles = (tk + key_tile - 1) // key_tile
    for task in range(share, n_seq * n_tiles, n_shares):
        bh = task // n_tiles
        j0 = (task % n_tiles) * key_tile
        j_end = min(tk, j0 + key_tile)
        dk[bh, j0:j_end] = 0.0
        dv[bh, j0:j_end] = 0.0
        n_valid = min(tk, lengths[bh])
        if j0 >= n_valid:                   # padding keys: no gradient
            continue
        j1 = min(n_valid, j_end)
        k_tile, v_tile = k[bh, j0:j1], v[bh, j0:j1]
        dk_tile, dv_tile = dk[bh, j0:j1], dv[bh, j0:j1]
        qlo, qhi = _queries_seeing(j0, j1, tq, causal, window)
        for i0 in range(qlo, qhi, query_tile):
            i1 = min(qhi, i0 + query_tile)
            q_tile, g_tile = q[bh, i0:i1], g[bh, i0:i1]
            p = np.dot(q_tile, k_tile.T)
            _tile_probabilities(p, i0, j0, lse[bh], n_valid, causal, scale, window,
                                _tile_is_unmasked(i0, i1, j0, j1, n_valid, causal, window))
            dv_tile += np.dot(p.T, g_tile)
            ds = np.dot(g_tile, v_tile.T)
            _tile_ds(ds, p, d_rows[bh], i0, scale)
            dk_tile += np.dot(ds.T, q_tile)


@njit(nogil=True, **_JIT)
def _attention_backward_dq(g, q, k, v, lse, d_rows, lengths, causal, scale, window, query_tile,
                           key_tile, dq, share, n_shares):
    """dq only; threads take (sequence, query tile) pairs - each owns its query rows."""
    n_seq, tq, _ = q.shape
    tk = k.shape[1]
    n_tiles = (tq + query_tile - 1) // query_tile
    for task in range(share, n_seq * n_tiles, n_shares):
        bh = task // n_tiles
        i0 = (task % n_tiles) * query_tile
        i1 = min(tq, i0 + query_tile)
        dq[bh, i0:i1] = 0.0
        n_valid = min(tk, lengths[bh])
        lo, hi = _key_range(i0, i1, tk, causal, window)
        hi = min(hi, n_valid)
        q_tile, g_tile = q[bh, i0:i1], g[bh, i0:i1]
        for j0 in range(lo, hi, key_tile):
            j1 = min(hi, j0 + key_tile)
            k_tile = k[bh, j0:j1]
            p = np.dot(q_tile, k_tile.T)
            _tile_probabilities(p, i0, j0, lse[bh], n_valid, causal, scale, window,
                                _tile_is_unmasked(i0, i1, j0, j1, n_valid, causal, window))
            ds = np.dot(g_tile, v[bh, j0:j1].T)
            _tile_ds(ds, p, d_rows[bh], i0, scale)
            dq[bh, i0:i1] += np.dot(ds, k_tile)


@njit(nogil=True, **_JIT)
def _attention_backward_by_key_tile(g, q, k, v, lse, d_rows, lengths, causal, scale, window,
                                    query_tile, key_tile, dq_parts, dk, dv, share, n_shares):
    """Five tile products per pair, all threads busy on few sequences: threads take (sequence, key
    tile) pairs - each owns its key rows of dk, dv - and add their share of dq into a private
    copy, dq_parts[share] (zeroed by the caller), which the caller sums."""
    n_seq, tq, _ = q.shape
    tk = k.shape[1]
    n_tiles = (tk + key_tile - 1) // key_tile
    dq = dq_parts[share]
    for task in range(share, n_seq * n_tiles, n_shares):
        bh = task // n_tiles
        j0 = (task % n_tiles) * key_tile
        j_end = min(tk, j0 + key_tile)
        dk[bh, j0:j_end] = 0.0
        dv[bh, j0:j_end] = 0.0
        n_valid = min(tk, lengths[bh])
        if j0 >= n_valid:                   # padding keys: no gradient
            continue
        j1 = min(n_valid, j_end)
        dk_tile, dv_tile = dk[bh, j0:j1], dv[bh, j0:j1]
        qlo, qhi = _queries_seeing(j0, j1, tq, causal, window)
        for i0 in range(qlo, qhi, query_tile):
            i1 = min(qhi, i0 + query_tile)
            _backward_tile_pair(g, q, k, v, lse, d_rows, bh, i0, i1, j0, j1, n_valid, causal,
                                scale, window, dq[bh, i0:i1], dk_tile, dv_tile)


PRIVATE_DQ_BYTES = 64 * 2**20   # the most the per-thread copies of dq may take together


@register_kernel("attention_backward", "numba")
def attention_backward(g, q, k, v, out, lse, key_lengths, causal, scale, window):
    """With at least as many sequences as threads, each thread takes whole sequences (five tile
    products per tile pair). With fewer - one long sequence - that would leave threads idle, so
    threads take key tiles instead, each adding into its own copy of dq (five products, all
    threads busy, one dq-sized array per thread). Where those copies would pass
    PRIVATE_DQ_BYTES, the work is split twice instead: dk, dv by key tile, then dq by query tile
    (seven products per pair: P and dP are computed twice)."""
    g, q, k, v = (np.ascontiguousarray(a) for a in (g, q, k, v))
    d_rows = (g * out).sum(axis=2)          # D_i = Σ_d g[i, d] · out[i, d], as the twin
    dq, dk, dv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    query_tile, key_tile = backward_tiles(q.dtype.itemsize)
    args = (_lengths(key_lengths), bool(causal), q.dtype.type(scale),
            -1 if window is None else int(window), query_tile, key_tile)
    n = num_threads()
    with single_threaded_blas():
        if q.shape[0] >= n:
            split(_attention_backward_by_sequence, n, g, q, k, v, lse, d_rows, *args, dq, dk, dv)
            return dq, dk, dv
        shares = min(n, q.shape[0] * -(-k.shape[1] // key_tile))
        if shares * q.nbytes <= PRIVATE_DQ_BYTES:
            dq_parts = np.zeros((shares,) + q.shape, dtype=q.dtype)
            split(_attention_backward_by_key_tile, shares, g, q, k, v, lse, d_rows, *args,
                  dq_parts, dk, dv)
            return dq_parts.sum(axis=0), dk, dv
        tiles = q.shape[0] * -(-max(q.shape[1], k.shape[1]) // min(query_tile, key_tile))
        split(_attention_backward_dk_dv, min(n, tiles), g, q, k, v, lse, d_rows, *args, dk, dv)
        split(_attention_backward_dq, min(n, tiles), g, q, k, v, lse, d_rows, *args, dq)
    return dq, dk, dv
