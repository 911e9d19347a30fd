"""systemctl stand-in: `restart kubelet`, the one call our scripts make. Silent and exit 0 on
success, as systemctl is (systemd's systemctl(1): output only on failure, exit status 0 on
success). The kubelet is then active and the restart counted, so tests can tell whether a
script restarted it, and how often."""

from __future__ import annotations

import sys

from tests.harness.standins import apiserver, common
from tests.harness.standins.common import Invocation, UnsupportedError


def main(argv: list[str]) -> int:
    return common.run("systemctl", argv, _dispatch)


def _dispatch(inv: Invocation) -> int:
    pos, _ = common.parse_flags(inv.argv, {})
    if pos not in (["restart", "kubelet"], ["restart", "kubelet.service"]):
        raise UnsupportedError("only `restart kubelet`")
    inv.set_verb("systemctl restart")
    with common.mutate() as st:
        kubelet = st["kubelet"].setdefault(common.node(), {})
        kubelet["active"] = True
        kubelet["restarts"] = kubelet.get("restarts", 0) + 1
    apiserver.start(common.node())  # an active kubelet runs the static pods it finds
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
