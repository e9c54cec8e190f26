"""The objectives (``losses/objectives.py``): the frozen word-embedding table, the contrastive
term on top of an objective (in-batch and bank negatives), and a teacher of another model trained
through the student's output projection."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optical_jax.losses.objectives import DistillSpec, make_loss
from optical_jax.losses.ot import SinkhornConfig
from optical_jax.models import Encoder, EncoderConfig
from optical_jax.training.state import TrainState, make_optimizer
from optical_jax.training.steps import train_step

from train_fixtures import CFG, random_batch


@pytest.mark.slow
def test_frozen_embeddings_get_no_gradient_and_same_update():
  """Stopping the embedding gradient in the loss gives the same step as letting the
  optimiser discard it (and the table stays unchanged)."""
  from optical_jax.losses.objectives import freeze_word_embeddings

  module = Encoder(CFG)
  enc = module.init(jax.random.PRNGKey(0), np.ones((2, 4), np.int32), np.ones((2, 4), np.int32))
  teacher = {"encoder": enc}
  spec = DistillSpec(objective="optical")
  opt, _ = make_optimizer(1e-3, 10, 2, 0.01, 1.0, freeze_embeddings=True)
  batch = random_batch(0)
  out = []
  for loss_fn in (make_loss(module, spec), make_loss(module, spec, freeze_embeddings=True)):
    state = TrainState.create(jax.tree_util.tree_map(jnp.copy, {"encoder": enc}), opt, seed=0)
    state, _ = jax.jit(functools.partial(train_step, loss_fn=loss_fn, optimizer=opt))(
      state, batch, teacher
    )
    out.append(jax.device_get(state.params))
  emb = lambda p: p["encoder"]["params"]["embeddings"]["word_embeddings"]["embedding"]
  np.testing.assert_array_equal(emb(out[1]), emb(teacher))
  np.testing.assert_array_equal(emb(out[0]), emb(teacher))
  for a, b in zip(jax.tree_util.tree_leaves(out[0]), jax.tree_util.tree_leaves(out[1])):
    np.testing.assert_allclose(a, b, atol=1e-6)
  g = jax.jit(
    jax.grad(lambda p: freeze_word_embeddings(make_loss(module, spec))(p, teacher, batch, None)[0])
  )(teacher)
  assert not np.any(np.asarray(emb(g)))


@pytest.mark.parametrize(
  "objective",
  # both slow: the quick subset checks the term's values in tests/losses/test_kd_losses.py
  [
    pytest.param("optical", marks=pytest.mark.slow),
    pytest.param("kd_sentence", marks=pytest.mark.slow),
  ],
)
def test_contrastive_term_adds_to_the_objective(objective):
  """loss = objective_weight * objective + contrastive_weight * in-batch contrastive term, on the
  last layer's pooled states; objective_weight 0 leaves the term alone."""
  from optical_jax.losses.kd import sentence_contrastive  # pylint: disable=import-outside-toplevel
  from optical_jax.models.scoring import hidden_states  # pylint: disable=import-outside-toplevel

  module = Encoder(CFG)
  enc = module.init(jax.random.PRNGKey(0), np.ones((2, 4), np.int32), np.ones((2, 4), np.int32))
  student = {"encoder": jax.tree_util.tree_map(lambda x: x * 1.01, enc)}
  teacher = {"encoder": enc}
  batch = {k: jnp.asarray(v) for k, v in random_batch(3).items()}
  base = dict(objective=objective, sinkhorn=SinkhornConfig(max_iterations=100))

  def loss(**kw):  # jitted: a small model's compile is quicker than its op-by-op dispatch
    return jax.jit(make_loss(module, DistillSpec(**base, **kw)))(student, teacher, batch, None)

  plain, _ = loss()
  states = jax.jit(functools.partial(hidden_states, module, layer=-1))
  s = states(student["encoder"], batch["student_ids"], batch["student_mask"])
  t = states(enc, batch["teacher_ids"], batch["teacher_mask"])
  con, _ = sentence_contrastive(s, batch["student_mask"], t, batch["teacher_mask"], 0.1)
  both, metrics = loss(contrastive_weight=0.5, contrastive_temperature=0.1)
  np.testing.assert_allclose(both, plain + 0.5 * con, rtol=1e-5)
  np.testing.assert_allclose(metrics["objective_loss"], plain, rtol=1e-6)
  assert 0.0 <= float(metrics["in_batch_top1"]) <= 1.0
  alone, _ = loss(contrastive_weight=2.0, contrastive_temperature=0.1, objective_weight=0.0)
  np.testing.assert_allclose(alone, 2.0 * con, rtol=1e-5)
  with pytest.raises(ValueError, match="nothing to train"):
    DistillSpec(**base, objective_weight=0.0)
  with pytest.raises(ValueError, match="contrastive_negatives 'all'"):
    DistillSpec(**base, contrastive_negatives="all")


