"""Exact search with the documents split over the devices of a mesh (and over hosts).

Device ``i`` of ``D`` owns the contiguous document range ``[i * per, (i + 1) * per)``,
``per = ceil(N / D)``. Queries are replicated. In rounds of ``chunk`` documents per device, every
device scores its next chunk and merges it into its own running top-k (``jax.shard_map``); at the
end the ``D`` local lists are merged into the global top-k by one jitted program whose output is
replicated, so every process holds the whole result.

Same scores and order as :func:`optical_jax.retrieval.search.search` on one device: each local
list keeps ties in document order (``lax.top_k`` prefers the lower position), and the final merge
reads the devices in document order, so a tie goes to the lower document index in both.

Each device only ever holds its chunk: the global chunk arrays are built with
``jax.make_array_from_callback``, which asks each process only for the rows of its own devices
(under ``jax.distributed``, every host reads just its part of the document store, which may be a
memory-mapped array).
"""

from __future__ import annotations

import functools
import math
import sys
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from optical_jax.retrieval.index import Representations
from optical_jax.retrieval.search import (
  MAXSIM_BLOCK_BYTES,
  _chunk_scores,
  _merge_topk,
  maxsim_blocks,
)


def _doc_axes(mesh: Mesh):
  """Every mesh axis, flattened: the documents are split over all devices."""
  return tuple(mesh.axis_names)


@functools.partial(jax.jit, static_argnames=("kind", "k", "mesh", "has_allowed"))
def _round(kind, k, mesh, has_allowed, q, q_mask, d, d_mask, valid, ids, allowed, vals, idx):
  """One round: each device scores its chunk and merges it into its running top-k.

  q [Q, d] / [Q, Lq, p] (replicated); d [D*C, ...], valid/ids [D*C], allowed [Q, D*C] (split
  over devices); vals/idx [D, Q, k] (one row per device) -> the new vals, idx."""
  axes = _doc_axes(mesh)
  spec_d, spec_row = P(axes), P(axes)

  def local(q, q_mask, d, d_mask, valid, ids, allowed, vals, idx):
    s = _chunk_scores(kind, q, q_mask, d, d_mask, valid)  # [Q, C]
    if has_allowed:
      s = jnp.where(allowed, s, -jnp.inf)
    ids = jnp.broadcast_to(ids[None, :], s.shape)
    v, i = _merge_topk(vals[0], idx[0], s, ids, k)
    return v[None], i[None]

  q_spec = P()
  qm_spec = P()
  return jax.shard_map(
    local,
    mesh=mesh,
    in_specs=(q_spec, qm_spec, spec_d, spec_d, spec_d, spec_d, P(None, axes), spec_row, spec_row),
    out_specs=(spec_row, spec_row),
    check_vma=False,
  )(q, q_mask, d, d_mask, valid, ids, allowed, vals, idx)


@functools.partial(jax.jit, static_argnames=("k", "out_sharding"))
def _final_merge(vals, idx, k, out_sharding):
  """vals/idx [D, Q, k_local] -> the global top-k [Q, k], replicated. Devices in order."""
  nd, nq, lk = vals.shape
  v = jnp.transpose(vals, (1, 0, 2)).reshape(nq, nd * lk)
  i = jnp.transpose(idx, (1, 0, 2)).reshape(nq, nd * lk)
  top_v, pos = jax.lax.top_k(v, k)
  top_i = jnp.take_along_axis(i, pos, axis=1)
  return (
    jax.lax.with_sharding_constraint(top_v, out_sharding),
    jax.lax.with_sharding_constraint(top_i, out_sharding),
  )


def _host(x: jax.Array) -> np.ndarray:
  """A replicated array as numpy (each process holds a full copy)."""
  return np.asarray(x.addressable_data(0))


