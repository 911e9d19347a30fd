"""The end of a certificate's validity, read from its PEM. Pure (no crypto library).

The program copies kubeadm's certificates from the nodes (kubeconfig client certificates, the
etcd and kubelet client pairs) and must know when each copy expires. Only `notAfter` is read:
Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
signature, issuer, validity SEQUENCE { notBefore, notAfter }, ... } } (RFC 5280 4.1).
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime

_PEM = re.compile(r"-----BEGIN CERTIFICATE-----\s*([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----")
_SEQUENCE, _UTC_TIME, _GENERALIZED_TIME, _VERSION = 0x30, 0x17, 0x18, 0xA0


def _element(der: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at `at`."""
    if at + 2 > len(der):
        raise ValueError("truncated DER")
    tag, length = der[at], der[at + 1]
    at += 2
    if length & 0x80:  # long form: the next (length & 0x7f) bytes are the length
        count = length & 0x7F
        length = int.from_bytes(der[at:at + count], "big")
        at += count
    if at + length > len(der):
        raise ValueError("truncated DER")
    return tag, at, at + length


def _enter(der: bytes, at: int, tag: int) -> int:
    found, start, _ = _element(der, at)
    if found != tag:
        raise ValueError(f"expected DER tag {tag:#x}, found {found:#x}")
    return start


def _skip(der: bytes, at: int) -> int:
    return _element(der, at)[2]


def not_after(pem: str) -> datetime:
    """notAfter of the first certificate in `pem` (UTC). ValueError if there is none."""
    m = _PEM.search(pem)
    if not m:
        raise ValueError("no PEM certificate")
    der = base64.b64decode("".join(m.group(1).split()), validate=True)
    at = _enter(der, _enter(der, 0, _SEQUENCE), _SEQUENCE)  # into tbsCertificate
    if der[at] == _VERSION:
        at = _skip(der, at)
    for _ in range(3):  # serialNumber, signature, issuer
        at = _skip(der, at)
    at = _enter(der, at, _SEQUENCE)  # validity
    at = _skip(der, at)  # notBefore
    tag, start, end = _element(der, at)
    text = der[start:end].decode("ascii")
    if tag == _UTC_TIME:  # YYMMDDHHMMSSZ; RFC 5280 4.1.2.5.1: YY >= 50 is 19YY
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != _GENERALIZED_TIME:
        raise ValueError(f"notAfter has DER tag {tag:#x}")
    return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)
