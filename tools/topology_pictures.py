"""The README's picture of each topology: every committed example stack (Pulumi.<name>.yaml)
drawn as the offline render draws it, into docs/topology/<name>.svg beside its Graphviz source
(<name>.dot, which tests/test_diagram.py keeps equal to what the render makes today).

    python -m tools.topology_pictures
"""

from __future__ import annotations

import sys
from pathlib import Path

from kube_ha.config import parse_cluster
from kube_ha.diagram import topology_dot, topology_svg
from kube_ha.render import stack_config

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "topology"
EXAMPLES = ("dev", "vip", "node-local", "control-plane-lb", "external", "service")


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name in EXAMPLES:
        cluster = parse_cluster(*stack_config(ROOT / f"Pulumi.{name}.yaml"))
        (OUT / f"{name}.dot").write_text(topology_dot(cluster))
        (OUT / f"{name}.svg").write_text(topology_svg(cluster))
    print(f"drew {len(EXAMPLES)} topologies into {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
