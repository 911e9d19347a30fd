"""Certificates renew themselves, and their expiry is visible.

pulumi_tls does not re-issue a certificate inside its early-renewal window on `pulumi up`
(pulumi/pulumi-tls#39, open: certificates expired under repeated `up`s), so the program drives
it: every issued key carries a replacement trigger that steps once per renewal period (a third
of the validity). These tests run the real program under the engine mocks at chosen clocks and
check what the engine would replace.
"""

from __future__ import annotations

import base64
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from components import certificates
from kube_ha.certificates import renewal
from kube_ha.elastic.manifests import CHECKSUM_ANNOTATION
from tests.harness import pki
from tests.mocks import ClusterMocks
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


# --- copies of the nodes' files: re-read inside their renewal window ----------------------

WINDOW = renewal.COPY_REREAD_WINDOW
READS = ("kubernetes-access-read-admin-kubeconfig", "kubernetes-access-read-elastic-apiserver-pki",
         "kubernetes-access-read-controller-manager-pki")


@pytest.mark.parametrize("rotation, record, now, expected", [
    # No record (a stack's first run, or the first with this version): rotation alone, the
    # value earlier versions keyed the read on.
    (0, None, datetime(2027, 1, 1, tzinfo=UTC), "0"),
    (2, {}, datetime(2027, 1, 1, tzinfo=UTC), "2"),
    # rotation bumped since the last run: re-read, whatever the expiry.
    (1, {"generation": "0", "expiry": {"a": "2030-01-01T00:00:00Z"}},
     datetime(2027, 1, 1, tzinfo=UTC), "1"),
    (1, {"generation": "0.20270101", "expiry": {}}, datetime(2027, 1, 1, tzinfo=UTC), "1"),
    # One second before the window: kept.
    (0, {"generation": "0", "expiry": {"a": "2027-12-31T00:00:00Z", "b": "2027-06-01T00:00:00Z"}},
     datetime(2027, 6, 1, tzinfo=UTC) - WINDOW - timedelta(seconds=1), "0"),
    # The window's first second, judged by the earliest copy: re-read, keyed on the day.
    (0, {"generation": "0", "expiry": {"a": "2027-12-31T00:00:00Z", "b": "2027-06-01T00:00:00Z"}},
     datetime(2027, 6, 1, tzinfo=UTC) - WINDOW, "0.20270303"),
    # Past the end: still re-read (the original may have been renewed meanwhile).
    (3, {"generation": "3.20270101", "expiry": {"a": "2027-01-01T00:00:00Z"}},
     datetime(2027, 2, 1, 12, tzinfo=UTC), "3.20270201"),
    # Re-read already and renewed: the earlier day's marker stays.
    (0, {"generation": "0.20270302", "expiry": {"a": "2028-06-01T00:00:00Z"}},
     datetime(2027, 3, 3, tzinfo=UTC), "0.20270302"),
    # No certificate in the copies (token-authenticated kubeconfigs): never on expiry.
    (0, {"generation": "0", "expiry": {}}, datetime(2040, 1, 1, tzinfo=UTC), "0"),
])
def test_copy_generation(rotation: int, record: dict[str, Any] | None, now: datetime,
                         expected: str) -> None:
    assert renewal.copy_generation(rotation, record, now) == expected


def _copies_run(monkeypatch: pytest.MonkeyPatch, when: datetime, previous: dict[str, Any],
                not_after: datetime, renewed: str = "") -> Run:
    mocks = ClusterMocks()
    mocks.previous_outputs = previous
    mocks.copied_not_after = not_after
    mocks.files_suffix = renewed
    monkeypatch.setattr(certificates, "now", lambda: when)
    return run_program(dev_stack(), mocks=mocks)


def _reads(run: Run) -> dict[str, str]:
    return {name: run.mocks.named(name).plain["stdin"] for name in READS}


def _rolled(run: Run) -> dict[str, str]:
    return {r.name: r.plain["spec"]["template"]["metadata"]["annotations"][CHECKSUM_ANNOTATION]
            for r in run.mocks.by_type("kubernetes:apps/v1:Deployment")}


