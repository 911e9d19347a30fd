"""What kube_ha/certificates means: the notAfter read from a certificate's DER, the renewal
generation's steps, the client certificate a kubeconfig authenticates with, and the expiry
report the next `up` reads back.

Certificates are real: built with `cryptography` (UTCTime up to 2049, GeneralizedTime from 2050)
or signed by `openssl x509 -req` (a v1 certificate, with no version field), and each notAfter
is judged against `openssl x509 -enddate`. Malformed inputs are real certificates with one
thing broken, so a parser that stops checking reads a date where it must refuse.
"""

from __future__ import annotations

import base64
import functools
import subprocess
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kube_ha.certificates import renewal, x509
from tests.harness import pki

# --- real certificates -----------------------------------------------------------------------


@functools.cache
def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(long: bool) -> cx509.Name:
    if not long:
        return cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "x")])
    # Over 127 bytes: the issuer's DER length takes the long form, which the reader must skip.
    return cx509.Name([cx509.NameAttribute(oid, char * 40) for oid, char in (
        (NameOID.ORGANIZATION_NAME, "o"), (NameOID.ORGANIZATIONAL_UNIT_NAME, "u"),
        (NameOID.LOCALITY_NAME, "l"), (NameOID.COMMON_NAME, "c"))])


@functools.cache
def _pem(end: datetime, long_issuer: bool = False) -> str:
    key = _key()
    cert = (cx509.CertificateBuilder().subject_name(_name(False)).issuer_name(_name(long_issuer))
            .public_key(key.public_key()).serial_number(12345)
            .not_valid_before(datetime(1950, 1, 1, tzinfo=UTC)).not_valid_after(end)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _der(pem: str) -> bytes:
    return cx509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)


def _as_pem(der: bytes) -> str:
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


def _openssl_end(pem: str, tmp_path: Path) -> datetime:
    crt = tmp_path / "openssl.crt"
    crt.write_text(pem)
    return pki.openssl_not_after(crt)


# --- x509.not_after --------------------------------------------------------------------------


@pytest.mark.parametrize("end, encoded", [
    # UTCTime YYMMDDHHMMSSZ: YY 50..99 is 19YY, 00..49 is 20YY (RFC 5280 4.1.2.5.1).
    (datetime(1950, 1, 1, tzinfo=UTC), b"\x17\x0d500101000000Z"),
    (datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC), b"\x17\x0d991231235959Z"),
    (datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC), b"\x17\x0d310304050607Z"),
    (datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC), b"\x17\x0d491231235959Z"),
    # GeneralizedTime YYYYMMDDHHMMSSZ from 2050 on (kubeadm CAs, long-lived copies).
    (datetime(2050, 1, 1, tzinfo=UTC), b"\x18\x0f20500101000000Z"),
    (datetime(2137, 7, 8, 9, 10, 11, tzinfo=UTC), b"\x18\x0f21370708091011Z"),
])
def test_not_after_of_a_real_certificate_is_what_openssl_reads(end: datetime, encoded: bytes,
                                                               tmp_path: Path) -> None:
    """Each time encoding and the UTCTime century boundary: a wrong year is a copy re-read
    decades early or never."""
    pem = _pem(end)
    assert encoded in _der(pem)  # the encoding this case claims to exercise
    assert x509.not_after(pem) == end == _openssl_end(pem, tmp_path)
    assert x509.not_after(pem).tzinfo == UTC


def test_a_long_form_issuer_is_skipped_by_its_length(tmp_path: Path) -> None:
    """An issuer over 127 bytes has a multi-byte DER length (real CAs with O/OU/L names):
    the reader must skip exactly that many bytes to land on the validity."""
    pem = _pem(datetime(2033, 2, 3, 4, 5, 6, tzinfo=UTC), long_issuer=True)
    cert = cx509.load_pem_x509_certificate(pem.encode())
    assert len(cert.issuer.public_bytes()) > 130
    assert x509.not_after(pem) == datetime(2033, 2, 3, 4, 5, 6, tzinfo=UTC) == _openssl_end(pem, tmp_path)


def test_a_v1_certificate_without_a_version_field(tmp_path: Path) -> None:
    """`openssl x509 -req` with no extensions signs a v1 certificate, whose tbsCertificate
    starts at the serial number: reading it as a version would land on the wrong field."""
    key, csr, crt = tmp_path / "k.pem", tmp_path / "r.csr", tmp_path / "c.pem"
    key.write_bytes(_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    req = (cx509.CertificateSigningRequestBuilder().subject_name(_name(False)).sign(_key(), hashes.SHA256()))
    csr.write_bytes(req.public_bytes(serialization.Encoding.PEM))
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-signkey", str(key), "-days", "400",
                    "-out", str(crt)], check=True, capture_output=True)
    pem = crt.read_text()
    assert cx509.load_pem_x509_certificate(pem.encode()).version == cx509.Version.v1
    got = x509.not_after(pem)
    assert got == _openssl_end(pem, tmp_path)
    assert timedelta(days=399) < got - datetime.now(UTC) < timedelta(days=401)


