"""When the certificates this program issues are re-issued. Pure.

pulumi_tls's `early_renewal_hours` does not renew anything on `pulumi up` (pulumi-tls#39, open
since 2020: certificates expired under repeated `up`s), so the program drives it: every issued
key carries a replacement trigger made of `certificates.rotation` and a renewal generation that
steps once per renewal period (a third of the validity) counted from a fixed anchor. An `up` in
a new period shows every certificate replaced in preview and rolls them out; a certificate is
never older than two periods (two thirds of its validity) when `up` runs at least once a period.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