def test_copies_are_re_read_inside_their_window_and_only_then(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A year-long kubeadm copy: first run records its expiry; runs outside the window change
    no read (a preview shows nothing); the first run inside it re-reads the admin kubeconfig
    and the mounted files, picks up the originals kubeadm renewed (the pods that mount them
    roll), records the new expiry, and the next run is quiet again."""
    ends = datetime(2027, 11, 22, tzinfo=UTC)
    first = _copies_run(monkeypatch, datetime(2027, 1, 10, tzinfo=UTC), {}, ends)
    record = value_of(first.scope["ha"].access.copies)
    assert record["generation"] == "0"
    assert set(record["expiry"]) >= {"admin.conf", "controller-manager.conf",
                                     "apiserver-etcd-client.crt", "front-proxy-client.crt"}
    assert set(record["expiry"].values()) == {"2027-11-22T00:00:00Z"}
    assert "# generation" not in _reads(first)[READS[0]]  # as before re-reads existed

    quiet = _copies_run(monkeypatch, ends - WINDOW - timedelta(hours=1),
                        {"controlPlaneCopies": record}, ends)
    assert _reads(quiet) == _reads(first)

    renewed_end = ends + timedelta(days=365)
    inside = _copies_run(monkeypatch, ends - WINDOW + timedelta(hours=1),
                         {"controlPlaneCopies": record}, renewed_end, renewed="renewed")
    changed = _reads(inside)
    assert all(changed[n] != _reads(first)[n] for n in READS)
    assert all("# generation 0.20270824" in changed[n] for n in READS)
    assert all(_rolled(inside)[k] != _rolled(first)[k] for k in _rolled(first))
    after = value_of(inside.scope["ha"].access.copies)
    assert set(after["expiry"].values()) == {"2028-11-21T00:00:00Z"}

    later = _copies_run(monkeypatch, ends - WINDOW + timedelta(days=3),
                        {"controlPlaneCopies": after}, renewed_end, renewed="renewed")
    assert _reads(later) == changed


def test_a_rotation_bump_re_reads_the_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    ends = datetime(2027, 11, 22, tzinfo=UTC)
    record = {"generation": "0", "expiry": {"admin.conf": "2027-11-22T00:00:00Z"}}
    before = _copies_run(monkeypatch, datetime(2027, 1, 10, tzinfo=UTC),
                         {"controlPlaneCopies": record}, ends)
    mocks = ClusterMocks()
    mocks.previous_outputs = {"controlPlaneCopies": record}
    raw = dev_stack()
    raw["certificates"] = {**raw.get("certificates", {}), "rotation": 1}
    bumped = run_program(raw, mocks=mocks)
    assert all(_reads(bumped)[n] != _reads(before)[n] for n in READS)
    assert "# generation 1" in _reads(bumped)[READS[0]]


def test_expiry_of_copies_matches_openssl(tmp_path: Any) -> None:
    """kube_ha/certificates/x509.py reads notAfter without a crypto library: against openssl for RSA and
    EC keys, UTCTime and (past 2049) GeneralizedTime; a kubeconfig without an inline client
    certificate and a key file give no entry."""
    files = {}
    for name, newkey, days in (("rsa.crt", ["rsa:2048"], 2), ("ec.crt", ["ec", "-pkeyopt",
                               "ec_paramgen_curve:P-256"], 365), ("late.crt", ["ec", "-pkeyopt",
                               "ec_paramgen_curve:P-256"], 30000)):
        crt = tmp_path / name
        subprocess.run(["openssl", "req", "-x509", "-newkey", *newkey, "-nodes", "-keyout",
                        str(tmp_path / "k.pem"), "-out", str(crt), "-days", str(days), "-subj",
                        "/CN=x"], check=True, capture_output=True)
        files[name] = (crt.read_text(), pki.openssl_not_after(crt))
    b64 = {k: base64.b64encode(v[0].encode()).decode() for k, v in files.items()}
    b64["token.conf"] = base64.b64encode(b"users:\n- name: x\n  user: {token: abc}\n").decode()
    b64["sa.key"] = base64.b64encode(b"-----BEGIN PRIVATE KEY-----\n").decode()
    got = renewal.expiry_of_copies(b64)
    assert set(got) == set(files)
    for name, (_, openssl_end) in files.items():
        assert datetime.fromisoformat(got[name]) == openssl_end, name
    assert int(got["late.crt"][:4]) > 2049
