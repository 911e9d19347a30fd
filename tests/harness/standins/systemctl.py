"""systemctl stand-in for the kubeadm scripts: `restart kubelet`, and `disable --now haproxy`
(a node-local proxy switched off). restart is silent and exits 0 on success (systemd's
systemctl(1): output only on failure); the kubelet is then active and the restart counted, so
tests can tell whether a script restarted it, and how often. disable --now stops the unit and
removes its wants link, saying so on stderr ("Removed ...": systemctl's unit-file changes
report, src/shared/install.c install_changes_dump)."""

from __future__ import annotations

import sys

from tests.harness.standins import apiserver, common
from tests.harness.standins.common import Invocation, UnsupportedError


def main(argv: list[str]) -> int:
    return common.run("systemctl", argv, _dispatch)


def _dispatch(inv: Invocation) -> int:
    pos, flags = common.parse_flags(inv.argv, {"--now": False})
    if pos == ["disable", "haproxy"] and "now" in flags:
        inv.set_verb("systemctl disable")
        with common.mutate() as st:
            st.setdefault("units", {}).setdefault(common.node(), {})["haproxy"] = {
                "active": False, "enabled": False}
        print('Removed "/etc/systemd/system/multi-user.target.wants/haproxy.service".',
              file=sys.stderr)
        return 0
    if pos not in (["restart", "kubelet"], ["restart", "kubelet.service"]):
        raise UnsupportedError("only `restart kubelet` and `disable --now haproxy`")
    inv.set_verb("systemctl restart")
    with common.mutate() as st:
        kubelet = st["kubelet"].setdefault(common.node(), {})
        kubelet["active"] = True
        kubelet["restarts"] = kubelet.get("restarts", 0) + 1
    apiserver.start(common.node())  # an active kubelet runs the static pods it finds
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
