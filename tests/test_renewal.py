"""Certificates renew themselves, and their expiry is visible.

pulumi_tls does not re-issue a certificate inside its early-renewal window on `pulumi up`
(pulumi/pulumi-tls#39, open: certificates expired under repeated `up`s), so the program drives
it: every issued key carries a replacement trigger that steps once per renewal period (a third
of the validity). These tests run the real program under the engine mocks at chosen clocks and
check what the engine would replace.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from components import certificates, renewal
from tests.program import Run, dev_stack, run_program, value_of

KEYS = "tls:index/privateKey:PrivateKey"


def _at(monkeypatch: pytest.MonkeyPatch, when: datetime, raw: dict[str, Any] | None = None) -> Run:
    monkeypatch.setattr(certificates, "now", lambda: when)
    return run_program(raw or dev_stack())


def _issued_key_triggers(run: Run) -> dict[str, Any]:
    """Replacement trigger of every key this program issues certificates for (not the CA's)."""
    return {r.name: r.replacement_trigger for r in run.monitor.registrations.values()
            if r.typ == KEYS and not r.name.endswith("-ca-key")}


def test_taking_this_version_re_keys_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Generation 0 keeps the trigger earlier versions used (rotation alone)."""
    triggers = _issued_key_triggers(_at(monkeypatch, renewal.ANCHOR + timedelta(days=30)))
    assert len(triggers) == 5  # 3 apiservers, the health-check client, the elastic serving cert
    assert set(triggers.values()) == {0}  # what `replacement_trigger=rotation` sent before


def test_every_issued_certificate_is_replaced_once_per_renewal_period(
        monkeypatch: pytest.MonkeyPatch) -> None:
    period = renewal.renewal_period(8760)
    before = _issued_key_triggers(_at(monkeypatch, renewal.ANCHOR + period * 0.9))
    inside = _issued_key_triggers(_at(monkeypatch, renewal.ANCHOR + period * 1.1))
    later = _issued_key_triggers(_at(monkeypatch, renewal.ANCHOR + period * 1.9))
    assert set(before) == set(inside) == set(later)
    # A changed replacement trigger is a replace of the key, and so of its CSR and certificate,
    # whose new PEM rolls out through the steps that carry it (in place).
    assert all(before[k] != inside[k] for k in before), (before, inside)
    assert inside == later  # once per period, not on every up


def test_no_certificate_outlives_two_thirds_of_its_validity_under_monthly_ups() -> None:
    """The schedule itself: with an `up` every 30 days, a certificate is re-issued before two
    periods (two thirds of its validity) have passed since it was issued."""
    for hours in (24 * 90, 8760, 3 * 8760):
        issued, day = renewal.ANCHOR, renewal.ANCHOR
        gen = renewal.generation(day, hours)
        oldest = timedelta(0)
        while day < renewal.ANCHOR + timedelta(days=1500):
            day += timedelta(days=30 if hours >= 8760 else 7)
            if renewal.generation(day, hours) != gen:
                oldest = max(oldest, day - issued)
                issued, gen = day, renewal.generation(day, hours)
        assert oldest < renewal.renewal_period(hours) * 2, (hours, oldest)


def test_expiry_of_every_issued_certificate_is_a_stack_output() -> None:
    run = run_program(dev_stack())
    expiry: dict[str, str] = value_of(run.scope["ha"].certificate_expiry)
    assert set(expiry) == {"apiserver-ubuntu-73", "apiserver-ubuntu-70", "apiserver-ubuntu-72",
                           "lb-health-check", "elastic-apiserver"}
    for name, when in expiry.items():
        end = datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert timedelta(days=364) < end - datetime.now(UTC) < timedelta(days=366), name
