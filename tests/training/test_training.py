"""Training machinery: sharded == single-device steps, determinism, NaN stop,
kill -9 resume, the exported student."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optical_jax.training import sharding
from optical_jax.training.metric_log import check_finite

from hf_fixtures import make_checkpoint
from train_fixtures import random_batch, run_steps, single_device_mesh

REPO = Path(__file__).resolve().parents[2]


def test_eight_devices_available():
  assert jax.device_count() == 8, "tests/conftest.py sets XLA_FLAGS for 8 CPU devices"


@pytest.mark.parametrize(
  "objective",
  [
    pytest.param("optical", marks=pytest.mark.slow),
    # all slow: the quick subset's sharded check is test_loss_decreases_and_same_seed_same_params
    pytest.param("kd_sentence", marks=pytest.mark.slow),
    pytest.param("kd_token", marks=pytest.mark.slow),
  ],
)
def test_sharded_step_equals_single_device(objective):
  """data=8: the loss trajectory of 3 steps within 1e-5 relative of one device, parameters
  within 2e-6 (float32 reductions in another order)."""
  p1, l1 = run_steps(single_device_mesh(), objective, steps=3)
  p8, l8 = run_steps(sharding.make_mesh(data=8), objective, steps=3)
  np.testing.assert_allclose(l1, l8, rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(p1), jax.tree_util.tree_leaves(p8)):
    np.testing.assert_allclose(a, b, atol=2e-6)


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["optical", "kd_token"])
def test_fsdp_mesh_equals_single_device(objective):
  """data=4 x fsdp=2 with every parameter sharded: the same tolerances as data=8."""
  p1, l1 = run_steps(single_device_mesh(), objective, steps=3)
  p2, l2 = run_steps(sharding.make_mesh(data=4, fsdp=2), objective, steps=3, fsdp_min_size=1)
  np.testing.assert_allclose(l1, l2, rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(p1), jax.tree_util.tree_leaves(p2)):
    np.testing.assert_allclose(a, b, atol=2e-6)


@pytest.mark.slow
def test_bank_step_sharded_equals_single_device():
  """The English bank split over fsdp (data=4 x fsdp=2, every array sharded) and the batch's
  bank_index over data: the same steps as one device."""
  p1, l1 = run_steps(single_device_mesh(), "kd_sentence", steps=3, bank=True)
  p2, l2 = run_steps(
    sharding.make_mesh(data=4, fsdp=2), "kd_sentence", steps=3, fsdp_min_size=1, bank=True
  )
  np.testing.assert_allclose(l1, l2, rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(p1), jax.tree_util.tree_leaves(p2)):
    np.testing.assert_allclose(a, b, atol=2e-6)


@pytest.mark.slow  # quick: the in-process job trains OPTICAL end to end (finite, logged losses)
def test_loss_decreases_and_same_seed_same_params():
  """OPTICAL on 8 devices, 6 steps on one batch: the loss falls at every step after the warm-up's
  first (learning rate 0); the same steps again from the same state are bit-identical."""
  mesh = sharding.make_mesh(data=8)
  (pa, la), (pb, lb) = run_steps(mesh, "optical", batches=[random_batch(0)] * 6, repeats=2)
  assert la[1] == pytest.approx(la[0], rel=1e-6)  # step 1 updated with learning rate 0
  assert all(b < a for a, b in zip(la[1:], la[2:])), la
  assert la[-1] < 0.95 * la[0], la
  assert la == lb
  for a, b in zip(jax.tree_util.tree_leaves(pa), jax.tree_util.tree_leaves(pb)):
    np.testing.assert_array_equal(a, b)


def test_mesh_errors():
  with pytest.raises(ValueError, match="mesh data=3 x fsdp=1 != 8 devices"):
    sharding.make_mesh(data=3)
  with pytest.raises(ValueError, match="batch size 12 is not divisible by the 8 data shards"):
    sharding.global_batch_size_ok(12, sharding.make_mesh())


def test_check_finite_names_step_and_metric():
  check_finite(3, {"loss": 1.0})
  with pytest.raises(FloatingPointError, match=r"non-finite metrics at step 7: \{'loss': nan\}"):
    check_finite(7, {"loss": float("nan"), "grad_norm": 1.0})


# --- the main job, end to end, as a subprocess -----------------------------------------------------


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory):
  d = tmp_path_factory.mktemp("xlmr")
  make_checkpoint(d, "xlm-roberta")
  return d


def _train(workdir, ckpt, *extra, env_extra=None, check=True, config="tiny.py"):
  env = dict(os.environ, PYTHONPATH=str(REPO), **(env_extra or {}))
  cmd = [
    sys.executable,
    str(REPO / "train.py"),
    f"--config={REPO / 'configs' / config}",
    f"--config.model={ckpt}",
    f"--workdir={workdir}",
    "--config.train.num_steps=8",
    "--config.train.checkpoint_every=2",
    *extra,
  ]
  proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  if check and proc.returncode != 0:
    raise AssertionError(f"train.py failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
  return proc


def _student_params(workdir):
  from safetensors.numpy import load_file

  return load_file(str(Path(workdir) / "student" / "model.safetensors"))


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, small_ckpt):
  """(work dir, train.py's stderr) of one uninterrupted :func:`_train` run with JAX's compile
  log on: the reference of the kill -9 tests and the compile count's log (one process, not
  three)."""
  ref = tmp_path_factory.mktemp("reference_run") / "ref"
  proc = _train(ref, small_ckpt, env_extra={"JAX_LOG_COMPILES": "1"})
  return ref, proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("kill_at,async_save", [(5, "False"), (4, "True")])
def test_kill9_then_rerun_equals_uninterrupted(
  tmp_path, small_ckpt, reference_run, kill_at, async_save
):
  """kill -9 after step 5 (mid-interval) or right as step 4's async save starts; rerunning the same
  command resumes from the last complete checkpoint and ends with the same parameters."""
  ref = reference_run[0]
  work = tmp_path / "killed"
  args = (f"--config.train.async_checkpointing={async_save}",)
  proc = _train(
    work, small_ckpt, *args, env_extra={"OPTICAL_JAX_KILL_AT_STEP": str(kill_at)}, check=False
  )
  assert proc.returncode == -9, proc.stderr[-2000:]
  assert not (work / "student").exists()
  proc = _train(work, small_ckpt, *args)
  assert "resumed from step" in proc.stderr
  a, b = _student_params(ref), _student_params(work)
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  assert json.loads((work / "results.json").read_text())["training"]["resumed_from"] in (2, 4)


@pytest.mark.slow
def test_train_step_compiles_once_per_bucket(reference_run):
  """8 steps over the tiny config's two length buckets compile the train step at most twice
  (one program per bucket, none per step): JAX's own compile log, counted."""
  compiles = [
    line for line in reference_run[1].splitlines() if "Compiling" in line and "train_step" in line
  ]
  assert 1 <= len(compiles) <= 2, "\n".join(compiles)


