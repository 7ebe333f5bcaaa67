"""Mutation testing of one part of latticesym, in a private copy of the repository.

Usage (with the virtual environment's python)::

    python scripts/run_mutation.py reference            # the exact oracle, latticesym/reference
    python scripts/run_mutation.py float                # the float step logic, _kg / _context / _certify
    python scripts/run_mutation.py float --keep         # reuse .mutation/float (cached verdicts kept)
    python scripts/run_mutation.py float --keep NAME..  # re-run only these mutants (globs allowed)

For a target the script copies the working tree (tracked files and untracked files that git
does not ignore) into ``.mutation/<target>/``, writes the target's ``[tool.mutmut]`` table into the
copy's ``pyproject.toml``, runs ``mutmut run`` there with ``HYPOTHESIS_PROFILE=mutation``, prints
the counts of ``mutmut results`` and the score ``(killed + timeout) / total``, and writes the
surviving mutants with their diffs (``mutmut show``) to ``.mutation/<target>/survivors.txt``.

Targets
-------
reference
    Exactly the ``[tool.mutmut]`` table of ``pyproject.toml`` (the single source for that target).
float
    :data:`FLOAT` below.  mutmut replaces every function by a trampoline, which numba cannot
    compile, and ``latticesym.reduce._numba`` compiles ``_kg``'s functions: so only the pure-Python
    step logic is mutated, and only tests that never compile numba run (the ``python`` backend,
    ``mp_niggli_reduce``, ``is_niggli_reduced`` and direct calls of ``_kg`` / ``_context``).

Standard library only; ``mutmut`` is taken from the directory of the running python (the venv).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"

#: mutmut settings of the float-reducer target (the same keys and style as ``[tool.mutmut]``).
FLOAT: dict[str, Any] = {
    "paths_to_mutate": [
        "latticesym/reduce/_kg.py",
        "latticesym/reduce/_context.py",
        "latticesym/reduce/_certify.py",
    ],
    "tests_dir": [
        "tests/unit/test_float_step_logic.py",
    ],
    "also_copy": ["latticesym/", "conftest.py", "tests/"],
    # --timeout (pytest-timeout): a mutant that makes the reducer loop forever fails its test after
    # 20 s instead of running into mutmut's CPU limit (15 x 2 x the suite time)
    "pytest_add_cli_args": ["-p", "no:cacheprovider", "-x", "-q", "--no-header", "-o", "addopts=",
                            "--import-mode=importlib", "--timeout=20"],
}

#: Statuses printed by ``mutmut results``, in the order of the summary.
STATUSES = ("killed", "timeout", "survived", "no tests", "suspicious", "skipped", "segfault",
            "caught by type check", "check was interrupted by user", "not checked")


def _pyproject_mutmut() -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        sys.exit("run_mutation.py needs Python >= 3.11 (tomllib) to read pyproject.toml")
    with open(ROOT / "pyproject.toml", "rb") as f:
        data = tomllib.load(f)
    try:
        return dict(data["tool"]["mutmut"])
    except KeyError:
        sys.exit("pyproject.toml has no [tool.mutmut] table")


def settings_for(target: str) -> dict[str, Any]:
    """The ``[tool.mutmut]`` settings of ``target``."""
    if target == "reference":
        return _pyproject_mutmut()
    if target == "float":
        return dict(FLOAT)
    raise ValueError(f"unknown target {target!r}")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for the ASCII paths and options used here
    if isinstance(value, list | tuple):
        items = [_toml_value(v) for v in value]
        one_line = "[" + ", ".join(items) + "]"
        if len(one_line) <= 100:
            return one_line
        return "[\n" + "".join(f"    {item},\n" for item in items) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def mutmut_table(settings: dict[str, Any]) -> str:
    """The ``[tool.mutmut]`` table text for ``settings``."""
    lines = ["[tool.mutmut]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def replace_mutmut_table(text: str, table: str) -> str:
    """``text`` (a pyproject.toml) with its ``[tool.mutmut]`` table replaced by ``table`` (or appended)."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == "[tool.mutmut]"), None)
    if start is None:
        return text.rstrip("\n") + "\n\n" + table
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"\s*\[", lines[i])), len(lines))
    tail = "".join(lines[end:])
    return "".join(lines[:start]) + table + ("\n" + tail if tail else "")


