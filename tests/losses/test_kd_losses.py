"""Knowledge-distillation baselines: exact values on hand-made inputs, masking, gradients."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from optical_jax.losses.kd import (
  bank_contrastive,
  greedy_alignment,
  maxsim_contrastive,
  maxsim_mean_scores,
  reverse_contrastive,
  sampled_bank,
  sentence_contrastive,
  sentence_mse,
  token_mse_greedy,
)


def test_greedy_alignment_by_hand():
  sim = jnp.asarray([[0.9, 0.8, 0.1], [0.85, 0.2, 0.3], [0.0, 0.7, 0.6]])
  # 0.9 -> (0,0); then best among rows {1,2} x cols {1,2}: 0.7 -> (2,1); then (1,2).
  np.testing.assert_array_equal(greedy_alignment(sim, jnp.ones(3), jnp.ones(3)), [0, 2, 1])
  # Masked column 0: (0,1)=0.8, then (2,2)=0.6 beats (1,2)=0.3; row 1 left unmatched.
  np.testing.assert_array_equal(
    greedy_alignment(sim, jnp.ones(3), jnp.asarray([0, 1, 1])), [1, -1, 2]
  )


def test_greedy_alignment_matches_python_reference():
  rng = np.random.default_rng(0)
  for _ in range(20):
    m, n = rng.integers(1, 7, size=2)
    sim = rng.normal(size=(m, n))
    rm, cm = rng.random(m) < 0.8, rng.random(n) < 0.8
    ref = np.full(m, -1)
    pairs = sorted(
      ((sim[i, j], i, j) for i, j in itertools.product(range(m), range(n)) if rm[i] and cm[j]),
      reverse=True,
    )
    used_r, used_c = set(), set()
    for _, i, j in pairs:
      if i not in used_r and j not in used_c:
        ref[i] = j
        used_r.add(i)
        used_c.add(j)
    np.testing.assert_array_equal(
      greedy_alignment(jnp.asarray(sim), jnp.asarray(rm), jnp.asarray(cm)), ref
    )


def test_sentence_mse_value_and_masking():
  s = jnp.asarray([[[1.0, 0.0], [3.0, 2.0], [100.0, 100.0]]])  # last token is padding
  t = jnp.asarray([[[0.0, 0.0], [0.0, 2.0]]])
  loss, m = sentence_mse(s, jnp.asarray([[1, 1, 0]]), t, jnp.asarray([[1, 1]]))
  # pooled: student (2, 1), teacher (0, 1) -> mean((2)^2, 0) = 2
  np.testing.assert_allclose(loss, 2.0)
  assert m["valid_pairs"] == 1


def test_token_mse_value_and_gradient_only_to_student():
  t = jnp.asarray([[[1.0, 0.0], [0.0, 1.0]]])
  s = jnp.asarray([[[0.0, 2.0], [3.0, 0.0], [9.0, 9.0]]])  # aligned: s0->t1, s1->t0; s2 padding
  sm, tm = jnp.asarray([[1, 1, 0]]), jnp.asarray([[1, 1]])
  loss, m = token_mse_greedy(s, sm, t, tm)
  # errors: s0 - t1 = (0, 1) -> 0.5; s1 - t0 = (2, 0) -> 2.0; mean 1.25
  np.testing.assert_allclose(loss, 1.25)
  assert m["aligned_tokens"] == 2
  gs, gt = jax.grad(lambda s, t: token_mse_greedy(s, sm, t, tm)[0], argnums=(0, 1))(s, t)
  assert np.all(np.asarray(gt) == 0) and np.all(np.asarray(gs[0, 2]) == 0)
  np.testing.assert_allclose(gs[0, :2], [[0.0, 0.5], [1.0, 0.0]])


def test_empty_pairs_are_excluded_and_finite():
  rng = np.random.default_rng(1)
  s, t = jnp.asarray(rng.normal(size=(3, 4, 5))), jnp.asarray(rng.normal(size=(3, 6, 5)))
  sm = jnp.asarray([[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
  tm = jnp.asarray([[1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
  for fn in (sentence_mse, token_mse_greedy):
    (loss, m), g = jax.value_and_grad(lambda s: fn(s, sm, t, tm), has_aux=True)(s)
    assert np.isfinite(loss) and m["valid_pairs"] == 2 and np.isfinite(np.asarray(g)).all()
    assert np.all(np.asarray(g[1]) == 0)


def test_sentence_contrastive_value_masking_and_gradient():
  rng = np.random.default_rng(0)
  s = jnp.asarray(rng.normal(size=(3, 4, 5)), jnp.float32)
  t = jnp.asarray(rng.normal(size=(3, 2, 5)), jnp.float32)
  sm = jnp.asarray([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]])  # pair 2 has no student tokens
  tm = jnp.asarray([[1, 1], [1, 0], [1, 1]])
  tau = 0.5
  loss, m = sentence_contrastive(s, sm, t, tm, tau)
  # By hand: pooled means of the valid tokens, unit length; pair 2 is neither a row nor a column.
  ps = np.stack([np.asarray(s[0, :2]).mean(0), np.asarray(s[1]).mean(0)])
  pt = np.stack([np.asarray(t[0]).mean(0), np.asarray(t[1, :1]).mean(0)])
  ps /= np.linalg.norm(ps, axis=1, keepdims=True)
  pt /= np.linalg.norm(pt, axis=1, keepdims=True)
  logits = ps @ pt.T / tau
  want = np.mean([np.log(np.exp(logits[i]).sum()) - logits[i, i] for i in range(2)])
  np.testing.assert_allclose(loss, want, rtol=1e-5)
  assert float(m["in_batch_top1"]) == np.mean(np.argmax(logits, 1) == np.arange(2))
  gs, gt = jax.grad(lambda s, t: sentence_contrastive(s, sm, t, tm, tau)[0], argnums=(0, 1))(s, t)
  assert np.all(np.asarray(gt) == 0)  # the teacher's side is a fixed key
  assert np.all(np.asarray(gs[2]) == 0) and np.all(np.asarray(gs[0, 2:]) == 0)  # padding
  assert np.all(np.isfinite(np.asarray(gs))) and np.any(np.asarray(gs[1]) != 0)
  # Matching embeddings far apart from the others: loss near 0, all ranked first.
  e = jnp.asarray(np.eye(3)[:, None, :] * 10, jnp.float32)
  ones = jnp.ones((3, 1))
  loss, m = sentence_contrastive(e, ones, e, ones, 0.01)
  assert float(loss) < 1e-6 and float(m["in_batch_top1"]) == 1.0


def test_bank_contrastive_value_masking_and_gradient():
  """Full softmax over the bank, target = the row's own bank index; filler rows (-1) and rows
  without tokens count nowhere; the bank gets no gradient."""
  rng = np.random.default_rng(1)
  s = jnp.asarray(rng.normal(size=(4, 3, 5)), jnp.float32)
  sm = jnp.asarray([[1, 1, 0], [1, 1, 1], [0, 0, 0], [1, 0, 0]])  # row 2 has no tokens
  bank = rng.normal(size=(6, 5))
  bank = jnp.asarray(bank / np.linalg.norm(bank, axis=1, keepdims=True), jnp.float32)
  index = jnp.asarray([4, 0, 1, -1])  # row 3 is a filler row
  tau = 0.3
  loss, m = bank_contrastive(s, sm, bank, index, tau)
  ps = np.stack([np.asarray(s[0, :2]).mean(0), np.asarray(s[1]).mean(0)])
  ps /= np.linalg.norm(ps, axis=1, keepdims=True)
  logits = ps @ np.asarray(bank).T / tau
  want = np.mean([np.log(np.exp(logits[i]).sum()) - logits[i, j] for i, j in ((0, 4), (1, 0))])
  np.testing.assert_allclose(loss, want, rtol=1e-5)
  assert float(m["bank_top1"]) == np.mean(np.argmax(logits, 1) == np.asarray([4, 0]))
  gs, gb = jax.grad(lambda s, b: bank_contrastive(s, sm, b, index, tau)[0], argnums=(0, 1))(s, bank)
  assert np.all(np.asarray(gb) == 0)
  assert np.all(np.asarray(gs[2]) == 0) and np.all(np.asarray(gs[3]) == 0)
  assert np.any(np.asarray(gs[1]) != 0) and np.all(np.isfinite(np.asarray(gs)))
  # With the batch's teacher vectors as the bank (index = own row), it is the in-batch term.
  t = jnp.asarray(rng.normal(size=(3, 2, 5)), jnp.float32)
  ones_s, ones_t = jnp.ones((3, 3)), jnp.ones((3, 2))
  tb = np.asarray(t).mean(1)
  tb = jnp.asarray(tb / np.linalg.norm(tb, axis=1, keepdims=True))
  np.testing.assert_allclose(
    bank_contrastive(s[:3], ones_s, tb, jnp.arange(3), tau)[0],
    sentence_contrastive(s[:3], ones_s, t, ones_t, tau)[0],
    rtol=1e-5,
  )


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_maxsim_contrastive_value_masking_and_gradient():
  """Late-interaction InfoNCE: s_ij = mean over row i's real tokens of each token's best cosine
  with sentence j's real tokens (padding never chosen, whatever its value); filler rows and
  rows without tokens count nowhere; chunking changes nothing; the documents get no gradient."""
  rng = np.random.default_rng(3)
  s = _unit(rng.normal(size=(4, 3, 5)))
  sm = np.asarray([[1, 1, 0], [1, 1, 1], [0, 0, 0], [1, 0, 0]])
  d = _unit(rng.normal(size=(6, 4, 5)))
  dm = np.asarray(
    [[1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0]]
  )
  d_padded = np.where(dm[..., None] > 0, d, 1.0)  # padding that would win every max if chosen
  index = jnp.asarray([4, 0, 1, -1])
  tau = 0.2
  want_scores = np.zeros((4, 6))
  for i in range(4):
    for j in range(6):
      q, k = s[i][sm[i] > 0], d[j][dm[j] > 0]
      want_scores[i, j] = (q @ k.T).max(1).mean() if len(q) else 0.0
  sc = maxsim_mean_scores(jnp.asarray(s * sm[..., None]), sm, jnp.asarray(d_padded), dm)
  np.testing.assert_allclose(sc, want_scores, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(
    maxsim_mean_scores(jnp.asarray(s), sm, jnp.asarray(d_padded), dm, chunk=4), sc, rtol=1e-6
  )
  logits = want_scores / tau
  want = np.mean([np.log(np.exp(logits[i]).sum()) - logits[i, j] for i, j in ((0, 4), (1, 0))])
  args = (jnp.asarray(s, jnp.float32), sm)
  loss, m = maxsim_contrastive(*args, jnp.asarray(d_padded, jnp.float32), dm, index, tau)
  np.testing.assert_allclose(loss, want, rtol=1e-5)
  assert float(m["maxsim_top1"]) == np.mean(np.argmax(logits[:2], 1) == np.asarray([4, 0]))
  gs, gd = jax.grad(lambda a, b: maxsim_contrastive(a, sm, b, dm, index, tau)[0], argnums=(0, 1))(
    args[0], jnp.asarray(d, jnp.float32)
  )
  assert np.all(np.asarray(gd) == 0)
  assert np.all(np.asarray(gs[2]) == 0) and np.all(np.asarray(gs[3]) == 0)
  assert np.all(np.asarray(gs[0, 2]) == 0)  # a padded student token
  assert np.any(np.asarray(gs[1]) != 0) and np.all(np.isfinite(np.asarray(gs)))
  # The gradient matches finite differences of the reference (the max picks one token).
  eps = 1e-3
  bump = np.zeros_like(s)
  bump[1, 1, 2] = eps
  ref = lambda x: float(maxsim_contrastive(jnp.asarray(x, jnp.float32), sm, d, dm, index, tau)[0])
  fd = (ref(s + bump) - ref(s - bump)) / (2 * eps)
  np.testing.assert_allclose(float(gs[1, 1, 2]), fd, rtol=1e-2, atol=1e-4)


def test_maxsim_contrastive_excluded_columns_are_no_negatives():
  """exclude drops a column from a row's softmax, exactly as if it were not there."""
  rng = np.random.default_rng(6)
  s = jnp.asarray(_unit(rng.normal(size=(2, 2, 4))), jnp.float32)
  d = jnp.asarray(_unit(rng.normal(size=(4, 3, 4))), jnp.float32)
  ones_s, ones_d = jnp.ones((2, 2)), jnp.ones((4, 3))
  exclude = jnp.asarray([[False, False, True, False], [False, False, False, False]])
  got = maxsim_contrastive(s, ones_s, d, ones_d, jnp.asarray([0, 1]), 0.1, exclude)[0]
  row0 = maxsim_contrastive(
    s[:1], ones_s[:1], d[jnp.asarray([0, 1, 3])], ones_d[:3], jnp.asarray([0]), 0.1
  )[0]
  row1 = maxsim_contrastive(s[1:], ones_s[1:], d, ones_d, jnp.asarray([1]), 0.1)[0]
  np.testing.assert_allclose(got, (row0 + row1) / 2, rtol=1e-5)