@pytest.mark.slow
@pytest.mark.parametrize(
  "base,mesh", [("gpu", {"data": 8, "fsdp": 1}), ("tpu_pod", {"data": 2, "fsdp": 4})]
)
def test_accelerator_configs_train_tiny_on_eight_devices(tmp_path, small_ckpt, base, mesh):
  """configs/gpu.py and configs/tpu_pod.py, made tiny (``configs/tiny.py:<base>``), train and
  evaluate on 8 simulated devices with their own settings (bf16, remat and one compiled block for
  the pod, its fsdp mesh and 128-token capacities, one Sinkhorn loop per batch)."""
  proc = _train(tmp_path, small_ckpt, config=f"tiny.py:{base}")
  assert f"mesh {mesh}" in proc.stderr
  written = json.loads((tmp_path / "config.json").read_text())
  assert written["dtype"] == "bfloat16" and written["ot"]["group_size"] == 0
  assert written["distributed"] is False and written["train"]["batch_size"] == 8
  if base == "tpu_pod":
    assert written["remat"] is True and written["layer_unroll"] == 1
    assert written["train"]["unpad_multiple"] == 128
  metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  losses = [m["loss"] for m in metrics if "loss" in m]
  assert losses and np.isfinite(losses).all()
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["training"]["steps"] == 8 and set(results["splits"]) == {"sw", "de", "eng"}


