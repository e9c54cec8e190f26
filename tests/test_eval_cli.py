"""eval.py end to end: runs written, metrics equal to pytrec_eval on those runs
(trec_eval -c: a judged query missing from the run scores 0), missing queries
counted, reports written, errors exit non-zero."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from compile_flags import xla_flags
from hf_fixtures import make_checkpoint
from optical_jax.testsets.trec_files import read_trec_run
from optical_jax.errors import UsageError
from optical_jax.evaluation.per_query import read_per_query
from optical_jax.retrieval.collection_eval import run_eval

REPO = Path(__file__).resolve().parents[1]
pytrec_eval = pytest.importorskip("pytrec_eval")
#: A model name that does not load: a refusal with the expected message came before any load.
NO_MODEL = "/nonexistent/model"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  root = tmp_path_factory.mktemp("evalcli")
  make_checkpoint(root / "model", "bert")
  coll = root / "coll"
  (coll / "queries").mkdir(parents=True)
  rng = np.random.default_rng(0)
  words = [chr(97 + i % 26) * (1 + i // 26) for i in range(60)]
  docs = [{"doc_id": f"d{i}", "text": " ".join(rng.choice(words, 12))} for i in range(40)]
  (coll / "docs.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n")
  qrels, q_sw, q_de = [], [], []
  for i in range(15):
    rel = rng.choice(40, 2, replace=False)
    qrels += [f"q{i} 0 d{rel[0]} 1", f"q{i} 0 d{rel[1]} {int(rng.integers(1, 3))}"]
    text = " ".join(docs[rel[0]]["text"].split()[:4])
    q_sw.append(f"q{i}\t{text}")
    q_de.append(f"q{i}\t{text[::-1]}")
  qrels.append("q_unasked 0 d3 1")  # judged, but in no query file: must count as missing
  (coll / "qrels.txt").write_text("\n".join(qrels) + "\n")
  (coll / "queries" / "swa.tsv").write_text("\n".join(q_sw) + "\n")
  (coll / "queries" / "deu.tsv").write_text("\n".join(q_de) + "\n")
  return root


def _eval(root, out, *extra, devices=1):
  cmd = [
    sys.executable,
    str(REPO / "eval.py"),
    f"--query_model={root / 'model'}",
    f"--collection={root / 'coll'}",
    f"--output={out}",
    *extra,
  ]
  return subprocess.run(
    cmd,
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=600,
    env={
      "PYTHONPATH": str(REPO),
      "PATH": "/usr/bin:/bin",
      "HOME": str(root),
      "JAX_PLATFORMS": "cpu",
      "XLA_FLAGS": xla_flags(devices),  # the tests' compile settings
    },
  )


@pytest.mark.parametrize("ranker", [pytest.param("maxsim", marks=pytest.mark.slow), "dense"])
def test_metrics_equal_pytrec_eval_on_written_runs(setup, tmp_path, ranker):
  out = tmp_path / "out"
  proc = _eval(setup, out, f"--ranker={ranker}", "--k=10")
  assert proc.returncode == 0, proc.stderr[-3000:]
  metrics = json.loads((out / "metrics.json").read_text())
  qrels = {}
  for line in (setup / "coll" / "qrels.txt").read_text().split("\n"):
    if line:
      q, _, d, r = line.split()
      qrels.setdefault(q, {})[d] = int(r)
  for lang in ("swa", "deu"):
    run = read_trec_run(out / f"run.{lang}.trec")
    assert len(run) == 15 and all(len(v) == 10 for v in run.values())
    per_q = pytrec_eval.RelevanceEvaluator(qrels, {"map", "recip_rank", "P_10"}).evaluate(run)
    # trec_eval -c: q_unasked is judged but not in the run -> 0, averaged over 16 queries.
    want_map = sum(per_q[q]["map"] for q in per_q) / 16
    got = metrics["languages"][lang]
    assert got["mean"]["MAP"] == pytest.approx(want_map, abs=1e-6)
    assert got["mean"]["MRR"] == pytest.approx(
      sum(per_q[q]["recip_rank"] for q in per_q) / 16, abs=1e-6
    )
    assert got["mean"]["P@10"] == pytest.approx(sum(per_q[q]["P_10"] for q in per_q) / 16, abs=1e-6)
    assert got["missing_queries"] == ["q_unasked"] and got["queries_scored"] == 16  # in the mean
    # the trec_eval -q view beside metrics.json: every judged query (q_unasked at 0), the means
    per_query = read_per_query(out / f"per_query.{lang}.tsv")
    assert set(per_query) == set(got["mean"]) and len(per_query["MAP"]) == 17  # 16 + all
    assert per_query["MAP"]["q_unasked"] == 0.0 and per_query["MAP"]["all"] == got["mean"]["MAP"]
    for q in per_q:
      assert per_query["MRR"][q] == pytest.approx(per_q[q]["recip_rank"], abs=1e-12)
    tags = {line.split()[5] for line in (out / f"run.{lang}.trec").read_text().splitlines()}
    assert tags == {str(setup / "model")}  # the run tag is the query model's name
  report = (out / "report.md").read_text()
  assert "| swa |" in report and "trec_eval -c" in report


@pytest.mark.slow
def test_measures_take_ir_measures_names(setup, tmp_path):
  """--measures AP,nDCG@10,RR: those, in metrics.json and per_query.<lang>.tsv."""
  out = tmp_path / "out"
  proc = _eval(setup, out, "--ranker=dense", "--k=10", "--langs=swa", "--measures=AP,nDCG@10,RR")
  assert proc.returncode == 0, proc.stderr[-3000:]
  mean = json.loads((out / "metrics.json").read_text())["languages"]["swa"]["mean"]
  assert list(mean) == ["AP", "nDCG@10", "RR"]
  lines = (out / "per_query.swa.tsv").read_text().splitlines()
  assert lines[0].split("\t")[:2] == ["q0", "AP"] and lines[-1].startswith("all\tRR\t")


@pytest.mark.slow  # check_measures itself is quick: tests/evaluation/test_metrics.py
def test_unknown_measure_is_refused_at_parsing(setup, tmp_path):
  """An unknown --measures name: one line, exit 2, before anything is read or written."""
  bad = _eval(setup, tmp_path / "bad", "--measures=AP,nDCG@x")
  assert bad.returncode == 2 and not (tmp_path / "bad").exists()
  err = bad.stderr.strip().splitlines()
  assert len(err) == 1 and "unknown measure 'nDCG@x'" in err[0], bad.stderr


@pytest.mark.slow
def test_rerank_restricts_to_first_stage(setup, tmp_path):
  first = tmp_path / "first"
  assert _eval(setup, first, "--ranker=dense", "--k=5").returncode == 0
  out = tmp_path / "rerank"
  proc = _eval(setup, out, "--ranker=maxsim", f"--first_stage={first}/run.{{lang}}.trec", "--k=100")
  assert proc.returncode == 0, proc.stderr[-3000:]
  for lang in ("swa", "deu"):
    a, b = read_trec_run(first / f"run.{lang}.trec"), read_trec_run(out / f"run.{lang}.trec")
    assert all(set(b[q]) == set(a[q]) for q in a)


@pytest.mark.slow  # three eval.py processes; the refusals themselves are quick in-process tests
def test_errors_exit_nonzero(setup, tmp_path):
  proc = _eval(setup, tmp_path / "x", "--langs=yor")
  assert proc.returncode == 1
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("eval: error:") and "yor" in last and "swa" in last
  bad = tmp_path / "badcoll"
  (bad / "queries").mkdir(parents=True)
  (bad / "docs.jsonl").write_text('{"doc_id": "a", "text": "x"}\n')
  (bad / "qrels.txt").write_text("q1 0 a\n")
  (bad / "queries" / "swa.tsv").write_text("q1\tx\n")
  cmd = [
    sys.executable,
    str(REPO / "eval.py"),
    f"--query_model={setup / 'model'}",
    f"--collection={bad}",
    f"--output={tmp_path / 'y'}",
  ]
  env = {
    "PYTHONPATH": str(REPO),
    "PATH": "/usr/bin:/bin",
    "HOME": str(tmp_path),
    "XLA_FLAGS": xla_flags(),
  }
  proc = subprocess.run(
    cmd,
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
    env=env,
  )
  assert proc.returncode == 1
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith(f"eval: error: {bad / 'qrels.txt'}:1: expected 4 ")
  (bad / "qrels.txt").write_text("q1 0 a 1\n")
  (bad / "docs.jsonl").write_text('{"doc_id": "a", "text": "x"}\n{"doc_id": "a", "text": "y"}\n')
  proc = subprocess.run(
    cmd,
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
    env=env,
  )
  assert proc.returncode == 1
  assert (
    proc.stderr.strip()
    .splitlines()[-1]
    .startswith(f"eval: error: {bad / 'docs.jsonl'}:2: duplicate doc_id 'a' (first on line 1)")
  )


def test_k_below_one_is_refused(setup, tmp_path):
  proc = _eval(setup, tmp_path / "k0", "--k=0")
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1] == (
    "eval: error: k=0: the run depth must be at least 1"
  )
  assert not (tmp_path / "k0").exists()


def test_an_output_folder_that_is_not_an_output_set_is_refused(setup, tmp_path):
  """--output naming a collection, a work dir or any folder with files and no metrics.json is
  refused before any work, and the folder is left as it was (the set replaces its folder whole)."""
  victim = tmp_path / "workdir"
  victim.mkdir()
  (victim / "results.json").write_text("{}")
  with pytest.raises(UsageError) as e:  # run_eval, what eval.py calls (its lock: tests/test_io.py)
    run_eval(NO_MODEL, None, str(setup / "coll"), str(victim))
  assert str(e.value).startswith(
    f"--output {victim}: a folder that is not an earlier eval.py output"
  ), str(e.value)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["workdir"]
  assert [p.name for p in victim.iterdir()] == ["results.json"]


@pytest.mark.parametrize(
  "case, message",
  [
    ("no_lang", "has no '{lang}' but 2 languages are evaluated"),
    ("empty", "no documents for any of the 15 queries"),
    ("unknown_docs", "none of its 2 documents is in collection"),
    ("unjudged", "no query of language 'swa' has a relevant document"),
  ],
)
def test_meaningless_requests_are_refused(setup, tmp_path, case, message):
  """Refused by run_eval (what eval.py calls; its one-line exit-1 form is test_k_below_one's) before
  any model loads or any output is written."""
  run = tmp_path / "first.trec"
  run.write_text(
    {
      "no_lang": "q1 Q0 d1 1 1.0 x\n",
      "empty": "",
      "unknown_docs": "q1 Q0 zz1 1 2.0 x\nq2 Q0 zz2 1 1.0 x\n",
      "unjudged": "",
    }[case]
  )
  kwargs = {"first_stage": str(run)} if case != "unjudged" else {}
  if case in ("empty", "unknown_docs", "unjudged"):
    kwargs["langs"] = ["swa"]
  coll = setup / "coll"
  if case == "unjudged":  # the same collection, every judgment 0
    coll = tmp_path / "zero" / "coll"
    shutil.copytree(setup / "coll", coll)
    lines = (setup / "coll" / "qrels.txt").read_text().split("\n")
    (coll / "qrels.txt").write_text(
      "\n".join(" ".join(l.split()[:3] + ["0"]) for l in lines if l) + "\n"
    )
  with pytest.raises(UsageError) as e:
    run_eval(NO_MODEL, None, str(coll), str(tmp_path / "out"), **kwargs)
  assert message in str(e.value), str(e.value)
  assert not (tmp_path / "out").exists()


def _exact_run(setup, exact):
  # k = all 40 documents: the random texts tie often, and ties may fall either side of a cut.
  proc = _eval(setup, exact, "--k=40")  # no --ranker
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert json.loads((exact / "metrics.json").read_text())["ranker"] == "dense"
  assert "ranker dense" in (exact / "report.md").read_text()


@pytest.mark.slow
def test_flat_faiss_index_returns_the_runs_of_exact_search(setup, tmp_path):
  """A flat FAISS index returns exact search's documents and scores, with recall 1 recorded
  (tests/retrieval/test_ann.py checks the index itself, in process)."""
  pytest.importorskip("faiss")
  exact, flat = tmp_path / "exact", tmp_path / "flat"
  _exact_run(setup, exact)
  proc = _eval(setup, flat, "--ranker=dense", "--k=40", "--index=flat", "--index_recall")
  assert proc.returncode == 0, proc.stderr[-3000:]
  m = json.loads((flat / "metrics.json").read_text())
  assert m["index"] == "flat" and m["index_recall_against_exact"] == {"deu": 1.0, "swa": 1.0}
  for lang in ("swa", "deu"):  # the same documents with the same scores
    a, b = read_trec_run(exact / f"run.{lang}.trec"), read_trec_run(flat / f"run.{lang}.trec")
    assert a.keys() == b.keys()
    for q in a:  # (tied scores may come back in another order, so compare per document)
      assert a[q].keys() == b[q].keys()
      np.testing.assert_allclose([a[q][d] for d in a[q]], [b[q][d] for d in a[q]], atol=1e-5)


def test_default_ranker_follows_the_models():
  """The ranker follows the model (no head: dense; a late-interaction head: MaxSim), and a
  student's recorded ranker before either."""
  from types import SimpleNamespace  # pylint: disable=import-outside-toplevel
  from optical_jax.retrieval.collection_eval import default_ranker  # pylint: disable=import-outside-toplevel

  assert default_ranker(SimpleNamespace(head=None)) == "dense"  # a retriever taken as is
  assert default_ranker(SimpleNamespace(head={"kernel": 0})) == "maxsim"  # a late-interaction head
  # A student records the ranker it was trained for; auto follows the query model's first.
  plain = SimpleNamespace(head=None, meta={})
  assert default_ranker(plain, SimpleNamespace(head=None, meta={"ranker": "maxsim"})) == "maxsim"
  headed = SimpleNamespace(head={"kernel": 0}, meta={})
  assert default_ranker(headed, SimpleNamespace(head=None, meta={"ranker": "dense"})) == "dense"
  assert default_ranker(SimpleNamespace(head=None, meta={"ranker": "maxsim"}), plain) == "maxsim"


@pytest.mark.slow  # four eval.py processes
def test_atomic_output_set(setup, tmp_path):
  """A rerun that fails leaves the previous set whole and no staging folder; an index with
  MaxSim is refused."""
  exact = tmp_path / "exact"
  _exact_run(setup, exact)
  before = {p.relative_to(exact): p.read_bytes() for p in exact.rglob("*") if p.is_file()}
  proc = _eval(setup, exact, "--k=7", f"--doc_model={tmp_path / 'nothing'}")
  assert proc.returncode == 1  # fails after the staging folder was made, at the model
  assert {p.relative_to(exact): p.read_bytes() for p in exact.rglob("*") if p.is_file()} == before
  assert not list(tmp_path.glob(".*"))  # no staging folder left
  assert (exact / "cache").is_dir()  # the default cache stays with the set
  proc = _eval(setup, tmp_path / "bad", "--ranker=maxsim", "--index=hnsw")
  assert proc.returncode == 1 and "re-rank it with first_stage" in proc.stderr.splitlines()[-1]


@pytest.mark.slow
def test_documents_split_over_8_devices_give_the_same_runs(setup, tmp_path):
  """eval.py on 8 (simulated) devices splits the documents over them by default: the runs and
  metrics are those of one device; --noshard_docs searches on one."""
  one, eight, off = tmp_path / "one", tmp_path / "eight", tmp_path / "off"
  for out, devices, extra in ((one, 1, ()), (eight, 8, ()), (off, 8, ("--noshard_docs",))):
    proc = _eval(setup, out, "--ranker=maxsim", "--k=10", *extra, devices=devices)
    assert proc.returncode == 0, proc.stderr[-3000:]
  metrics = {o: json.loads((o / "metrics.json").read_text()) for o in (one, eight, off)}
  assert [metrics[o]["search_devices"] for o in (one, eight, off)] == [1, 8, 1]
  for lang in ("swa", "deu"):
    a, b = read_trec_run(one / f"run.{lang}.trec"), read_trec_run(eight / f"run.{lang}.trec")
    assert a.keys() == b.keys()
    for q in a:
      assert list(a[q]) == list(b[q])
      np.testing.assert_allclose(list(a[q].values()), list(b[q].values()), atol=1e-5)
    assert metrics[one]["languages"][lang]["mean"] == pytest.approx(
      metrics[eight]["languages"][lang]["mean"], abs=1e-9
    )


@pytest.mark.slow
def test_plaid_index_with_nothing_pruned_returns_the_runs_of_exact_maxsim(setup, tmp_path):
  """eval.py --ranker maxsim --index plaid: with every centroid probed, no pruning and every
  document scored exactly, the runs are exact MaxSim's (recall 1 recorded); the index is saved
  beside the token store and reused by the next run (tests/retrieval/test_plaid.py checks the
  approximate stages in process)."""
  pytest.importorskip("faiss")
  exact, approx = tmp_path / "exact", tmp_path / "plaid"
  cache = tmp_path / "cache"
  proc = _eval(setup, exact, "--ranker=maxsim", "--k=40", f"--cache_dir={cache}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  wide = ["--plaid_nprobe=100000", "--plaid_threshold=-inf", "--plaid_ndocs=40"]
  for attempt in range(2):
    proc = _eval(
      setup, approx, "--ranker=maxsim", "--k=40", "--index=plaid", "--index_recall",
      f"--cache_dir={cache}", *wide,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = [p for p in cache.iterdir() if p.name.endswith(".plaid")]
    assert len(saved) == 1 and (saved[0] / "plaid.json").is_file()
    if attempt == 0:
      stamp = (saved[0] / "codes.npy").stat().st_mtime_ns
  assert (saved[0] / "codes.npy").stat().st_mtime_ns == stamp  # reused, not rebuilt
  m = json.loads((approx / "metrics.json").read_text())
  assert m["index"] == "plaid" and m["index_settings"]["ndocs"] == 40
  assert m["index_recall_against_exact"] == {"deu": 1.0, "swa": 1.0}
  for lang in ("swa", "deu"):
    a, b = read_trec_run(exact / f"run.{lang}.trec"), read_trec_run(approx / f"run.{lang}.trec")
    assert a.keys() == b.keys()
    for q in a:
      assert a[q].keys() == b[q].keys()
      np.testing.assert_allclose([a[q][d] for d in a[q]], [b[q][d] for d in a[q]], atol=1e-5)


def test_plaid_index_needs_the_maxsim_ranker(setup, tmp_path):
  with pytest.raises(UsageError) as e:
    run_eval(
      NO_MODEL, None, str(setup / "coll"), str(tmp_path / "out"), ranker="dense", index="plaid"
    )
  assert "index 'plaid' is a first stage over token vectors" in str(e.value), str(e.value)
  assert not (tmp_path / "out").exists()