def test_sampled_bank_puts_positives_first_and_excludes_copies_of_them():
  """The batch's own rows, then draws from the bank (the same for the same rng); a drawn copy of
  row b's sentence is excluded for b only; filler rows stay -1."""
  docs = jnp.arange(10.0).reshape(5, 2, 1)
  mask = jnp.ones((5, 2), bool)
  index = jnp.asarray([3, 0, -1])
  d, m, idx, ex = sampled_bank(docs, mask, index, 40, jax.random.PRNGKey(1))
  assert d.shape == (43, 2, 1) and m.shape == (43, 2)
  rows = np.asarray(d[:, 0, 0]) // 2
  np.testing.assert_array_equal(rows[:3], [3, 0, 0])
  assert set(rows[3:].tolist()) <= set(range(5)) and len(set(rows[3:].tolist())) > 1
  np.testing.assert_array_equal(idx, [0, 1, -1])
  ex = np.asarray(ex)
  for b, own in enumerate([3, 0]):
    np.testing.assert_array_equal(ex[b], (rows == own) & (np.arange(43) != b))
  again = sampled_bank(docs, mask, index, 40, jax.random.PRNGKey(1))[0]
  np.testing.assert_array_equal(again, d)
  # Hard negatives: each row's neighbours follow the positives, before the draws.
  neighbors = jnp.asarray([[1, 2], [0, 2], [0, 1], [4, 0], [3, 0]], jnp.int32)
  d, _, idx, ex = sampled_bank(docs, mask, index, 4, jax.random.PRNGKey(1), neighbors)
  rows = np.asarray(d[:, 0, 0]) // 2
  np.testing.assert_array_equal(rows[:9], [3, 0, 0, 4, 0, 1, 2, 1, 2])
  assert d.shape[0] == 3 + 3 * 2 + 4 and not bool(ex[0, 3]) and bool(ex[0, 4]) is False
  assert bool(ex[1, 4]) and bool(ex[1, 2])  # copies of sentence 0 are no negatives of row 1