@pytest.mark.slow
def test_nan_stops_with_clear_error(tmp_path, small_ckpt):
  proc = _train(
    tmp_path,
    small_ckpt,
    "--config.train.learning_rate=1e30",
    "--config.train.grad_clip=0",
    "--config.method=kd_sentence",
    check=False,
  )
  assert proc.returncode != 0
  assert "FloatingPointError: non-finite metrics at step" in proc.stderr


@pytest.mark.slow
def test_exported_student_loads_everywhere(tmp_path, small_ckpt):
  """The student directory loads with load_encoder (by workdir) and with transformers, identically."""
  torch = pytest.importorskip("torch")
  import transformers
  from optical_jax.loading import load_encoder

  _train(tmp_path, small_ckpt, "--config.method=kd_token")
  student = load_encoder(str(tmp_path))
  assert student.meta["method"] == "kd_token" and student.meta["teacher"] == str(small_ckpt)
  batch = student.tokenizer(["aa bb cc", "dd"])
  ours = np.asarray(
    student.module.apply(student.params, batch.input_ids, batch.attention_mask).last_hidden_state
  )
  ref = transformers.XLMRobertaModel.from_pretrained(str(tmp_path / "student")).eval()
  with torch.no_grad():
    theirs = ref(
      input_ids=torch.tensor(batch.input_ids, dtype=torch.long),
      attention_mask=torch.tensor(batch.attention_mask),
    ).last_hidden_state.numpy()
  assert np.abs(ours - theirs)[batch.attention_mask.astype(bool)].max() <= 1e-4
  teacher = load_encoder(str(small_ckpt))
  diff = [
    np.abs(np.asarray(a) - np.asarray(b)).max()
    for a, b in zip(
      jax.tree_util.tree_leaves(student.params), jax.tree_util.tree_leaves(teacher.params)
    )
  ]
  assert max(diff) > 0  # it was trained
  from optical_jax.commands import embed

  (tmp_path / "in.txt").write_text("aa bb cc\ndd\n")
  assert (
    embed.main(
      [
        "encode",
        f"--model={tmp_path}",
        f"--input={tmp_path / 'in.txt'}",
        f"--output={tmp_path / 'e.npy'}",
        "--pooling=mean",
      ]
    )
    == 0
  )
  m = batch.attention_mask[..., None]
  np.testing.assert_allclose(np.load(tmp_path / "e.npy"), (ours * m).sum(1) / m.sum(1), atol=1e-5)