def test_the_first_certificate_of_a_bundle_is_read() -> None:
    """A .crt may hold a chain (leaf first); text around the PEM block is ignored."""
    first, second = datetime(2031, 1, 1, tzinfo=UTC), datetime(2060, 1, 1, tzinfo=UTC)
    bundle = "subject=CN = x\n" + _pem(first) + _pem(second)
    assert x509.not_after(bundle) == first


def test_text_without_a_certificate_is_refused() -> None:
    """A key file or a token kubeconfig holds no certificate: a ValueError that says so."""
    with pytest.raises(ValueError, match=r"^no PEM certificate$"):
        x509.not_after("-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n")


def test_a_pem_body_that_is_not_exact_base64_is_refused() -> None:
    """Padding where it cannot be (a corrupted copy): refused, not decoded leniently."""
    pem = _pem(datetime(2031, 1, 1, tzinfo=UTC))
    body = pem.split("-----BEGIN CERTIFICATE-----\n")[1]
    with pytest.raises(ValueError, match="padding"):
        x509.not_after("-----BEGIN CERTIFICATE-----\n=" + body)


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_a_truncated_certificate_is_refused(keep: float) -> None:
    """A copy cut short (a partial read) declares more bytes than it has: 'truncated DER',
    even when the notAfter itself is still inside what arrived."""
    der = _der(_pem(datetime(2031, 1, 1, tzinfo=UTC)))
    cut = der[:int(len(der) * keep)]
    assert b"310101000000Z" in cut
    with pytest.raises(ValueError, match=r"^truncated DER$"):
        x509.not_after(_as_pem(cut))


@pytest.mark.parametrize("der", [b"", b"\x30", b"\x30\x00"])
def test_a_certificate_cut_before_its_first_element_is_refused_as_truncated(der: bytes) -> None:
    """Even a copy cut within the first tag and length is 'truncated DER' (a ValueError, which
    the caller reports), not an IndexError."""
    with pytest.raises(ValueError, match=r"^truncated DER$"):
        x509.not_after(_as_pem(der))


def test_a_certificate_that_is_not_a_sequence_is_refused() -> None:
    """Another DER structure (here a SET where the certificate's SEQUENCE must be) is named in
    the error rather than read as a certificate."""
    der = _der(_pem(datetime(2031, 1, 1, tzinfo=UTC)))
    assert der[0] == 0x30
    with pytest.raises(ValueError, match=r"^expected DER tag 0x30, found 0x31$"):
        x509.not_after(_as_pem(b"\x31" + der[1:]))


def test_a_not_after_that_is_not_a_time_is_refused() -> None:
    """A notAfter with another type (a PrintableString holding the same digits) is not a time."""
    der = _der(_pem(datetime(2051, 1, 1, tzinfo=UTC)))
    field = b"\x18\x0f20510101000000Z"
    assert der.count(field) == 1
    with pytest.raises(ValueError, match=r"^notAfter has DER tag 0x13$"):
        x509.not_after(_as_pem(der.replace(field, b"\x13" + field[1:])))


# --- renewal generation ----------------------------------------------------------------------

# The release that introduced renewal, written out here: a change to renewal.ANCHOR re-keys
# every certificate of every stack on its next `up`.
ANCHOR = datetime(2026, 11, 22, tzinfo=UTC)
DAY, SECOND = timedelta(days=1), timedelta(seconds=1)


def test_the_renewal_period_is_a_third_of_the_validity() -> None:
    assert renewal.renewal_period(72) == DAY
    assert renewal.renewal_period(8760) == timedelta(hours=2920)
    assert renewal.renewal_period(24 * 90) == timedelta(days=30)


@pytest.mark.parametrize("now, hours, expected", [
    (ANCHOR - 10 * DAY, 72, 0),             # before the anchor: generation 0, never negative
    (ANCHOR - SECOND, 72, 0),
    (ANCHOR, 72, 0),                        # the anchor opens generation 0
    (ANCHOR + DAY - SECOND, 72, 0),         # the last second of the first period
    (ANCHOR + DAY, 72, 1),                  # steps exactly at the boundary
    (ANCHOR + 2 * DAY - SECOND, 72, 1),
    (ANCHOR + 2 * DAY, 72, 2),
    (ANCHOR + 365 * DAY + SECOND, 72, 365),
    (ANCHOR + timedelta(hours=2920) - SECOND, 8760, 0),  # a year's validity: a 2920 h period
    (ANCHOR + timedelta(hours=2920), 8760, 1),
    (ANCHOR + timedelta(hours=3 * 2920), 8760, 3),
])
def test_generation_steps_once_per_period_from_the_anchor(now: datetime, hours: int, expected: int) -> None:
    assert renewal.generation(now, hours) == expected