def test_maxsim_contrastive_of_one_token_sentences_is_the_pooled_term():
  """With one token per sentence MaxSim is a cosine, so the term equals the pooled bank term."""
  rng = np.random.default_rng(4)
  s = jnp.asarray(_unit(rng.normal(size=(3, 1, 6))), jnp.float32)
  bank = jnp.asarray(_unit(rng.normal(size=(5, 6))), jnp.float32)
  index = jnp.asarray([1, 4, 0])
  ones = jnp.ones((3, 1))
  a = maxsim_contrastive(s, ones, bank[:, None, :], jnp.ones((5, 1)), index, 0.1)[0]
  np.testing.assert_allclose(a, bank_contrastive(s, ones, bank, index, 0.1)[0], rtol=1e-5)


def test_reverse_contrastive_masks_repeats_and_invalid_columns():
  """English -> foreign InfoNCE over the batch: the column softmax of the pooled term; a
  repeated English sentence's other translation is no negative; invalid pairs count nowhere and
  are nobody's negative; the gradient reaches the foreign side only through the scores."""
  rng = np.random.default_rng(5)
  e = _unit(rng.normal(size=(4, 6)))
  f = jnp.asarray(_unit(rng.normal(size=(4, 6))), jnp.float32)
  valid = jnp.asarray([True, True, True, False])
  index = jnp.asarray([0, 1, 0, 2])  # rows 0 and 2 translate the same English sentence
  tau = 0.1
  loss, m = reverse_contrastive(jnp.asarray(e, jnp.float32) @ f.T, valid, tau, index)
  sc = e @ np.asarray(f).T / tau
  want = [
    np.log(np.exp(sc[0, [0, 1]]).sum()) - sc[0, 0],  # column 2 (same sentence), 3 (invalid) out
    np.log(np.exp(sc[1, [0, 1, 2]]).sum()) - sc[1, 1],
    np.log(np.exp(sc[2, [1, 2]]).sum()) - sc[2, 2],
  ]
  np.testing.assert_allclose(loss, np.mean(want), rtol=1e-5)
  assert 0.0 <= float(m["reverse_top1"]) <= 1.0
  # Without repeats it is the pooled in-batch term with the roles swapped (columns = foreign).
  ones = jnp.ones((4, 1))
  swapped = sentence_contrastive(jnp.asarray(e, jnp.float32)[:, None], ones, f[:, None], ones, tau)
  full = reverse_contrastive(jnp.asarray(e, jnp.float32) @ f.T, jnp.ones(4, bool), tau)
  np.testing.assert_allclose(full[0], swapped[0], rtol=1e-5)
  g = jax.grad(
    lambda x: reverse_contrastive(jnp.asarray(e, jnp.float32) @ x.T, valid, tau, index)[0]
  )(f)
  assert np.all(np.asarray(g[3]) == 0) and np.all(np.isfinite(np.asarray(g)))