@pytest.mark.slow  # the term itself is checked in tests/losses/test_kd_losses.py (quick)
def test_maxsim_contrastive_term_on_token_vectors():
  """contrastive_ranker='maxsim': the term scores the student's last-layer unit token vectors
  against the teacher's by late interaction (losses/kd.py: maxsim_contrastive), in-batch or
  against a token bank; with the batch's own teacher tokens as the bank the two agree."""
  from optical_jax.losses.kd import maxsim_contrastive  # pylint: disable=import-outside-toplevel
  from optical_jax.models.scoring import token_embeddings  # pylint: disable=import-outside-toplevel

  module = Encoder(CFG)
  enc = module.init(jax.random.PRNGKey(0), np.ones((2, 4), np.int32), np.ones((2, 4), np.int32))
  student = {"encoder": jax.tree_util.tree_map(lambda x: x * 1.01, enc)}
  batch = {k: jnp.asarray(v) for k, v in random_batch(3).items()}
  tokens = jax.jit(functools.partial(token_embeddings, module))
  s = tokens(student, batch["student_ids"], batch["student_mask"])
  t = tokens({"encoder": enc}, batch["teacher_ids"], batch["teacher_mask"])
  rows = jnp.where(jnp.any(batch["teacher_mask"] > 0, -1), jnp.arange(t.shape[0]), -1)
  con, _ = maxsim_contrastive(s, batch["student_mask"], t, batch["teacher_mask"], rows, 0.1)
  base = dict(
    objective="kd_sentence",
    contrastive_weight=2.0,
    contrastive_temperature=0.1,
    objective_weight=0.0,
    contrastive_ranker="maxsim",
  )
  got, m = jax.jit(make_loss(module, DistillSpec(**base)))(student, {"encoder": enc}, batch, None)
  np.testing.assert_allclose(got, 2.0 * con, rtol=1e-5)
  assert 0.0 <= float(m["maxsim_top1"]) <= 1.0
  bank = {"encoder": enc, "english_bank_tokens": t, "english_bank_mask": batch["teacher_mask"]}
  spec = DistillSpec(**base, contrastive_negatives="bank")
  got_bank, _ = jax.jit(make_loss(module, spec))(student, bank, dict(batch, bank_index=rows), None)
  np.testing.assert_allclose(got_bank, got, rtol=1e-5)
  # Sampled negatives: the batch's own rows first, then draws; a bank of the batch alone
  # gives the same softmax whatever is drawn (each draw repeats a batch row: excluded for its
  # own row, a negative for the others, as in the full bank, once more).
  sampled = DistillSpec(**base, contrastive_negatives="bank", contrastive_bank_sample=5)
  got_s, _ = jax.jit(make_loss(module, sampled))(
    student, bank, dict(batch, bank_index=rows), jax.random.PRNGKey(3)
  )
  assert np.isfinite(float(got_s)) and float(got_s) >= float(got_bank) - 1e-5
  # The reverse direction: English (teacher tokens) -> the batch's foreign (student tokens).
  from optical_jax.losses.kd import maxsim_mean_scores, reverse_contrastive  # pylint: disable=import-outside-toplevel

  valid = jnp.any(batch["student_mask"] > 0, -1) & (rows >= 0)
  sc = maxsim_mean_scores(t, batch["teacher_mask"], s, batch["student_mask"])
  rev, _ = reverse_contrastive(sc, valid, 0.1)
  both, m = jax.jit(make_loss(module, DistillSpec(**base, contrastive_reverse=0.5)))(
    student, {"encoder": enc}, batch, None
  )
  np.testing.assert_allclose(both, 2.0 * (con + 0.5 * rev), rtol=1e-5)
  assert "reverse_top1" in m
  with pytest.raises(ValueError, match="contrastive_ranker 'colbert'"):
    DistillSpec(**dict(base, contrastive_ranker="colbert"))
  with pytest.raises(ValueError, match="contrastive_soft is for contrastive_ranker='dense'"):
    DistillSpec(**base, contrastive_negatives="bank", contrastive_soft=0.5)


