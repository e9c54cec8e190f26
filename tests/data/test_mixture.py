"""Bitext mixtures (data/mixture.py) and the 'mixture' source of data/sources.py, on synthetic
corpora in the real layouts and, where ../shared/data exists, on the real ones."""

import collections
import json

import numpy as np
import pytest

from configs import default
from optical_jax.data import mixture, overlap, question_like, sources
from optical_jax.data.bitext import BitextPair
from optical_jax.testsets.collection_format import Collection
from optical_jax.testsets.registry import guard_collection

SPEC = "menyo20k:train:yor, mafand:train+dev:hau+yor, flores200:dev:hau+yor, mafand:train:swa"


def _write(path, lines):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("".join(l + "\n" for l in lines), encoding="utf-8")


def _parallel(folder, name, foreign_ext, pairs):
  _write(folder / f"{name}.en", [e for e, _ in pairs])
  _write(folder / f"{name}.{foreign_ext}", [f for _, f in pairs])


@pytest.fixture
def shared(tmp_path):
  """Synthetic corpora: swa large (300), hau 100+20+40, yor 60 MENYO + 30 MAFAND (20 of them
  MENYO pairs again, differently cased and spaced, 1 repeated inside MAFAND) + 40 FLORES."""
  root = tmp_path / "data"
  menyo = [(f"Yoruba sentence number {i}.", f"Gbolohun Yoruba {i}.") for i in range(60)]
  _write(root / "menyo20k/train.tsv", ["English\tYoruba"] + [f"{e}\t{f}" for e, f in menyo])
  mafand_yor = [(e.upper(), "  " + f.replace(" ", "   ")) for e, f in menyo[:20]]
  mafand_yor += [(f"News item {i} in Yoruba.", f"Iroyin {i}.") for i in range(9)]
  mafand_yor.append(mafand_yor[-1])  # a duplicate inside the file
  _parallel(root / "mafand_mt/en-yor", "train", "yor", mafand_yor)
  _parallel(root / "mafand_mt/en-yor", "dev", "yor", [("Yor dev.", "Yor dev f.")])
  _parallel(
    root / "mafand_mt/en-hau",
    "train",
    "hau",
    [(f"Hausa news {i}.", f"Labarai {i}.") for i in range(100)],
  )
  _parallel(
    root / "mafand_mt/en-hau",
    "dev",
    "hau",
    [(f"Hausa dev {i}.", f"Labarin dev {i}.") for i in range(20)],
  )
  _parallel(
    root / "mafand_mt/en-swa",
    "train",
    "swa",
    [(f"Swahili text {i}.", f"Maandishi {i}.") for i in range(300)],
  )
  for split, n in (("dev", 40), ("devtest", 10)):
    _write(root / f"flores200/{split}/eng_Latn.{split}", [f"Flores {split} {i}." for i in range(n)])
    _write(root / f"flores200/{split}/hau_Latn.{split}", [f"Hau {split} {i}." for i in range(n)])
    _write(root / f"flores200/{split}/yor_Latn.{split}", [f"Yor {split} {i}." for i in range(n)])
  return root


def _build(shared, **kw):
  kw.setdefault("test_fraction", 0.25)
  return mixture.build_mixture(kw.pop("spec", SPEC), shared_root=shared, **kw)


def _row(manifest, corpus, split, lang):
  return next(
    r for r in manifest["sources"] if (r["corpus"], r["split"], r["lang"]) == (corpus, split, lang)
  )


# ---------------------------------------------------------------- temperature sampling


def test_sampled_counts_alpha_one_keeps_natural_proportions():
  counts = {"swa": 9000, "hau": 900, "yor": 100}
  assert mixture.sampled_counts(counts, 1.0) == counts


