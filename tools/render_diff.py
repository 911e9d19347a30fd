"""What a pull request changes on the hosts: the offline render of the base and of the head,
diffed, as Markdown for a PR comment.

`pulumi preview --diff` shows every script as `[secret]` (they travel as secret stdin), so a
reviewer cannot see what a change sends to the hosts; the offline render holds no secret
(placeholders stand for keys and tokens), so its diff can be posted.

    python -m tools.render_diff base-rendered/ rendered/ > render-diff.md
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

# GitHub refuses a comment body over 65,536 characters; leave room for the header.
LIMIT = 60_000
# First line of the comment: the workflow finds its earlier comment by it and edits it.
MARKER = "<!-- kube-ha render diff -->"


def _files(root: Path) -> dict[str, str]:
    # The picture is laid out from topology.dot, which is diffed: its SVG would only add noise
    # (the workflow uploads it).
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix != ".svg"}


def render_diff(base: Path, head: Path, limit: int = LIMIT) -> str:
    """Markdown: a summary line, then one fenced unified diff per changed file."""
    before, after = _files(base), _files(head)
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    if not (added or removed or changed):
        return f"{MARKER}\n**Offline render**: this change sends nothing new to any host.\n"
    parts = [f"{MARKER}\n**Offline render**: {len(changed)} changed, {len(added)} added, "
             f"{len(removed)} removed (what hosts would receive; keys and tokens are "
             "placeholders).\n"]
    for name in sorted(added + removed + changed):
        diff = "".join(difflib.unified_diff(
            before.get(name, "").splitlines(keepends=True),
            after.get(name, "").splitlines(keepends=True),
            fromfile=f"base/{name}" if name in before else "/dev/null",
            tofile=f"head/{name}" if name in after else "/dev/null"))
        fence = "````" if "```" in diff else "```"
        parts.append(f"<details><summary><code>{name}</code></summary>\n\n{fence}diff\n{diff}"
                     f"{'' if diff.endswith(chr(10)) else chr(10)}{fence}\n</details>\n")
    text, kept = parts[0], 0
    for part in parts[1:]:
        if len(text) + len(part) > limit:
            break
        text += part
        kept += 1
    if kept < len(parts) - 1:
        text += (f"\n… {len(parts) - 1 - kept} more files changed; render both commits "
                 "(`python -m kube_ha.render`) to see them all.\n")
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base", type=Path)
    p.add_argument("head", type=Path)
    args = p.parse_args(argv)
    sys.stdout.write(render_diff(args.base, args.head))
    return 0


if __name__ == "__main__":
    sys.exit(main())
