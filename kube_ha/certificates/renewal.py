"""When the certificates this program issues are re-issued. Pure.

pulumi_tls's `early_renewal_hours` does not renew anything on `pulumi up` (pulumi-tls#39, open
since 2020: certificates expired under repeated `up`s), so the program drives it: every issued
key carries a replacement trigger made of `certificates.rotation` and a renewal generation that
steps once per renewal period (a third of the validity) counted from a fixed anchor. An `up` in
a new period shows every certificate replaced in preview and rolls them out; a certificate is
never older than two periods (two thirds of its validity) when `up` runs at least once a period.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from kube_ha.certificates import x509

# The release that introduced renewal: generation 0 runs until one period after it, so taking
# this version re-keys nothing by itself.
ANCHOR = datetime(2026, 11, 22, tzinfo=UTC)


def renewal_period(validity_hours: int) -> timedelta:
    return timedelta(hours=validity_hours / 3)


def generation(now: datetime, validity_hours: int) -> int:
    """Whole renewal periods since ANCHOR (0 before it)."""
    return max(0, int((now - ANCHOR) / renewal_period(validity_hours)))


def replacement_trigger(rotation: int, now: datetime, validity_hours: int) -> int | str:
    """What every issued key is replaced on: `rotation` alone in generation 0 (the value earlier
    versions used, so nothing is re-keyed on upgrade), then `rotation.generation`."""
    gen = generation(now, validity_hours)
    return rotation if gen == 0 else f"{rotation}.{gen}"


# --- copies of the nodes' files ------------------------------------------------------------
# The admin kubeconfig and the files the in-cluster Deployments mount are copied from the
# bootstrap node; kubeadm renews the originals (`kubeadm certs renew`, every control-plane
# upgrade), so a copy is re-read when `rotation` changes and, inside the window before its
# own earliest expiry, on the first `up` of each day until a renewed original moves it out.

COPY_REREAD_WINDOW = timedelta(days=90)


def copy_generation(rotation: int, previous: Mapping[str, Any] | None, now: datetime) -> str:
    """What the reads are keyed on, from the last `up`'s record of them (`previous`: its
    `generation` and the copies' `expiry`, RFC 3339). Stable outside the window, so a preview
    shows no re-read; `str(rotation)` with no record (the value earlier versions used)."""
    record = previous or {}
    marker = str(record.get("generation") or "")
    if marker.split(".")[0] != str(rotation):
        return str(rotation)
    ends = [datetime.fromisoformat(v) for v in (record.get("expiry") or {}).values()]
    if ends and min(ends) - COPY_REREAD_WINDOW <= now:
        return f"{rotation}.{now:%Y%m%d}"
    return marker


def kubeconfig_client_certificate(text: str) -> str | None:
    """The PEM of the current user's client certificate, None when it authenticates otherwise
    (a token, an exec plugin, a certificate file)."""
    doc = yaml.safe_load(text) or {}
    current = next((c for c in doc.get("contexts") or []
                    if c.get("name") == doc.get("current-context")), None)
    wanted = (current or {}).get("context", {}).get("user")
    for user in doc.get("users") or []:
        data = (user.get("user") or {}).get("client-certificate-data")
        if data and (wanted is None or user.get("name") == wanted):
            return base64.b64decode(data).decode()
    return None


def expiry_of_copies(files: Mapping[str, str]) -> dict[str, str]:
    """{copied file: when its certificate ends (RFC 3339)} for every copy that holds one (a
    kubeconfig's client certificate, a .crt), from `files` {name: base64 content}."""
    out = {}
    for name, b64 in sorted(files.items()):
        text = base64.b64decode(b64).decode(errors="replace")
        pem = (kubeconfig_client_certificate(text) if name.endswith(".conf")
               else text if name.endswith(".crt") else None)
        if pem:
            out[name] = x509.not_after(pem).strftime("%Y-%m-%dT%H:%M:%SZ")
    return out