@pytest.mark.slow
def test_teacher_finetune_then_distill(tmp_path, small_ckpt):
  """English triples fine-tune a ColBERT teacher (with a head), which the student then copies."""
  import random

  rng = random.Random(0)
  words = [chr(97 + i % 26) * (1 + i // 26) for i in range(60)]
  lines = []
  for _ in range(48):
    q, neg = rng.sample(words, 3), rng.sample(words, 5)
    lines.append(" ".join(q) + "\t" + " ".join(q + rng.sample(words, 3)) + "\t" + " ".join(neg))
  triples = tmp_path / "triples.tsv"
  triples.write_text("\n".join(lines) + "\n")
  work = tmp_path / "work"
  _train(
    work,
    small_ckpt,
    f"--config.teacher.triples={triples}",
    "--config.teacher.num_steps=6",
    "--config.teacher.batch_size=8",
    "--config.teacher.projection_dim=16",
    "--config.teacher.learning_rate=1e-3",
    "--config.train.log_every=1",
    "--config.teacher.ranker=maxsim",
  )
  logged = [json.loads(l) for l in (work / "teacher" / "metrics.jsonl").read_text().splitlines()]
  assert logged[-1]["contrastive"] < logged[0]["contrastive"]
  from optical_jax.loading import load_encoder

  teacher = load_encoder(str(work / "teacher" / "model"))
  student = load_encoder(str(work))
  assert teacher.head["kernel"].shape == (32, 16) and student.head["kernel"].shape == (32, 16)
  assert student.meta["teacher"] == str(work / "teacher" / "model")
  assert not np.array_equal(np.asarray(teacher.head["kernel"]), np.asarray(student.head["kernel"]))


def test_triples_reader_errors(tmp_path):
  from optical_jax.data.triples import read_triples

  good = tmp_path / "t.jsonl"
  good.write_text('{"query": "q", "positive": "p", "negative": ["n1", "n2"]}\n')
  assert read_triples(good)[0].negatives == ("n1", "n2")
  bad = tmp_path / "b.tsv"
  bad.write_text("q\tp\tn\nq\tp\n")
  with pytest.raises(ValueError, match=r"b\.tsv:2: expected a query, a positive and at least one"):
    read_triples(bad)
  badj = tmp_path / "b.jsonl"
  badj.write_text('{"query": "q", "positive": "p", "negative": "n"}\n{"query": "q", \n')
  with pytest.raises(ValueError, match=r"b\.jsonl:2: not valid JSON"):
    read_triples(badj)
  listj = tmp_path / "l.jsonl"  # valid JSON, not an object: was an AttributeError
  listj.write_text('{"query": "q", "positive": "p", "negative": "n"}\n["q", "p", "n"]\n')
  with pytest.raises(ValueError, match=r"l\.jsonl:2: a JSON list, not an object; expected"):
    read_triples(listj)


@pytest.mark.parametrize(
  "config_arg, override, expected",
  [
    # With --config given, ml_collections applies overrides inside app.run ...
    pytest.param(
      "tiny",
      "--config.train.nope=1",
      "train: error: --config.train.nope: the config has no key 'nope' (see the config "
      "file for the available fields)",
      marks=pytest.mark.slow,
    ),
    # ... without it, while defining the flag (import time); ml_collections adds a suggestion.
    # (slow too: a train.py process; the quick subset keeps test_a_bad_flag_is_a_one_line_error)
    pytest.param(
      None,
      "--config.train.num_step=5",
      "train: error: --config.train.num_step: the config has no key 'num_step' (did you mean "
      "'num_steps'?)",
      marks=pytest.mark.slow,
    ),
  ],
)
def test_unknown_config_key_is_a_one_line_error(tmp_path, config_arg, override, expected):
  args = [f"--config={REPO / 'configs' / 'tiny.py'}"] if config_arg else []
  proc = subprocess.run(
    [sys.executable, str(REPO / "train.py"), *args, override, f"--workdir={tmp_path}"],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
    env=dict(os.environ, PYTHONPATH=str(REPO)),
  )
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [expected]


@pytest.mark.parametrize(
  "args, expected",
  [
    # A config file that raises while building the config: absl printed its traceback. (The
    # line's text is quick in process, tests/test_cli.py; train.py's one-line exit 2 stays
    # quick in test_unknown_config_key_is_a_one_line_error.)
    pytest.param(
      [f"--config={REPO / 'configs' / 'tiny.py'}:nope"],
      f"train: error: flag --config={REPO / 'configs' / 'tiny.py'}:nope: Error whilst parsing config "
      "file: ValueError: configs/tiny.py:nope: can shrink default, gpu, tpu_pod, afriqa, gap_study, "
      "afriqa_study (--helpshort lists the flags)",
      marks=pytest.mark.slow,
    ),
    # A value of the wrong type: absl's "FATAL Flags parsing error" block (in process in
    # tests/test_cli.py; here through train.py).
    pytest.param(
      [f"--config={REPO / 'configs' / 'tiny.py'}", "--config.train.num_steps=abc"],
      "train: error: flag --config.train.num_steps=abc: invalid literal for int() with "
      "base 10: 'abc' (--helpshort lists the flags)",
      marks=pytest.mark.slow,
    ),
  ],
)
def test_a_bad_flag_is_a_one_line_error(tmp_path, args, expected):
  proc = subprocess.run(
    [sys.executable, str(REPO / "train.py"), *args, f"--workdir={tmp_path}"],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
    env=dict(os.environ, PYTHONPATH=str(REPO)),
  )
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [expected]


def test_corrupt_latest_checkpoint_falls_back(tmp_path, caplog):
  from optical_jax.training.checkpoints import Checkpointer, abstract_like

  ck = Checkpointer(tmp_path / "ck", every=2, keep=3, async_save=False)
  states = {s: {"w": jnp.full((4, 3), float(s)), "step": jnp.asarray(s)} for s in (2, 4)}
  for s, st in states.items():
    assert ck.save(s, st)
  assert not ck.save(3, states[2])  # not a multiple of `every`
  ck.close()
  for f in (tmp_path / "ck" / "4").rglob("*"):  # corrupt every file of the newest step
    if f.is_file():
      f.write_bytes(b"\0garbage")
  ck = Checkpointer(tmp_path / "ck", every=2, keep=3, async_save=False)
  with caplog.at_level("WARNING"):
    restored = ck.restore_latest(abstract_like(states[2]))
  assert int(restored["step"]) == 2 and float(restored["w"][0, 0]) == 2.0
  assert "checkpoint 4" in caplog.text and "trying an older one" in caplog.text


def test_tiny_job_in_process_train_checkpoint_export_resume(tmp_path):
  """configs/tiny.py on the built-in random:tiny encoder, in this process and without torch:
  distillation with checkpoints and metrics inside the loop, export, reload, and a rerun of the
  finished dir that trains nothing and exports the same student."""
  from configs import tiny
  from optical_jax import experiment
  from optical_jax.encode import encode_texts
  from optical_jax.loading import load_encoder

  config = tiny.get_config()
  assert config.model == "random:tiny"
  config.data.buckets = (32,)  # one compiled train step (the tiny config's two: the slow tests)
  out = experiment.train_and_evaluate(config, str(tmp_path))
  assert out["training"]["steps"] == 6 and out["training"]["resumed_from"] == 0
  logged = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in logged] == [2, 4, 6]
  assert all(np.isfinite(r["loss"]) for r in logged)
  assert (
    sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())[-1] == 6
  )
  student, start = load_encoder(str(tmp_path)), load_encoder("random:tiny")
  assert student.meta["method"] == "optical" and student.meta["teacher"] == "random:tiny"
  assert student.meta["ranker"] == "dense"  # what eval.py --ranker auto follows
  assert student.meta["query_only"] is True  # eval.py refuses it as --doc_model
  moved = [
    np.abs(np.asarray(a) - np.asarray(b)).max()
    for a, b in zip(
      jax.tree_util.tree_leaves(student.params), jax.tree_util.tree_leaves(start.params)
    )
  ]
  assert max(moved) > 0
  vecs = encode_texts(student, ["Habari ya asubuhi", "Guten Morgen"], progress=False)
  assert vecs.shape == (2, 32) and np.all(np.isfinite(vecs))
  again = experiment.train_and_evaluate(config, str(tmp_path))
  assert again["training"]["resumed_from"] == 6
  np.testing.assert_array_equal(
    encode_texts(load_encoder(str(tmp_path)), ["Habari ya asubuhi"], progress=False), vecs[:1]
  )