def search_sharded(
  queries: Representations,
  docs: Representations,
  mesh: Mesh,
  k: int = 1000,
  chunk_size: int = 1024,
  allowed: Optional[np.ndarray] = None,
  query_batch: int = 256,
  progress: bool = True,
  memory_budget: int = MAXSIM_BLOCK_BYTES,
) -> (np.ndarray, np.ndarray):
  """:func:`optical_jax.retrieval.search.search` with the documents split over ``mesh``.

  Same arguments and result: (scores [Q, k'], doc indices [Q, k']), best first, ``k' = min(k,
  N)``, -1 for entries scored -inf. ``chunk_size`` and ``memory_budget`` are per device.
  """
  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel

  if queries.kind != docs.kind:
    raise ValueError(f"query representations are {queries.kind}, documents {docs.kind}")
  n, nd = len(docs), mesh.devices.size
  axes = _doc_axes(mesh)
  per = math.ceil(n / nd)
  kk = min(k, n)
  local_k = min(kk, per)
  chunk = min(chunk_size, per)
  if docs.kind == "maxsim":
    query_batch, chunk = maxsim_blocks(
      len(queries),
      per,
      queries.tokens.shape[1],
      docs.tokens.shape[1],
      query_batch,
      chunk,
      memory_budget,
    )
  rounds = math.ceil(per / chunk)
  split = NamedSharding(mesh, P(axes))
  split_cols = NamedSharding(mesh, P(None, axes))
  replicated = NamedSharding(mesh, P())

  def positions(r):
    """[D, chunk] global document index of each slot of round r, and whether it is real."""
    offset = r * chunk + np.arange(chunk)
    pos = np.arange(nd)[:, None] * per + offset[None, :]
    return np.minimum(pos, n - 1).reshape(-1), ((offset < per)[None, :] & (pos < n)).reshape(-1)

  def global_rows(shape, fetch):
    """A [D*chunk, ...] array split over the devices; ``fetch(rows)`` gives the host rows."""
    return jax.make_array_from_callback(shape, split, lambda index: fetch(index[0]))

  no_mask = jax.device_put(np.zeros((nd,), bool), split)
  all_s, all_i = [], []
  bar = tqdm(
    total=len(queries), desc="search (sharded)", unit="query", disable=not progress, file=sys.stderr
  )
  for qs in range(0, len(queries), query_batch):
    qsl = slice(qs, qs + query_batch)
    if queries.kind == "dense":
      q = jax.device_put(np.asarray(queries.vectors[qsl], np.float32), replicated)
      qm = jax.device_put(np.zeros((1,), bool), replicated)
    else:
      q = jax.device_put(np.asarray(queries.tokens[qsl], np.float32), replicated)
      qm = jax.device_put(np.asarray(queries.mask[qsl]), replicated)
    nq = q.shape[0]
    no_allowed = jax.device_put(np.zeros((1, nd), bool), split_cols)
    vals = jax.device_put(np.full((nd, nq, local_k), -np.inf, np.float32), split)
    idx = jax.device_put(np.full((nd, nq, local_k), -1, np.int32), split)
    for r in range(rounds):
      pos, valid = positions(r)
      rows = nd * chunk
      if docs.kind == "dense":
        store = docs.vectors
        d = global_rows((rows, store.shape[1]), lambda s: np.asarray(store[pos[s]], np.float32))
        dm = no_mask  # unused by the dense scores
      else:
        store, mstore = docs.tokens, docs.mask
        d = global_rows((rows,) + store.shape[1:], lambda s: np.asarray(store[pos[s]], np.float32))
        dm = global_rows((rows, mstore.shape[1]), lambda s: np.asarray(mstore[pos[s]]))
      v = global_rows((rows,), lambda s: valid[s])
      ids = global_rows((rows,), lambda s: pos[s].astype(np.int32))
      if allowed is not None:
        block = allowed[qsl]
        a = jax.make_array_from_callback(
          (nq, rows), split_cols, lambda index: block[index[0]][:, pos[index[1]]] & valid[index[1]]
        )
      else:
        a = no_allowed  # unused: one cell per device
      vals, idx = _round(
        docs.kind, local_k, mesh, allowed is not None, q, qm, d, dm, v, ids, a, vals, idx
      )
    top_v, top_i = _final_merge(vals, idx, kk, replicated)
    top_v, top_i = _host(top_v), _host(top_i)
    all_s.append(top_v)
    all_i.append(np.where(np.isfinite(top_v), top_i, -1))
    bar.update(nq)
  bar.close()
  return np.concatenate(all_s), np.concatenate(all_i)