def test_bank_contrastive_soft_targets():
  """soft = lambda: the target mixes one-hot with the bank row's own softmax over the bank;
  soft = 0 is InfoNCE, and a bank whose rows are far apart makes both agree."""
  rng = np.random.default_rng(2)
  s = jnp.asarray(rng.normal(size=(3, 2, 4)), jnp.float32)
  sm = jnp.ones((3, 2))
  bank = rng.normal(size=(5, 4))
  bank = jnp.asarray(bank / np.linalg.norm(bank, axis=1, keepdims=True), jnp.float32)
  index = jnp.asarray([2, 0, 4])
  tau, lam = 0.2, 0.3
  ps = np.asarray(s).mean(1)
  ps /= np.linalg.norm(ps, axis=1, keepdims=True)
  logits = ps @ np.asarray(bank).T / tau
  logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  t = np.asarray(bank)[np.asarray(index)] @ np.asarray(bank).T / tau
  t = np.exp(t) / np.exp(t).sum(1, keepdims=True)
  y = (1 - lam) * np.eye(5)[np.asarray(index)] + lam * t
  want = np.mean(-(y * logp).sum(1))
  np.testing.assert_allclose(
    bank_contrastive(s, sm, bank, index, tau, soft=lam)[0], want, rtol=1e-5
  )
  np.testing.assert_allclose(
    bank_contrastive(s, sm, bank, index, tau, soft=0.0)[0],
    np.mean(-logp[np.arange(3), np.asarray(index)]),
    rtol=1e-5,
  )
  assert not np.isclose(want, np.mean(-logp[np.arange(3), np.asarray(index)]))
