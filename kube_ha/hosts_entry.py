"""The endpoint's name in /etc/hosts, kept by the program (`endpoint.manageHostsEntry`). Pure.

One bash function, `hosts_entry NAME ADDRESS`, used by every node step that dials the name:
/etc/hosts gets one line `ADDRESS NAME # kube-ha`, replacing an earlier line of ours for that
name (a moved endpoint) and touching nothing else. The file is rewritten in place, not
replaced: in containers and on some hosts /etc/hosts is a bind mount that a rename cannot
replace. KUBE_HA_HOSTS_FILE points it elsewhere (tests).
"""

from __future__ import annotations

from kube_ha.model import Cluster
from kube_ha.shell import quote

HOSTS_FILE = "/etc/hosts"
# The hosts file as every script reads it (KUBE_HA_HOSTS_FILE: a test's file instead).
HOSTS = f"${{KUBE_HA_HOSTS_FILE:-{HOSTS_FILE}}}"
MARK = "# kube-ha"

HOSTS_ENTRY_FN = r"""hosts_entry() {  # name address: one line of ours maps name to address
  local name=$1 address=$2 file=@HOSTS@ want tmp
  want="$address $name @MARK@"
  if [ "$(grep -cE "[[:space:]]${name//./\\.} @MARK@\$" "$file" || true)" = 1 ] \
      && grep -qxF -- "$want" "$file"; then
    return 0
  fi
  tmp=$(mktemp)
  grep -vE "[[:space:]]${name//./\\.} @MARK@\$" "$file" > "$tmp" || true
  printf '%s\n' "$want" >> "$tmp"
  cat "$tmp" > "$file"
  rm -f "$tmp"
  log "$file: $name -> $address"
}""".replace("@HOSTS@", HOSTS).replace("@MARK@", MARK)


def hosts_entry_lines(cluster: Cluster) -> list[str]:
    """What a node step runs first when the program keeps the endpoint's name (else nothing)."""
    ep = cluster.endpoint
    if not (ep.manage_hosts_entry and ep.dns_name):
        return []
    return [HOSTS_ENTRY_FN, f"hosts_entry {quote(ep.dns_name)} {quote(str(ep.address))}"]
