"""The encode command and library: order, pooling, normalisation, truncation, errors."""

import numpy as np
import pytest

from optical_jax import encode
from optical_jax.commands import embed
from optical_jax.loading import load_encoder
from optical_jax.tokenization import bucket_length

from hf_fixtures import make_checkpoint

TEXTS = ["aa bb cc", "a", "dd ee ff gg hh ii jj kk", "bb", "cc dd", "ee ff gg", "zz yy", "q"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
  d = tmp_path_factory.mktemp("bert")
  make_checkpoint(d, "bert")
  return d


@pytest.fixture(scope="module")
def model(ckpt):
  return load_encoder(str(ckpt))


def test_bucket_length():
  assert [bucket_length(n, 64) for n in (1, 8, 9, 33, 64, 100)] == [8, 8, 16, 64, 64, 64]


def test_order_and_batch_invariance(model):
  """Row i is text i, whatever the batch size and length sorting."""
  a = encode.encode_texts(model, TEXTS, batch_size=3, pooling="mean", progress=False)
  b = encode.encode_texts(model, TEXTS, batch_size=64, pooling="mean", progress=False)
  single = np.stack(
    [
      encode.encode_texts(model, [t], batch_size=1, pooling="mean", progress=False)[0]
      for t in TEXTS
    ]
  )
  np.testing.assert_allclose(a, single, atol=1e-5)
  np.testing.assert_allclose(b, single, atol=1e-5)
  assert len({tuple(np.round(r, 4)) for r in a}) == len(TEXTS)


def test_pooling_and_normalize(model):
  batch = model.tokenizer(TEXTS[:2])
  h = np.asarray(
    model.module.apply(model.params, batch.input_ids, batch.attention_mask).last_hidden_state
  )
  m = batch.attention_mask[..., None]
  mean = (h * m).sum(1) / m.sum(1)
  got = encode.encode_texts(model, TEXTS[:2], pooling="mean", progress=False)
  np.testing.assert_allclose(got, mean, atol=1e-5)
  cls = encode.encode_texts(model, TEXTS[:2], pooling="cls", progress=False)
  np.testing.assert_allclose(cls, h[:, 0], atol=1e-5)
  unit = encode.encode_texts(model, TEXTS[:2], pooling="cls", normalize=True, progress=False)
  np.testing.assert_allclose(
    unit, h[:, 0] / np.linalg.norm(h[:, 0], axis=1, keepdims=True), atol=1e-5
  )


def test_prefix_changes_tokens(model):
  plain = model.tokenizer(["aa"])
  prefixed = model.tokenizer(["aa"], prefix="bb ")
  assert prefixed.lengths[0] == plain.lengths[0] + 1


def test_truncation_is_counted(model, caplog):
  long = " ".join(["aa"] * 100)
  with caplog.at_level("WARNING"):
    b = model.tokenizer([long, "aa"], max_length=16)
  assert b.num_truncated == 1 and b.input_ids.shape[1] == 16
  assert b.input_ids[0, -1] == model.tokenizer.ids("aa")[-1]  # [SEP] kept
  assert "1 of 2 texts longer than 16 tokens were truncated" in caplog.text


def test_cli_writes_npy(ckpt, tmp_path, capsys):
  inp = tmp_path / "in.txt"
  inp.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
  out = tmp_path / "sub" / "out.npy"
  rc = embed.main(
    [
      "encode",
      f"--model={ckpt}",
      f"--input={inp}",
      f"--output={out}",
      "--pooling=mean",
      "--normalize",
      "--batch_size=3",
    ]
  )
  assert rc == 0
  emb = np.load(out)
  assert emb.shape == (len(TEXTS), 32) and emb.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
  assert "wrote 8 x 32 float32" in capsys.readouterr().err


def test_cli_errors(ckpt, tmp_path, capsys):
  bad = tmp_path / "bad.txt"
  bad.write_bytes(b"ok\n\xff\xfe broken\n")
  rc = embed.main(["encode", f"--model={ckpt}", f"--input={bad}", f"--output={tmp_path / 'o.npy'}"])
  assert rc == 1
  assert f"{bad}:2: invalid UTF-8" in capsys.readouterr().err
  assert not (tmp_path / "o.npy").exists()
  rc = embed.main(["encode", f"--input={bad}", f"--output={tmp_path / 'o.npy'}"])
  assert rc == 2 and "--model" in capsys.readouterr().err


@pytest.mark.parametrize(
  "pooling", ["mean", pytest.param("cls", marks=pytest.mark.slow)]
)  # cls: the same packed states, another pooling (cls vectors: test_pooling_and_normalize)
def test_packed_equals_padded(model, pooling):
  """Packing (the default) gives the padded path's vectors, in input order, truncation included."""
  texts = TEXTS + ["ll " * 40, "", "mm nn " * 7]
  kw = dict(pooling=pooling, normalize=True, progress=False, max_length=32)
  padded = encode.encode_texts(model, texts, pack=False, batch_size=4, **kw)
  packed = encode.encode_texts(model, texts, **kw)
  tight = encode.encode_texts(model, texts, tokens_per_batch=40, **kw)  # one 32-token row a batch
  np.testing.assert_allclose(packed, padded, atol=1e-5)
  np.testing.assert_allclose(tight, padded, atol=1e-5)


def test_read_lines_drops_a_leading_byte_order_mark(tmp_path):
  from optical_jax.io import iter_lines  # pylint: disable=import-outside-toplevel

  p = tmp_path / "in.txt"
  p.write_bytes(b"\xef\xbb\xbfHabari\r\n\xef\xbb\xbfkept inside\n")
  assert [t for _, t in iter_lines(p)] == [
    "Habari",
    "\ufeffkept inside",
  ]  # only the file's own mark goes


@pytest.mark.parametrize(
  "case", ["max_length 0", "max_length 1", "output is a folder", "output under a file"]
)
def test_cli_refuses_before_the_model_loads(tmp_path, capsys, case):
  """A token limit below the special tokens, and an --output that cannot be written, are one
  line and exit 2 before any model loads (the model named here does not exist) or any text is
  encoded; a folder or file in the way ended in a traceback after encoding."""
  texts = tmp_path / "t.txt"
  texts.write_text("a\nb\n")
  (tmp_path / "a_file").write_text("x")
  (tmp_path / "a_folder").mkdir()
  output, extra, message = tmp_path / "o.npy", [], ""
  if case.startswith("max_length"):
    n = case.split()[1]
    extra, message = [f"--max_length={n}"], f"--max_length={n}: a token limit must be >= 2"
  elif case == "output is a folder":
    output, message = tmp_path / "a_folder", f"--output {tmp_path / 'a_folder'}: is a folder"
  else:
    output = tmp_path / "a_file" / "o.npy"
    message = f"--output {output}: {tmp_path / 'a_file'} is a file, not a folder"
  rc = embed.main(
    ["encode", "--model=/nonexistent/model", f"--input={texts}", f"--output={output}", *extra]
  )
  err = capsys.readouterr().err.strip().splitlines()
  assert rc == 2 and err[-1].startswith(f"embed: error: {message}"), err
  assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "a_folder", "t.txt"]


