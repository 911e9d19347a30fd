"""Mutation score of the pure core, per module.

    python -m tools.mutation                      # every module of kube_ha/
    python -m tools.mutation kube_ha/model.py     # one module (or several)
    python -m tools.mutation --retry-survivors    # re-run only what survived last time

First it records which tests reach which lines (`tools.mutation.trace`, about five minutes,
cached in .mutation/ until a core file changes; --retrace after adding tests). Then each
mutant runs against the fast tests (not `slow`) that reach its line, unit tests first, then
the most targeted (fewest core lines), up to --budget seconds, stopping at the first failure;
a mutant no selected test kills survived. Survivors listed in tools/mutation/equivalent.yaml
with a reason are left out of the score. Results are kept in
.mutation/results.json; survivors are written to .mutation/survivors/<module>.txt.

The whole core takes an hour or more on two cores: it is not part of .ci/run.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import fcntl
import hashlib
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tools.mutation.mutants import Mutant, mutants_of

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".mutation"
EQUIVALENT = Path(__file__).with_name("equivalent.yaml")
# Tests that run the core in a child process, where the trace does not follow.
CHILD_PROCESS_TESTS = ["tests/test_render.py"]
SCRATCH = Path(os.environ.get("TMPDIR", "/tmp")) / "kube-ha-mutation"
# A test without a fixture that runs in less than this many seconds counts as a unit test.
CHEAP = 0.2


def _fingerprint() -> str:
    # The core only: a test added since is not in the trace (name it with --also, or --retrace).
    digest = hashlib.sha256()
    for path in sorted(ROOT.glob("kube_ha/**/*.py")):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _trace(python: str, again: bool) -> dict[str, Any]:
    """Per-test lines of the core: rebuilt when a core file changed, or when asked."""
    STATE.mkdir(exist_ok=True)
    out = STATE / f"trace-{_fingerprint()}.json"
    with open(STATE / "trace.lock", "w") as lock:  # one recording at a time; the others wait for it
        fcntl.flock(lock, fcntl.LOCK_EX)
        if again or not out.exists():
            _record(python, out)
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def _record(python: str, out: Path) -> None:
    print("recording which tests reach which lines (a few minutes) ...", file=sys.stderr, flush=True)
    for old in STATE.glob("trace-*.json"):
        old.unlink()
    env = {**os.environ, "KUBE_HA_TRACE_OUT": str(out)}
    ran = subprocess.run([python, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider",
                          "-p", "tools.mutation.trace"], cwd=ROOT, env=env, capture_output=True, text=True)
    if ran.returncode != 0 or not out.exists():
        sys.exit(f"the unmutated fast tests must pass first:\n{ran.stdout[-3000:]}")


def _defines(stmt: ast.stmt) -> set[str]:
    """What a top-level statement defines: a constant, a class, a function."""
    if isinstance(stmt, ast.Assign | ast.AnnAssign):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    if isinstance(stmt, ast.ClassDef | ast.FunctionDef):
        return {stmt.name}
    return set()


def _names_per_test(path: Path) -> dict[str, set[str]]:
    """Each test function of a file, with every name and attribute its body reads."""
    if not path.is_file():
        return {}
    return {f.name: {n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(f)
                     if isinstance(n, ast.Name | ast.Attribute)}
            for f in ast.walk(ast.parse(path.read_text()))
            if isinstance(f, ast.FunctionDef) and f.name.startswith("test")}


@dataclass
class Selection:
    trace: dict[str, Any]
    budget: float
    also: list[str]

    def __post_init__(self) -> None:
        self.names = [name for name, _ in self.trace["tests"]]
        self.cost = {name: seconds for name, seconds in self.trace["tests"]}
        reach = [0] * len(self.names)  # how many lines of the core each test runs
        for lines in self.trace["lines"].values():
            for tests in lines.values():
                for i in tests:
                    reach[i] += 1
        self.reach = dict(zip(self.names, reach, strict=True))
        self.trees = {str(p.relative_to(ROOT)): ast.parse(p.read_text()) for p in ROOT.glob("kube_ha/**/*.py")}
        # Every name the core reads, with the tests that reach each line reading it: built once.
        self.readers: dict[str, set[int]] = {}
        for path, tree in self.trees.items():
            lines = self.trace["lines"].get(path, {})
            for node in ast.walk(tree):
                name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) \
                    else None
                if name is not None:
                    self.readers.setdefault(name, set()).update(lines.get(str(node.lineno), []))  # type: ignore[attr-defined]
        # And each test that names it in its own body: a test reading a table the core only
        # defines (SCALAR_KEYS against Pulumi.yaml) reaches no line of the core that reads it.
        named: dict[str, dict[str, set[str]]] = {}
        for i, test in enumerate(self.names):
            file, _, func = test.partition("::")
            if file not in named:
                named[file] = _names_per_test(ROOT / file)
            for name in named[file].get(func.split("[")[0], ()):
                self.readers.setdefault(name, set()).add(i)

    def _uses(self, mutant: Mutant) -> set[int]:
        """Tests that read what the mutant's top-level statement defines (a constant, a class's
        field defaults, a function's default arguments), or what is built from it: those that
        reach a core line naming it, or name it themselves. These run at import, before any
        test, so the trace credits them to none."""
        body = self.trees[mutant.path].body
        defined = set().union(*(_defines(s) for s in body
                                if s.lineno <= mutant.line <= (s.end_lineno or s.lineno)))
        # A constant another top-level statement is built from (REACH_S in preflight's _REACH)
        # is read wherever that one is.
        grown = True
        while grown:
            more = set().union(*(_defines(s) for s in body if isinstance(s, ast.Assign | ast.AnnAssign)
                                 and {n.id for n in ast.walk(s) if isinstance(n, ast.Name)} & defined))
            grown = not more <= defined
            defined |= more
        return set().union(*(self.readers.get(name, set()) for name in defined))

    def tests(self, mutant: Mutant) -> tuple[list[str], float]:
        lines = self.trace["lines"].get(mutant.path, {})
        chosen: set[int] = set()
        for line in range(mutant.line, mutant.end_line + 1):
            chosen.update(lines.get(str(line), []))
        if not chosen:  # run at import (not always recorded: conftest imports the core first)
            chosen = self._uses(mutant)
        # Unit tests cost next to nothing: all of them first.
        # Then the most targeted: a test reaching few lines of the core (a module's pin) tells
        # more about this one than a run of the whole program that passes through it.
        def unit(name: str) -> bool:
            return self.cost[name] < CHEAP and not self.trace["uses"].get(name)

        ordered = sorted((self.names[i] for i in chosen),
                         key=lambda n: (not unit(n), self.reach[n], self.cost[n], n))
        picked: list[str] = []
        spent = 0.0
        paid: set[str] = set()  # a shared fixture (the dev stack's run) costs once per child
        for name in ordered:
            fixtures = [f for f in self.trace["uses"].get(name, []) if f not in paid]
            cost = self.cost[name] + sum(self.trace["fixtures"][f] for f in fixtures)
            if picked and spent + cost > self.budget:
                break
            picked.append(name)
            paid.update(fixtures)
            spent += cost
        also = [t for t in self.also if t not in picked]
        child = [t for t in CHILD_PROCESS_TESTS if t not in picked and t not in self.also]
        return [*self.also, *picked, *child], spent + 3.0 * (len(also) + len(child))


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    # Runs on other modules may share .mutation/results.json: each merges under a lock.
    with open(STATE / "results.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _save(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    path = STATE / "results.json"
    with _locked():
        merged = json.loads(path.read_text()) if path.exists() else {}
        merged.update(results)
        path.with_suffix(".tmp").write_text(json.dumps(merged, indent=0))
        path.with_suffix(".tmp").replace(path)
    return merged


class Worker:
    def __init__(self, index: int, python: str) -> None:
        SCRATCH.mkdir(parents=True, exist_ok=True)
        self.tree = Path(tempfile.mkdtemp(prefix=f"w{index}-", dir=SCRATCH))
        shutil.copytree(ROOT, self.tree, symlinks=True, ignore=shutil.ignore_patterns(
            "venv", ".git", ".mutation", "__pycache__", ".mypy_cache", ".ruff_cache", ".hypothesis"),
            dirs_exist_ok=True)
        self.log = str(self.tree / ".last-run.log")
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        self.proc = subprocess.Popen([python, "-m", "tools.mutation.worker"], cwd=self.tree, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdin is not None
        json.loads(self.proc.stdout.readline())

    def run(self, mutant: Mutant | None, path: str, tests: list[str], timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None and self.proc.stdin is not None
        target = self.tree / path
        original = (ROOT / path).read_bytes()
        target.write_bytes(mutant.apply(original) if mutant else original)
        try:
            self.proc.stdin.write(json.dumps({"tests": tests, "timeout": timeout, "log": self.log}) + "\n")
            self.proc.stdin.flush()
            result: dict[str, Any] = json.loads(self.proc.stdout.readline())
        finally:
            target.write_bytes(original)
        return result

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.tree, ignore_errors=True)


def _equivalent() -> dict[str, str]:
    if not EQUIVALENT.exists():
        return {}
    entries = yaml.safe_load(EQUIVALENT.read_text()) or []
    return {entry["key"]: entry["reason"] for entry in entries}


def _modules(args: list[str]) -> list[str]:
    if args:
        return [str(Path(a).resolve().relative_to(ROOT)) for a in args]
    return sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("kube_ha/**/*.py") if p.name != "__init__.py")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help="paths of core modules (default: all of kube_ha/)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--budget", type=float, default=6.0, help="seconds of (traced) tests per mutant")
    parser.add_argument("--retry-survivors", action="store_true", help="keep earlier kills; re-run the rest")
    parser.add_argument("--also", action="append", default=[], help="a test file or id to run for every mutant")
    parser.add_argument("--retrace", action="store_true", help="record the tests' lines again (new tests)")
    parser.add_argument("--report", action="store_true", help="print the last results; run nothing")
    parser.add_argument("--limit", type=int, default=0, help="at most this many mutants per module (a sample)")
    args = parser.parse_args()
    python = sys.executable
    if args.report:
        results = json.loads((STATE / "results.json").read_text())
        _report({m: mutants_of(ROOT, m) for m in _modules(args.modules)}, results, _equivalent())
        return
    selection = Selection(_trace(python, args.retrace), args.budget, args.also)
    results = _save({})
    fresh: dict[str, dict[str, Any]] = {}
    modules = _modules(args.modules)
    todo: list[Mutant] = []
    per_module: dict[str, list[Mutant]] = {}
    for module in modules:
        found = mutants_of(ROOT, module)
        if args.limit:
            found = found[:: max(1, len(found) // args.limit)][:args.limit]
        per_module[module] = found
        for mutant in found:
            earlier = results.get(mutant.key)
            if args.retry_survivors and earlier and earlier["status"] in ("killed", "timeout"):
                continue
            todo.append(mutant)
    print(f"{len(todo)} mutants to run over {len(modules)} modules with {args.workers} workers",
          file=sys.stderr, flush=True)
    jobs: queue.Queue[Mutant] = queue.Queue()
    for mutant in todo:
        jobs.put(mutant)
    lock = threading.Lock()
    began = time.monotonic()
    done = [0]

    def work(index: int) -> None:
        worker = Worker(index, python)
        # The unmutated tree must pass the first selection, or every kill would be a lie.
        if todo:
            tests, cost = selection.tests(todo[0])
            check = worker.run(None, todo[0].path, tests, 60 + 3 * cost)
            if check["status"] != "survived":
                print(f"worker {index}: the unmutated tree fails its tests ({check}); see {worker.log}",
                      file=sys.stderr, flush=True)
                os._exit(2)
        while True:
            try:
                mutant = jobs.get_nowait()
            except queue.Empty:
                break
            tests, cost = selection.tests(mutant)
            result = worker.run(mutant, mutant.path, tests, 15 + 3 * cost)
            with lock:
                fresh[mutant.key] = results[mutant.key] = {**result, "where": mutant.describe()}
                done[0] += 1
                if done[0] % 25 == 0:
                    _save(fresh)
                    print(f"  {done[0]}/{len(todo)} in {time.monotonic() - began:.0f}s",
                          file=sys.stderr, flush=True)
        worker.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(args.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _report(per_module, _save(fresh), _equivalent())


def _report(per_module: dict[str, list[Mutant]], results: dict[str, dict[str, Any]],
            equivalent: dict[str, str]) -> None:
    (STATE / "survivors").mkdir(parents=True, exist_ok=True)
    # The score counts the mutants run (a --limit sample, or a run cut short, leaves some out).
    print(f"\n{'module':38} {'mutants':>7} {'not run':>7} {'killed':>7} {'survived':>8} {'equiv':>6} {'score':>7}")
    total = [0, 0, 0, 0, 0]
    for module, found in per_module.items():
        killed = survived = equiv = unrun = 0
        lines = []
        for mutant in found:
            status = results.get(mutant.key, {}).get("status", "not run")
            if status in ("killed", "timeout"):
                killed += 1
            elif mutant.key in equivalent:
                equiv += 1
            elif status == "not run":
                unrun += 1
            else:
                survived += 1
                lines.append(f"{mutant.describe()}  [{status}]\n  key: {mutant.key!r}")
        name = module.replace("/", ".").removesuffix(".py")
        (STATE / "survivors" / f"{name}.txt").write_text("\n".join(lines) + "\n")
        counts = (len(found), unrun, killed, survived, equiv)
        print(_row(module, counts))
        total = [t + n for t, n in zip(total, counts, strict=True)]
    print(_row("all", tuple(total)))


def _row(name: str, counts: tuple[int, ...]) -> str:
    found, unrun, killed, survived, equiv = counts
    scored = killed + survived
    score = f"{100.0 * killed / scored:6.1f}%" if scored else "      -"
    return f"{name:38} {found:7} {unrun:7} {killed:7} {survived:8} {equiv:6} {score}"


if __name__ == "__main__":
    main()