def repo_files() -> list[str]:
    """Tracked files and untracked files that git does not ignore (those that exist)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, check=True, capture_output=True).stdout
    names = sorted({name for name in out.decode().split("\0") if name})
    return [name for name in names if (ROOT / name).is_file()]


def sync_copy(dest: Path) -> int:
    """Copy the working tree into ``dest`` (content and mtime); returns the number of files written.

    Files whose content is unchanged are left alone, so mutmut's mtime check keeps its cache
    when ``--keep`` reuses a copy.
    """
    written = 0
    for name in repo_files():
        src, dst = ROOT / name, dest / name
        if dst.is_file() and dst.read_bytes() == src.read_bytes():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        written += 1
    return written


def mutmut_command() -> list[str]:
    exe = Path(sys.executable).parent / "mutmut"  # the venv's entry point (not resolved: keep the venv)
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("mutmut")
    if found is None:
        sys.exit("mutmut is not installed in this environment (pip install -e '.[test]')")
    return [found]


def run_mutmut(dest: Path, max_children: int, names: list[str]) -> int:
    env = dict(os.environ, HYPOTHESIS_PROFILE="mutation")
    cmd = [*mutmut_command(), "run", "--max-children", str(max_children), *names]
    print("$", " ".join(cmd), f"(in {dest}, HYPOTHESIS_PROFILE=mutation)", flush=True)
    return subprocess.run(cmd, cwd=dest, env=env).returncode


def results(dest: Path) -> dict[str, str]:
    """``mutant name -> status`` from ``mutmut results --all true``."""
    out = subprocess.run([*mutmut_command(), "results", "--all", "true"], cwd=dest, check=True,
                         capture_output=True, text=True).stdout
    status = {}
    for line in out.splitlines():
        name, sep, st = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name:
            status[name] = st
    return status


def summary(status: dict[str, str]) -> dict[str, Any]:
    counts = Counter(status.values())
    total = len(status)
    out: dict[str, Any] = {s: counts.get(s, 0) for s in STATUSES}
    out.update({s: n for s, n in counts.items() if s not in out})
    out["total"] = total
    out["score"] = (out["killed"] + out["timeout"]) / total if total else 0.0
    return out


def write_survivors(dest: Path, status: dict[str, str]) -> Path:
    survivors = sorted(name for name, st in status.items() if st == "survived")
    parts = [f"# {len(survivors)} surviving mutants\n", *(f"{name}\n" for name in survivors), "\n"]
    for name in survivors:
        shown = subprocess.run([*mutmut_command(), "show", name], cwd=dest, capture_output=True, text=True)
        parts.append(shown.stdout if shown.returncode == 0 else f"# {name}: mutmut show failed\n{shown.stderr}")
        parts.append("\n")
    path = dest / "survivors.txt"
    path.write_text("".join(parts))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=("reference", "float"))
    parser.add_argument("mutants", nargs="*", help="only (re-)run these mutants (names or globs; with --keep)")
    parser.add_argument("--max-children", type=int, default=2, help="parallel mutmut workers (default 2)")
    parser.add_argument("--keep", action="store_true",
                        help="reuse .mutation/<target> (copy and mutants/) instead of starting fresh")
    args = parser.parse_intermixed_args(argv)

    dest = WORK / args.target
    if not args.keep and dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = sync_copy(dest)
    pyproject = dest / "pyproject.toml"
    settings = settings_for(args.target)
    if args.target != "reference":  # reference: the copy's pyproject.toml is used as it is
        text = replace_mutmut_table(pyproject.read_text(), mutmut_table(settings))
        if pyproject.read_text() != text:
            pyproject.write_text(text)
    print(f"{args.target}: {written} files copied to {dest}; [tool.mutmut]:\n{mutmut_table(settings)}", flush=True)

    rc = run_mutmut(dest, args.max_children, args.mutants)
    if rc != 0:
        print(f"mutmut run exited with {rc}", flush=True)
    status = results(dest)
    s = summary(status)
    print(f"\nmutation results, target {args.target}:")
    for key in (*STATUSES, *(k for k in s if k not in STATUSES and k not in ("total", "score"))):
        if s.get(key) or key in ("killed", "timeout", "survived", "no tests"):
            print(f"  {key:>30}: {s[key]}")
    print(f"  {'total':>30}: {s['total']}")
    print(f"  {'score (killed+timeout)/total':>30}: {s['score']:.1%}")
    path = write_survivors(dest, status)
    print(f"survivors and their diffs: {path}")
    return 0 if status else 1


if __name__ == "__main__":
    sys.exit(main())
