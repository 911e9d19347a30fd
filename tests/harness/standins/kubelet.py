"""kubelet stand-in: `--version`, the one call a script makes of the binary (the kubelet
itself runs as a service, modelled in the state). It prints "Kubernetes v1.32.3"
(k8s.io/component-base/version/verflag PrintAndExitIfRequested: programName "Kubernetes",
then version.Get()). The version is the node's installed one (common.installed)."""

from __future__ import annotations

import sys

from tests.harness.standins import common
from tests.harness.standins.common import Invocation, UnsupportedError


def main(argv: list[str]) -> int:
    return common.run("kubelet", argv, _dispatch)


def _dispatch(inv: Invocation) -> int:
    if inv.argv != ["--version"]:
        raise UnsupportedError("only --version")
    inv.set_verb("kubelet --version")
    print(f"Kubernetes {common.installed('kubelet')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
