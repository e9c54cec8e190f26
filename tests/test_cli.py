"""optical_jax/cli.py: how the commands (train.py, eval.py, study.py and the ``python -m``
commands) report bad flags and errors."""

import sys

import pytest
from absl import flags

from optical_jax import cli


def _flags():
  values = flags.FlagValues()
  flags.DEFINE_integer("steps", 2, "steps", flag_values=values)
  return values


def test_parse_flags_returns_the_program_and_sets_the_flags():
  values = _flags()
  assert cli.parse_flags(["train.py", "--steps=5"], values) == ["train.py"]
  assert values.steps == 5


@pytest.mark.parametrize(
  "argv, expected",
  [
    # A stray word printed absl's usage block and "unexpected arguments" without the prefix.
    (
      ["train.py", "--steps=5", "extra"],
      "train: error: unexpected arguments ['extra']: every input is a --flag (--helpshort lists "
      "them)",
    ),
    (
      ["train.py", "--steps=abc"],
      "train: error: flag --steps=abc: invalid literal for int() with base 10: 'abc' "
      "(--helpshort lists the flags)",
    ),
  ],
)
def test_a_bad_command_line_is_one_line_and_exit_2(monkeypatch, capsys, argv, expected):
  monkeypatch.setattr(sys, "argv", argv)
  monkeypatch.delenv(cli.TRACEBACK_ENV, raising=False)
  with pytest.raises(SystemExit) as exit_info:
    cli.parse_flags(argv, _flags())
  assert exit_info.value.code == 2
  assert capsys.readouterr().err.strip().splitlines() == [expected]


def test_a_command_with_positional_arguments_gets_them():
  """``python -m optical_jax.commands.fetch_data NAME...``: positional=True returns them after argv[0]."""
  values = _flags()
  argv = ["fetch", "afriqa", "--steps=3", "hornmt"]
  assert cli.parse_flags(argv, values, positional=True) == ["fetch", "afriqa", "hornmt"]
  assert values.steps == 3


def _body(f, rest):
  """A command body: its error is chosen by --fail."""
  from optical_jax.errors import UsageError

  errors = {"usage": UsageError("--steps: bad\nvalue"), "input": ValueError("f.tsv:3: broken")}
  if f.fail in errors:
    raise errors[f.fail]
  return 0 if not rest else len(rest)


def _command_flags():
  values = _flags()
  flags.DEFINE_string("fail", "", "Which error to raise.", flag_values=values)
  return values


@pytest.mark.parametrize(
  "argv, positional, code, expected",
  [
    (["--steps=3"], False, 0, None),
    (["--steps=3", "a", "b"], True, 2, None),  # the body's return value: 2 positional arguments
    (["--steps=abc"], False, 2, "cmd: error: flag --steps=abc: invalid literal for int() with "),
    (["extra"], False, 2, "cmd: error: unexpected arguments ['extra']: every input is a --flag"),
    (["--fail=usage"], False, 2, "cmd: error: --steps: bad value"),
    (["--fail=input"], False, 1, "cmd: error: f.tsv:3: broken (OPTICAL_JAX_TRACEBACK=1 shows"),
  ],
)
def test_a_command_with_its_own_flags_returns_its_exit_code(
  monkeypatch, capsys, argv, positional, code, expected
):
  """``cli.run(body, prog=..., flag_values=...)``: the handler of the entry points, for the
  ``python -m`` commands tests call in-process: one line, and the exit code returned."""
  monkeypatch.delenv(cli.TRACEBACK_ENV, raising=False)
  got = cli.run(_body, positional, prog="cmd", flag_values=_command_flags(), argv=argv)
  assert got == code
  err = capsys.readouterr().err.strip().splitlines()
  assert err == [] if expected is None else len(err) == 1 and err[0].startswith(expected), err


def test_a_command_with_its_own_flags_answers_help(capsys):
  assert cli.run(_body, prog="cmd", flag_values=_command_flags(), argv=["--helpshort"]) == 0
  assert "--steps" in capsys.readouterr().out


def test_flag_error_line_keeps_the_exception_of_a_config_file_traceback():
  text = (
    "Error whilst parsing config file:\nTraceback (most recent call last):\n  File "
    '"configs/tiny.py", line 3, in get_config\nValueError: nope'
  )
  assert (
    cli.flag_error_line(Exception(text)) == "Error whilst parsing config file: ValueError: nope"
  )


def test_compile_cache_folder_from_the_environment(monkeypatch, tmp_path):
  """Every command turns on JAX's persistent compilation cache in $OPTICAL_JAX_XLA_CACHE when it
  is set; unset or 'off' leaves JAX's setting alone."""
  import jax

  from optical_jax import cli as cli_module

  before = jax.config.jax_compilation_cache_dir
  try:
    monkeypatch.setenv(cli_module.XLA_CACHE_ENV, str(tmp_path / "xla"))
    assert cli_module.enable_compile_cache() == str(tmp_path / "xla")
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "xla")
    monkeypatch.setenv(cli_module.XLA_CACHE_ENV, "off")
    jax.config.update("jax_compilation_cache_dir", before)
    assert cli_module.enable_compile_cache() is None
    monkeypatch.delenv(cli_module.XLA_CACHE_ENV)
    assert cli_module.enable_compile_cache() is None
    assert jax.config.jax_compilation_cache_dir == before
  finally:
    jax.config.update("jax_compilation_cache_dir", before)


@pytest.mark.parametrize(
  "script,flag",
  [
    pytest.param("train.py", "--workdir", marks=pytest.mark.slow),  # the lock: tests/test_io.py
    pytest.param("study.py", "--workdir", marks=pytest.mark.slow),
    pytest.param("eval.py", "--output", marks=pytest.mark.slow),
  ],
)
def test_a_folder_held_by_a_live_run_is_refused_before_any_work(tmp_path, script, flag):
  """A second run on a held work dir (or eval.py output) exits 2 with one line naming the
  holder's pid and host, before anything is read or created."""
  import os
  import socket
  import subprocess
  from pathlib import Path

  from optical_jax import io

  repo = Path(__file__).resolve().parents[1]
  target = tmp_path / "held"
  args = {
    "train.py": ["--config=configs/tiny.py"],
    "study.py": ["--config=configs/tiny.py:gap_study"],
    "eval.py": ["--query_model=random:tiny", f"--collection={tmp_path / 'no_collection'}"],
  }[script]
  with io.work_lock(target):
    proc = subprocess.run(
      [sys.executable, script, f"{flag}={target}", *args],
      cwd=repo,
      env=dict(os.environ, PYTHONPATH=str(repo)),
      capture_output=True,
      text=True,
      timeout=300,
    )
  prog = script[:-3]
  assert proc.returncode == (1 if script == "eval.py" else 2), proc.stderr[-2000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith(f"{prog}: error: {flag} {target}: in use by another run"), last
  assert f"(pid {os.getpid()} on host {socket.gethostname()}" in last
  assert not target.exists() and "Traceback" not in proc.stderr