@pytest.fixture(scope="module")
def e5_like(tmp_path_factory):
  """random:tiny exported with E5's prefixes, as a student of an E5 teacher records them."""
  from optical_jax.loading.export import save_hf_directory

  tiny = load_encoder("random:tiny")
  out = tmp_path_factory.mktemp("e5like") / "student"
  save_hf_directory(
    out, tiny.config, tiny.params, tiny.tokenizer, pooling="mean", query_prefix="query: ",
    doc_prefix="passage: ",
  )  # fmt: skip
  return out


def test_cli_side_applies_the_recorded_prefix(e5_like, tmp_path, capsys):
  """--side query|passage: the model's prefix of that side and its pooling (the vectors of
  encode_texts with that prefix); --prefix alone overrides; both together are one line, exit 2;
  neither says that the recorded prefix was not applied."""
  inp = tmp_path / "in.txt"
  inp.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
  model = load_encoder(str(e5_like))
  base = ["encode", f"--model={e5_like}", f"--input={inp}"]
  for side, prefix in (("query", "query: "), ("passage", "passage: ")):
    assert embed.main([*base, f"--output={tmp_path / side}.npy", f"--side={side}"]) == 0
    assert f"{side} side: prefix {prefix!r}, mean pooling" in capsys.readouterr().err
    want = encode.encode_texts(model, TEXTS, prefix=prefix, progress=False)
    np.testing.assert_array_equal(np.load(tmp_path / f"{side}.npy"), want)
    np.testing.assert_array_equal(
      encode.encode_texts(model, TEXTS, side=side, progress=False), want
    )
  assert embed.main([*base, f"--output={tmp_path / 'none.npy'}"]) == 0
  assert "no prefix applied; the model records query 'query: '" in capsys.readouterr().err
  rc = embed.main([*base, f"--output={tmp_path / 'both.npy'}", "--side=query", "--prefix=q: "])
  err = capsys.readouterr().err.strip().splitlines()
  assert rc == 2 and len(err) == 1 and "give one of them" in err[0], err
  assert not (tmp_path / "both.npy").exists()
  with pytest.raises(ValueError, match="give no prefix"):
    encode.encode_texts(model, TEXTS, side="query", prefix="x", progress=False)