@pytest.mark.slow  # the quick subset trains with the bank in test_teacher_of_another_model_...
def test_bank_negatives_in_the_step():
  """contrastive_negatives='bank': the term reads the teacher's English bank and the batch's
  bank_index; with the batch's own teacher vectors as the bank it equals the in-batch term."""
  from optical_jax.models.pooling import l2_normalize, pool  # pylint: disable=import-outside-toplevel
  from optical_jax.models.scoring import hidden_states  # pylint: disable=import-outside-toplevel

  module = Encoder(CFG)
  enc = module.init(jax.random.PRNGKey(0), np.ones((2, 4), np.int32), np.ones((2, 4), np.int32))
  student = {"encoder": jax.tree_util.tree_map(lambda x: x * 1.01, enc)}
  batch = {k: jnp.asarray(v) for k, v in random_batch(3).items()}
  t = hidden_states(module, enc, batch["teacher_ids"], batch["teacher_mask"], -1)
  own = l2_normalize(pool(t, batch["teacher_mask"], "mean"))
  extra = l2_normalize(
    jnp.asarray(np.random.default_rng(0).normal(size=(5, own.shape[1])), jnp.float32)
  )
  base = dict(objective="kd_sentence", contrastive_weight=1.0, contrastive_temperature=0.1)
  batch_loss, _ = make_loss(module, DistillSpec(**base))(student, {"encoder": enc}, batch, None)
  bank_spec = DistillSpec(**base, contrastive_negatives="bank")
  assert bank_spec.uses_bank and not DistillSpec(**base).uses_bank
  teacher = {"encoder": enc, "english_bank": own}
  with_index = dict(batch, bank_index=jnp.arange(own.shape[0], dtype=jnp.int32))
  same, m = make_loss(module, bank_spec)(student, teacher, with_index, None)
  np.testing.assert_allclose(same, batch_loss, rtol=1e-5)
  assert "bank_top1" in m
  # More negatives: the loss can only grow.
  bigger, _ = make_loss(module, bank_spec)(
    student, {"encoder": enc, "english_bank": jnp.concatenate([own, extra])}, with_index, None
  )
  assert float(bigger) > float(same)


@pytest.mark.parametrize(
  "objective",
  [
    pytest.param("optical", marks=pytest.mark.slow),
    # all slow (a train step per objective); the quick subset checks the projection's export
    # (tests/loading/test_hf_loading.py) and its fit (tests/training)
    pytest.param("kd_sentence", marks=pytest.mark.slow),
    pytest.param("kd_token", marks=pytest.mark.slow),
  ],
)
def test_teacher_of_another_model_trains_the_projection(objective):
  """A teacher of another family and width (MPNet, d=48) and a student (BERT, d=32) with an
  output projection 32 -> 48: every objective (with the bank term) trains student and
  projection, never the teacher, and fits a fixed batch."""
  student_cfg = CFG.replace(output_dim=48)
  teacher_cfg = EncoderConfig(
    family="mpnet",
    vocab_size=90,
    hidden_size=48,
    num_layers=2,
    num_heads=4,
    intermediate_size=64,
    max_position_embeddings=40,
    type_vocab_size=0,
    pad_token_id=1,
    relative_attention_num_buckets=8,
  )
  student, teacher = Encoder(student_cfg), Encoder(teacher_cfg)
  ones = np.ones((2, 4), np.int32)
  s_params = student.init(jax.random.PRNGKey(0), ones, ones)
  assert s_params["params"]["output_projection"]["kernel"].shape == (32, 48)
  out = student.apply(s_params, ones, ones, output_hidden_states=True)
  assert out.last_hidden_state.shape == (2, 4, 48) and out.hidden_states.shape[-1] == 32
  rng = np.random.default_rng(3)
  bank = rng.normal(size=(20, 48)).astype(np.float32)
  frozen = {
    "encoder": teacher.init(jax.random.PRNGKey(1), ones, ones),
    "english_bank": bank / np.linalg.norm(bank, axis=1, keepdims=True),
  }
  batch = dict(random_batch(0, b=8), bank_index=np.arange(8, dtype=np.int32))
  spec = DistillSpec(
    objective=objective,
    sinkhorn=SinkhornConfig(max_iterations=100),
    contrastive_weight=1.0,
    contrastive_negatives="bank",
  )
  loss_fn = make_loss(student, spec, teacher_module=teacher)
  opt, _ = make_optimizer(3e-3, 30, 0, 0.0, 1.0)
  state = TrainState.create({"encoder": s_params}, opt, seed=0)
  step = jax.jit(functools.partial(train_step, loss_fn=loss_fn, optimizer=opt))
  losses = []
  for _ in range(12):
    state, metrics = step(state, batch, frozen)
    losses.append(float(metrics["loss"]))
  assert np.all(np.isfinite(losses)) and losses[-1] < 0.8 * losses[0], losses
  moved = state.params["encoder"]["params"]["output_projection"]["kernel"]
  assert not np.allclose(moved, s_params["params"]["output_projection"]["kernel"])
  with pytest.raises(ValueError, match="last layer only"):
    make_loss(student, dataclasses.replace(spec, layer=1), teacher_module=teacher)