def test_sampled_counts_alpha_03_upsamples_small_languages():
  counts = {"swa": 9000, "hau": 900, "yor": 100}
  got = mixture.sampled_counts(counts, 0.3)
  assert sum(got.values()) == 10000
  z = sum(n**0.3 for n in counts.values())
  for lang, n in counts.items():
    assert abs(got[lang] - 10000 * n**0.3 / z) < 1
  assert got["yor"] > 100 * 10 and got["swa"] < 9000 * 2 / 3
  assert mixture.temperature_weights(counts, 0.0) == pytest.approx(
    {"swa": 1 / 3, "hau": 1 / 3, "yor": 1 / 3}
  )
  with pytest.raises(ValueError, match=r"^alpha=-1; expected alpha >= 0"):
    mixture.sampled_counts(counts, -1)


def test_mixture_sampling_realises_the_counts(shared):
  splits, manifest = _build(shared, alpha=0.3)
  langs = manifest["languages"]
  before = {l: v["train_before"] for l, v in langs.items()}
  assert {l: v["train_after"] for l, v in langs.items()} == mixture.sampled_counts(before, 0.3)
  assert sum(v["train_after"] for v in langs.values()) == sum(before.values())
  for lang, v in langs.items():
    train = splits[lang]["train"]
    assert len(train) == v["train_after"] == splits[lang]["info"]["train"]
    times = collections.Counter(train)
    n, m = v["train_before"], v["train_after"]
    if m <= n:  # subsampled without replacement
      assert max(times.values()) == 1
    else:  # every pair m // n or m // n + 1 times
      assert len(times) == n and set(times.values()) <= {m // n, m // n + 1}
  assert langs["swa"]["train_after"] < langs["swa"]["train_before"]
  assert langs["yor"]["train_after"] > langs["yor"]["train_before"]
  assert manifest["totals"]["sampled"] == sum(len(s["train"]) for s in splits.values())


def test_mixture_alpha_one_keeps_every_training_pair_once(shared):
  splits, manifest = _build(shared, alpha=1.0)
  for lang, v in manifest["languages"].items():
    assert v["train_after"] == v["train_before"]
    assert len(set(splits[lang]["train"])) == len(splits[lang]["train"])


def test_mixture_is_deterministic_for_a_seed(shared):
  a = _build(shared, alpha=0.5, english_pairs=0.1, cap=50)
  b = _build(shared, alpha=0.5, english_pairs=0.1, cap=50)
  assert a == b
  c = _build(shared, alpha=0.5, english_pairs=0.1, cap=50, seed=1)
  assert c[0]["hau"]["test"] != a[0]["hau"]["test"]
  assert c[1]["train_sha256"] != a[1]["train_sha256"]


# ---------------------------------------------------------------- dedup, cap, held-out test


def test_dedup_first_source_in_spec_order_wins(shared):
  _, manifest = _build(shared)
  assert _row(manifest, "menyo20k", "train", "yor")["duplicates"] == 0
  mafand_yor = _row(manifest, "mafand", "train", "yor")
  assert (mafand_yor["available"], mafand_yor["duplicates"], mafand_yor["used"]) == (30, 21, 9)
  _, manifest = _build(shared, spec="mafand:train:yor, menyo20k:train:yor")
  assert _row(manifest, "mafand", "train", "yor")["duplicates"] == 1
  assert _row(manifest, "menyo20k", "train", "yor")["duplicates"] == 20
  assert manifest["totals"]["duplicates"] == 21


def test_cap_per_corpus_and_language_across_splits(shared):
  _, manifest = _build(shared, cap=50)
  train, dev = _row(manifest, "mafand", "train", "hau"), _row(manifest, "mafand", "dev", "hau")
  assert train["capped"] + dev["capped"] == 120 - 50
  assert train["available"] - train["capped"] + dev["available"] - dev["capped"] == 50
  assert _row(manifest, "menyo20k", "train", "yor")["capped"] == 10
  assert _row(manifest, "flores200", "dev", "hau")["capped"] == 0
  with pytest.raises(ValueError, match=r"^cap=-1; expected 0 \(no cap\) or a positive"):
    _build(shared, cap=-1)


def test_no_test_pair_or_its_text_is_trained_on(shared):
  splits, manifest = _build(shared, alpha=0.3, english_pairs=0.2)
  norm = overlap.normalize
  train_en = {norm(e) for s in splits.values() for e, _ in s["train"]}
  for lang, s in splits.items():
    assert s["test"], lang
    test_en = {norm(e) for e, _ in s["test"]}
    assert not test_en & train_en, lang  # English of a test pair: never trained, any language
    assert not {norm(f) for _, f in s["test"]} & {norm(f) for _, f in s["train"]}, lang
  for lang, v in manifest["languages"].items():
    n = v["train_before"] + v["test"]
    assert abs(v["test"] - round(0.25 * n)) <= 1, (lang, v)
  # FLORES is multi-way: a held-out sentence is held out in both languages
  flores_test = {e for l in ("hau", "yor") for e, _ in splits[l]["test"] if e.startswith("Flores")}
  assert {e for e, _ in splits["hau"]["test"] if e.startswith("Flores")} == flores_test


def test_english_pairs_fraction(shared):
  splits, manifest = _build(shared, alpha=0.3, english_pairs=0.2)
  eng = splits["eng"]["train"]
  total = sum(len(s["train"]) for s in splits.values())
  assert abs(len(eng) / total - 0.2) < 1 / total + 1e-9
  assert all(e == f for e, f in eng)
  english = {e for l, s in splits.items() if l != "eng" for e, _ in s["train"]}
  assert {e for e, _ in eng} <= english
  assert splits["eng"]["test"] and all(e == f for e, f in splits["eng"]["test"])
  assert not {e for e, _ in splits["eng"]["test"]} & english
  assert manifest["english"]["train"] == len(eng)
  assert manifest["totals"]["train_total"] == total
  with pytest.raises(ValueError, match=r"^english_pairs=1\.0; expected a fraction in \[0, 1\)$"):
    _build(shared, english_pairs=1.0)
  assert "eng" not in _build(shared)[0]


# ---------------------------------------------------------------- manifest


def test_manifest_sha_is_order_free_and_changes_with_a_pair():
  pairs = [("a", "b"), ("c", "d")]
  assert mixture.manifest_sha(pairs) == mixture.manifest_sha(pairs[::-1])
  assert mixture.manifest_sha(pairs) == mixture.manifest_sha(
    [BitextPair("c", "d", "x", "y"), BitextPair("a", "b")]
  )
  assert mixture.manifest_sha(pairs) != mixture.manifest_sha([("a", "b"), ("c", "e")])
  empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # sha256(b"")
  assert mixture.manifest_sha([]) == empty


def test_manifest_records_every_source_and_hash_follows_the_data(shared):
  _, manifest = _build(shared, alpha=0.3)
  json.dumps(manifest)  # serialisable
  assert (manifest["spec"], manifest["alpha"], manifest["seed"]) == (SPEC, 0.3, 0)
  assert [(r["corpus"], r["split"], r["lang"]) for r in manifest["sources"]] == [
    ("menyo20k", "train", "yor"),
    ("mafand", "train", "hau"),
    ("mafand", "train", "yor"),
    ("mafand", "dev", "hau"),
    ("mafand", "dev", "yor"),
    ("flores200", "dev", "hau"),
    ("flores200", "dev", "yor"),
    ("mafand", "train", "swa"),
  ]
  for r in manifest["sources"]:
    assert r["used"] == r["available"] - r["capped"] - r["duplicates"] - r["overlap_removed"]
    assert r["used"] == r["train"] + r["test"]
    assert len(r["sha256"]) == 64 and r["license"]
  assert _row(manifest, "mafand", "train", "hau")["license"].startswith("CC BY-NC 4.0")
  t = manifest["totals"]
  assert t["used"] == t["available"] - t["capped"] - t["duplicates"] - t["overlap_removed"]
  hau_file = shared / "mafand_mt/en-hau/train.hau"
  lines = hau_file.read_text(encoding="utf-8").splitlines()
  lines[5] = "Labarai na biyar."
  hau_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
  _, changed = _build(shared, alpha=0.3)
  for old, new in zip(manifest["sources"], changed["sources"]):
    same = (old["corpus"], old["split"], old["lang"]) != ("mafand", "train", "hau")
    assert (old["sha256"] == new["sha256"]) == same, old


# ---------------------------------------------------------------- overlap guard in a mixture


def test_overlap_guard_in_a_mixture(shared):
  coll = Collection(
    "dev_coll",
    ["d1"],
    {"d1": "Unrelated passage."},
    {"hau": {"q1": "Labarai 7"}},
    {"q1": {"d1": 1}},
  )
  exact = dict(overlap_collections=[coll], overlap_near=0.0)  # the exact rules alone
  with pytest.raises(
    ValueError,
    match=r"^overlap guard: source mafand:train language hau: "
    r"1 of 100 pairs repeat text of collection dev_coll",
  ):
    _build(shared, **exact)
  splits, manifest = _build(shared, overlap="drop", **exact)
  row = _row(manifest, "mafand", "train", "hau")
  assert (row["overlap"], row["overlap_removed"], row["used"]) == (1, 1, 99)
  assert all(f != "Labarai 7." for s in splits.values() for _, f in s["train"] + s["test"])
  _, allowed = _build(shared, overlap="allow", **exact)
  row = _row(allowed, "mafand", "train", "hau")
  assert (row["overlap"], row["overlap_removed"], row["used"]) == (1, 0, 100)
  assert (row["overlap_near"], allowed["overlap"]["near"]) == (0, 0.0)
  # the near rule (default 0.8): the synthetic 'Labarai 70.' .. 'Labarai 79.' are 5-gram near
  # duplicates of 'Labarai 7' (Jaccard 5/6): counted in the manifest, per source and in total
  _, near = _build(shared, overlap_collections=[coll], overlap="allow")
  row = _row(near, "mafand", "train", "hau")
  assert (row["overlap"], row["overlap_near"], row["overlap_near_collections"]) == (
    11,
    10,
    {"dev_coll": 10},
  )
  assert (near["totals"]["overlap_near"], near["overlap"]["near"]) == (10, 0.8)


# ---------------------------------------------------------------- sources.py


def _config(**data):
  config = default.get_config()
  config.data.english_pairs = 0.0  # the demo's anchors, unless a test asks for them
  for k, v in data.items():
    setattr(config.data, k, v)
  return config


def test_load_splits_mixture_source(shared):
  config = _config(
    source="mixture",
    mixture=SPEC,
    shared_root=str(shared),
    alpha=0.3,
    english_pairs=0.1,
    test_fraction=0.25,
  )
  splits, manifest = sources.load_splits_with_manifest(config)
  assert (splits, manifest) == _build(shared, alpha=0.3, english_pairs=0.1)
  assert sources.load_splits(config) == splits
  assert list(splits) == ["yor", "hau", "swa", "eng"]
  assert all(set(s) == {"train", "test", "info"} for s in splits.values())
  with pytest.raises(
    ValueError,
    match=r"^config\.data\.max_pairs_per_lang=10 applies to single "
    r"sources; use config\.data\.cap",
  ):
    sources.load_splits(_config(source="mixture", mixture=SPEC, max_pairs_per_lang=10))
  with pytest.raises(ValueError, match=r"^config\.data\.mixture is empty"):
    sources.load_splits(_config(source="mixture"))
  with pytest.raises(ValueError, match=r"^config\.data\.overlap='warn'; expected one of"):
    sources.load_splits(_config(source="mixture", mixture=SPEC, overlap="warn"))


def test_single_source_manifest_and_guard(tmp_path):
  from optical_jax.data import bitext  # pylint: disable=import-outside-toplevel

  for lang in ("hau", "yor"):
    _write(
      tmp_path / f"{lang}.tsv", [f"Sentence {i} of {lang}.\tFassara {i} {lang}." for i in range(20)]
    )
  config = _config(source="tsv", path=str(tmp_path / "{lang}.tsv"), langs="hau,yor")
  splits, manifest = sources.load_splits_with_manifest(config)
  for lang in ("hau", "yor"):  # the split is what it always was
    tr, te = bitext.split_by_pair(bitext.read_tsv(tmp_path / f"{lang}.tsv").pairs, 0.3, seed=0)
    assert splits[lang]["train"] == [(p.english, p.foreign) for p in tr]
    assert splits[lang]["test"] == [(p.english, p.foreign) for p in te]
  assert manifest["languages"] == {"hau": {"train": 14, "test": 6}, "yor": {"train": 14, "test": 6}}
  row = manifest["sources"][0]
  assert (row["corpus"], row["lang"], row["used"], row["path"]) == (
    "tsv",
    "hau",
    20,
    str(tmp_path / "hau.tsv"),
  )
  assert row["sha256"] == mixture.manifest_sha(splits["hau"]["train"] + splits["hau"]["test"])
  json.dumps(manifest)
  coll = tmp_path / "coll"
  (coll / "queries").mkdir(parents=True)
  (coll / "docs.jsonl").write_text(
    json.dumps({"doc_id": "d", "text": "A passage."}) + "\n", encoding="utf-8"
  )
  (coll / "queries/hau.tsv").write_text("q\tFassara 3 hau\n", encoding="utf-8")
  (coll / "qrels.txt").write_text("q 0 d 1\n", encoding="utf-8")
  config.data.overlap_collections = str(coll)
  with pytest.raises(TypeError, match=r"names collections: pass resolve"):
    sources.load_splits(config)
  with pytest.raises(ValueError, match=r"^overlap guard: source tsv language hau: 1 of 20 pairs"):
    sources.load_splits(config, resolve=guard_collection)
  config.data.overlap = "drop"
  splits, manifest = sources.load_splits_with_manifest(config, resolve=guard_collection)
  assert len(splits["hau"]["train"]) + len(splits["hau"]["test"]) == 19
  assert manifest["sources"][0]["overlap_removed"] == 1
  assert len(splits["yor"]["train"]) + len(splits["yor"]["test"]) == 20
  config.data.english_pairs = 0.5  # anchors for a single source too: as many as foreign pairs
  splits, manifest = sources.load_splits_with_manifest(config, resolve=guard_collection)
  assert len(splits["eng"]["train"]) == len(splits["hau"]["train"]) + len(splits["yor"]["train"])
  assert all(e == f for e, f in splits["eng"]["train"]) and manifest["english"]["fraction"] == 0.5


# ---------------------------------------------------------------- real data (../shared/data)


def test_real_mafand_yoruba_train_deduplicated_against_menyo(shared_data):
  _, manifest = mixture.build_mixture(
    "menyo20k:train:yor, mafand:train:yor", shared_root=shared_data, test_fraction=0.0
  )
  menyo, mafand = (
    _row(manifest, "menyo20k", "train", "yor"),
    _row(manifest, "mafand", "train", "yor"),
  )
  assert (menyo["available"], menyo["duplicates"]) == (10070, 80)
  assert (mafand["available"], mafand["duplicates"], mafand["used"]) == (6644, 5283, 1361)


def test_real_example_mixture(shared_data):
  spec = (
    "afriqa:train:hau+ibo+kin+zul, ciral:all:hau+yor, flores200:dev:hau+ibo+kin+yor+zul, "
    "mafand:train+dev:hau, menyo20k:train:yor"
  )
  splits, manifest = mixture.build_mixture(
    spec, shared_root=shared_data, alpha=0.3, test_fraction=0.1
  )
  t = manifest["totals"]
  assert (
    t["available"] == 225 + 304 + 258 + 242 + 80 + 312 + 100 + 554 + 5 * 997 + 3098 + 1300 + 10070
  )
  assert t["sampled"] == t["train"] == sum(len(s["train"]) for s in splits.values())
  assert list(splits) == ["hau", "ibo", "kin", "zul", "yor"]
  for s in splits.values():
    assert not {e for e, _ in s["test"]} & {e for e, _ in s["train"]}


@pytest.mark.parametrize(
  "lines, test_fraction, message",
  [
    (20, 0.0, r"language 'hau' has 20 training and 0 test pairs"),  # accuracy on nothing
    (0, 0.3, r"language 'hau' has 0 training and 0 test pairs"),  # an empty file
    (20, 0.03, r"language 'hau' has 19 training and 1 test pairs"),  # 1 pair always matches
  ],
)
def test_a_language_without_test_pairs_is_refused(tmp_path, lines, test_fraction, message):
  _write(tmp_path / "hau.tsv", [f"Sentence {i}.\tFassara {i}." for i in range(lines)])
  config = _config(
    source="tsv", path=str(tmp_path / "{lang}.tsv"), langs="hau", test_fraction=test_fraction
  )
  with pytest.raises(ValueError, match=message):
    sources.load_splits(config)


def test_a_path_without_lang_for_several_languages_is_refused(tmp_path):
  _write(tmp_path / "one.tsv", [f"Sentence {i}.\tFassara {i}." for i in range(20)])
  config = _config(source="tsv", path=str(tmp_path / "one.tsv"), langs="hau,yor")
  with pytest.raises(ValueError, match=r"has no '\{lang\}' but config\.data\.langs names 2 "):
    sources.load_splits(config)
  config.data.langs = "hau"  # one language may read any file
  assert len(sources.load_splits(config)["hau"]["test"]) == 6


def _ciral_hau(root, n=12):
  """Synthetic CIRAL Hausa topics (questions) in the real layout."""
  folder = root / "ciral_queries/ha"
  _write(folder / "test-a.ha.tsv", [f"h{i}\tWa ya kafa gari {i}?" for i in range(n)])
  _write(folder / "test-a.eng.tsv", [f"h{i}\tWho founded town {i}?" for i in range(n)])


def _angle_embed(texts):
  """A 2-d embedding whose likeness to the questions is known: questions at angle 0, 'Hausa
  news i' at angle (1 - i / 100) * pi / 2 (later news more question-like), the rest at pi / 2."""
  out = []
  for t in texts:
    if t.startswith("Who "):
      theta = 0.0
    elif t.startswith("Hausa news "):
      theta = (1 - int(t.split()[2].rstrip(".")) / 100) * np.pi / 2
    else:
      theta = np.pi / 2
    out.append([np.cos(theta), np.sin(theta)])
  return 3.0 * np.array(out)  # any scale: question_likeness normalises


def test_question_likeness_is_the_mean_of_the_nearest_cosines():
  rng = np.random.default_rng(0)
  vectors = {f"t{i}": rng.standard_normal(8) for i in range(40)}
  embed = lambda texts: np.stack([vectors[t] for t in texts])
  sentences, questions = [f"t{i}" for i in range(25)], [f"t{i}" for i in range(25, 40)]
  unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
  sim = unit(embed(sentences)) @ unit(embed(questions)).T
  for k, chunk in ((1, 4096), (4, 7), (99, 3)):  # 99 > 15 questions: all of them
    want = np.sort(sim, axis=1)[:, ::-1][:, : min(k, 15)].mean(axis=1)
    got = question_like.question_likeness(sentences, questions, embed, neighbours=k, chunk=chunk)
    np.testing.assert_allclose(got, want, rtol=1e-5)
  with pytest.raises(ValueError, match="no reference questions"):
    question_like.question_likeness(sentences, [], embed)
  with pytest.raises(ValueError, match=r"embed returned shape \(3,\) for 15 texts"):
    question_like.question_likeness(sentences, questions, lambda t: np.zeros(3))


def test_question_like_selection_keeps_the_sentences_nearest_the_questions(shared):
  _ciral_hau(shared)
  spec = "ciral:test-a:hau, mafand:train+dev:hau, flores200:dev:hau"
  splits, manifest = _build(
    shared, spec=spec, cap=30, select="question_like", embed=_angle_embed, test_fraction=0.0
  )
  train = {en for en, _ in splits["hau"]["train"]}
  # MAFAND (train 100 + dev 20, one group): the 30 latest news; FLORES (40, all at pi / 2): its
  # first 30 (ties to the earlier pair); the questions whole
  assert {e for e in train if e.startswith("Hausa ")} == {
    f"Hausa news {i}." for i in range(70, 100)
  }
  assert {e for e in train if e.startswith("Flores ")} == {f"Flores dev {i}." for i in range(30)}
  assert {e for e in train if e.startswith("Who ")} == {f"Who founded town {i}?" for i in range(12)}
  rows = {(r["corpus"], r["split"]): r for r in manifest["sources"]}
  assert [
    rows[k]["selected_out"]
    for k in [("ciral", "test-a"), ("mafand", "train"), ("mafand", "dev"), ("flores200", "dev")]
  ] == [0, 70, 20, 10]
  assert all(r["capped"] == 0 for r in rows.values())  # the random cap did not run first
  assert (
    rows[("mafand", "train")]["question_likeness_kept"]
    > rows[("mafand", "train")]["question_likeness_left_out"]
  )
  assert rows[("mafand", "dev")]["question_likeness_kept"] is None  # every dev pair left out
  assert manifest["select"] == "question_like" and manifest["totals"]["selected_out"] == 100
  assert manifest["question_neighbours"] == question_like.QUESTION_NEIGHBOURS
  again, _ = _build(
    shared, spec=spec, cap=30, select="question_like", embed=_angle_embed, test_fraction=0.0
  )
  assert again == splits


@pytest.mark.parametrize(
  "spec, kw, message",
  [
    ("ciral:test-a:hau, mafand:train:hau", dict(cap=0), "needs cap > 0"),
    ("ciral:test-a:hau, mafand:train:hau", dict(cap=5, embed=None), "needs embed"),
    ("mafand:train:hau", dict(cap=5), "no question corpus"),
    ("ciral:test-a:hau", dict(cap=5), "only question corpora"),
    ("ciral:test-a:hau, mafand:train:hau", dict(cap=5, select="nearest"), r"select='nearest'"),
  ],
)
def test_question_like_selection_refuses_what_it_cannot_do(shared, spec, kw, message):
  _ciral_hau(shared)
  kw = {"select": "question_like", "embed": _angle_embed, **kw}
  with pytest.raises(ValueError, match=message):
    _build(shared, spec=spec, **kw)


def test_select_is_refused_for_a_single_source(tmp_path):
  _write(tmp_path / "hau.tsv", [f"Sentence {i}.\tFassara {i}." for i in range(20)])
  config = _config(
    source="tsv", path=str(tmp_path / "{lang}.tsv"), langs="hau", select="question_like"
  )
  with pytest.raises(
    ValueError, match=r"config\.data\.select='question_like' chooses within a mixture"
  ):
    sources.load_splits_with_manifest(config)


def test_random_sentences_caps_only_the_sentence_corpora(shared):
  """select 'random_sentences': the random cap of 'random', except that question corpora are
  kept whole (the control for 'question_like')."""
  _ciral_hau(shared, n=40)
  spec = "ciral:test-a:hau, mafand:train+dev:hau"
  _, plain = _build(shared, spec=spec, cap=30, test_fraction=0.0)
  splits, manifest = _build(shared, spec=spec, cap=30, select="random_sentences", test_fraction=0.0)
  rows = {(r["corpus"], r["split"]): r for r in manifest["sources"]}
  assert rows[("ciral", "test-a")]["capped"] == 0 and rows[("ciral", "test-a")]["used"] == 40
  assert {e for e, _ in splits["hau"]["train"] if e.startswith("Who ")} == {
    f"Who founded town {i}?" for i in range(40)
  }
  assert rows[("mafand", "train")]["used"] + rows[("mafand", "dev")]["used"] == 30
  old = {(r["corpus"], r["split"]): r for r in plain["sources"]}
  assert old[("ciral", "test-a")]["used"] == 30  # 'random' caps the questions too
  for split in ("train", "dev"):  # the same random subset of the sentences as 'random'
    assert rows[("mafand", split)]["sha256"] == old[("mafand", split)]["sha256"]
