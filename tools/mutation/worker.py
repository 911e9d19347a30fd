"""One mutation worker: a fork server in its own copy of the tree. It imports the heavy
third-party modules once, then forks a child per mutant that runs pytest on the tests named,
importing kube_ha afresh from the tree (where the runner has just written the mutant).

    python -m tools.mutation.worker   (cwd: the worker's tree; jobs as JSON lines on stdin)
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import sys
import time
from pathlib import Path

PRELOAD = ["pytest", "_pytest.python", "_pytest.runner", "yaml", "hypothesis", "cryptography.x509",
           "pulumi", "pulumi.runtime", "pulumi_command", "pulumi_tls", "pulumi_kubernetes",
           "kubernetes_validate", "graphviz"]


def _run(tests: list[str], timeout: float, log: str) -> tuple[str, float]:
    began = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: its own process group, so a timeout ends it and what it started
        os.setsid()
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        import pytest
        code = 3
        try:
            code = int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                                    "--rootdir", os.getcwd(), *tests]))
        finally:
            os._exit(code)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            seconds = time.monotonic() - began
            if code == 0:
                return "survived", seconds
            if code == 4 and "while loading conftest" in Path(log).read_text(errors="replace"):
                return "killed", seconds  # the mutant breaks importing the core: no test can run
            if code in (4, 5):  # usage error (a test not found) or nothing collected: it tells nothing
                return "error", seconds
            return "killed", seconds
        if time.monotonic() - began > timeout:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", time.monotonic() - began
        time.sleep(0.02)


def main() -> None:
    sys.dont_write_bytecode = True
    sys.path.insert(0, os.getcwd())
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        status, seconds = _run(job["tests"], job["timeout"], job["log"])
        print(json.dumps({"status": status, "seconds": round(seconds, 2)}), flush=True)


if __name__ == "__main__":
    main()