@pytest.mark.slow
def test_bad_input_is_one_line_and_the_env_var_shows_the_traceback(tmp_path):
  """A reader's error (file and line) ends train.py with one line and exit 1;
  OPTICAL_JAX_TRACEBACK=1 shows the traceback instead."""
  for lang in ("sw", "de"):
    (tmp_path / f"{lang}.tsv").write_text("only one field\n")
  cmd = [
    sys.executable,
    str(REPO / "train.py"),
    f"--config={REPO / 'configs' / 'tiny.py'}",
    "--config.data.source=tsv",
    f"--config.data.path={tmp_path}/{{lang}}.tsv",
    f"--workdir={tmp_path / 'w'}",
  ]
  env = dict(os.environ, PYTHONPATH=str(REPO))
  env.pop("OPTICAL_JAX_TRACEBACK", None)
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
  assert proc.returncode == 1, proc.stderr[-2000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith(f"train: error: {tmp_path / 'sw.tsv'}:1: ") or last.startswith(
    f"train: error: {tmp_path / 'de.tsv'}:1: "
  ), last
  assert "Traceback" not in proc.stderr
  proc = subprocess.run(
    cmd,
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
    env=dict(env, OPTICAL_JAX_TRACEBACK="1"),
  )
  assert proc.returncode == 1 and "Traceback" in proc.stderr