@pytest.mark.parametrize("rotation, now, expected", [
    (3, ANCHOR - 100 * DAY, 3),             # generation 0: rotation alone, as before renewal
    (3, ANCHOR + DAY / 2, 3),
    (3, ANCHOR + DAY, "3.1"),               # later: rotation.generation
    (3, ANCHOR + 2.5 * DAY, "3.2"),
    (0, ANCHOR + 10 * DAY, "0.10"),
])
def test_replacement_trigger(rotation: int, now: datetime, expected: int | str) -> None:
    """Generation 0 must keep the int earlier versions sent (a str '3' is a replace)."""
    got = renewal.replacement_trigger(rotation, now, 72)
    assert got == expected
    assert type(got) is type(expected)


# --- the client certificate of a kubeconfig --------------------------------------------------


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _kubeconfig(current: str | None, users: list[dict[str, Any]],
                contexts: dict[str, str] | None = None) -> str:
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "users": users}
    if contexts is not None:
        doc["contexts"] = [{"name": n, "context": {"cluster": "k", "user": u}} for n, u in contexts.items()]
    if current is not None:
        doc["current-context"] = current
    return yaml.safe_dump(doc)


def _cert_user(name: str) -> dict[str, Any]:
    return {"name": name, "user": {"client-certificate-data": _b64(f"PEM of {name}"),
                                   "client-key-data": _b64("key")}}


def _token_user(name: str) -> dict[str, Any]:
    return {"name": name, "user": {"token": "abc"}}


def test_the_current_contexts_user_is_the_one_read() -> None:
    """current-context → its context → its user → that user's client-certificate-data, not the
    first certificate in the file."""
    text = _kubeconfig("ops", [_cert_user("admin"), _cert_user("operator")],
                       {"admin@k": "admin", "ops": "operator"})
    assert renewal.kubeconfig_client_certificate(text) == "PEM of operator"
    first = _kubeconfig("admin@k", [_cert_user("admin"), _cert_user("operator")],
                        {"admin@k": "admin", "ops": "operator"})
    assert renewal.kubeconfig_client_certificate(first) == "PEM of admin"


def test_a_current_user_without_a_certificate_gives_none() -> None:
    """A token (or exec) user authenticates otherwise: another user's certificate in the same
    file is not its expiry."""
    text = _kubeconfig("ops", [_cert_user("admin"), _token_user("operator")],
                       {"admin@k": "admin", "ops": "operator"})
    assert renewal.kubeconfig_client_certificate(text) is None
    missing = _kubeconfig("ops", [_cert_user("admin")], {"ops": "operator"})
    assert renewal.kubeconfig_client_certificate(missing) is None


def test_without_contexts_the_first_user_with_a_certificate_is_read() -> None:
    text = _kubeconfig(None, [_token_user("t"), {"name": "n", "user": None}, _cert_user("admin"),
                              _cert_user("other")])
    assert renewal.kubeconfig_client_certificate(text) == "PEM of admin"


@pytest.mark.parametrize("text", ["", "kind: Config\n", "users: []\n", "users:\n- name: t\n  user: {token: x}\n"])
def test_a_kubeconfig_without_client_certificates_gives_none(text: str) -> None:
    assert renewal.kubeconfig_client_certificate(text) is None


# --- the expiry report of the copies ---------------------------------------------------------


def test_expiry_of_copies_is_what_copy_generation_reads_back() -> None:
    """{file: RFC 3339 UTC 'Z'} for each kubeconfig (its current user's certificate) and .crt;
    token kubeconfigs, keys and binary files give no entry and break nothing. The next `up`
    feeds the record to copy_generation, which re-reads inside the earliest copy's window."""
    admin_end, other_end = datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC), datetime(2029, 1, 1, tzinfo=UTC)
    ca_end = datetime(2055, 6, 7, 8, 9, 10, tzinfo=UTC)
    admin = _kubeconfig("kubernetes-admin@kubernetes", [
        {"name": "other", "user": {"client-certificate-data": _b64(_pem(other_end))}},
        {"name": "kubernetes-admin", "user": {"client-certificate-data": _b64(_pem(admin_end))}},
    ], {"kubernetes-admin@kubernetes": "kubernetes-admin", "x": "other"})
    files = {
        # A Latin-1 comment (not UTF-8) does not hide the certificate.
        "admin.conf": base64.b64encode(b"# \xe9quipe ops\n" + admin.encode()).decode(),
        "ca.crt": _b64(_pem(ca_end)),
        "token.conf": _b64(_kubeconfig(None, [_token_user("t")])),
        "sa.key": _b64("-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n"),
        "sa.pub.der": base64.b64encode(b"\x30\x82\xff\xfe\x81").decode(),
        "admin.pem": _b64(_pem(other_end)),  # neither a kubeconfig nor a .crt: not a copy's expiry
    }
    expiry = renewal.expiry_of_copies(files)
    assert expiry == {"admin.conf": "2031-03-04T05:06:07Z", "ca.crt": "2055-06-07T08:09:10Z"}
    record = {"generation": "0", "expiry": expiry}
    window_opens = admin_end - renewal.COPY_REREAD_WINDOW
    assert renewal.copy_generation(0, record, window_opens - SECOND) == "0"
    assert renewal.copy_generation(0, record, window_opens) == f"0.{window_opens:%Y%m%d}"
