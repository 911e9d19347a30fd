"""Real X.509 material for tests, made with `cryptography` (the engine's tls provider stand-in)."""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class KeyPair:
    cert_pem: str
    key_pem: str

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        crt, key = directory / f"{stem}.crt", directory / f"{stem}.key"
        crt.write_text(self.cert_pem)
        key.write_text(self.key_pem)
        key.chmod(0o600)
        return crt, key


def new_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _name(common_name: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _sans(dns: list[str], ips: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    return names


def build_cert(
    *,
    subject_key_pem: str,
    common_name: str,
    issuer: KeyPair | None,
    is_ca: bool = False,
    dns: list[str] | None = None,
    ips: list[str] | None = None,
    uses: list[str] | None = None,
    org: str | None = None,
    hours: int = 24,
) -> str:
    """Sign a certificate for `subject_key_pem` (self-signed when `issuer` is None)."""
    key = serialization.load_pem_private_key(subject_key_pem.encode(), None)
    if issuer is None:
        issuer_name, signing_key = _name(common_name, org), key
    else:
        issuer_cert = x509.load_pem_x509_certificate(issuer.cert_pem.encode())
        issuer_name = issuer_cert.subject
        signing_key = serialization.load_pem_private_key(issuer.key_pem.encode(), None)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, org))
        .issuer_name(issuer_name)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=hours))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    uses = uses or []
    builder = builder.add_extension(
        x509.KeyUsage(
            digital_signature="digital_signature" in uses or not is_ca,
            content_commitment=False,
            key_encipherment="key_encipherment" in uses,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=is_ca or "cert_signing" in uses,
            crl_sign=is_ca,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )
    ekus = [ExtendedKeyUsageOID.SERVER_AUTH] if "server_auth" in uses else []
    ekus += [ExtendedKeyUsageOID.CLIENT_AUTH] if "client_auth" in uses else []
    if ekus:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    if dns or ips:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(_sans(dns or [], ips or [])), critical=False
        )
    cert = builder.sign(signing_key, hashes.SHA256())  # type: ignore[arg-type]
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def make_ca(common_name: str = "kubernetes") -> KeyPair:
    key = new_key_pem()
    return KeyPair(build_cert(subject_key_pem=key, common_name=common_name, issuer=None,
                              is_ca=True, hours=240), key)


def issue(ca: KeyPair, common_name: str, *, dns: list[str] | None = None,
          ips: list[str] | None = None, client: bool = False, org: str | None = None) -> KeyPair:
    key = new_key_pem()
    uses = ["digital_signature", "key_encipherment", "client_auth" if client else "server_auth"]
    return KeyPair(build_cert(subject_key_pem=key, common_name=common_name, issuer=ca, dns=dns,
                              ips=ips, uses=uses, org=org), key)


def sans_of(cert_pem: str) -> tuple[list[str], list[str]]:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ext.get_values_for_type(x509.DNSName), [str(i) for i in ext.get_values_for_type(x509.IPAddress)]


def openssl_not_after(crt: Path) -> datetime.datetime:
    """The certificate file's notAfter as the real openssl reads it (`x509 -enddate`)."""
    out = subprocess.run(["openssl", "x509", "-enddate", "-noout", "-dateopt", "iso_8601", "-in", str(crt)],
                         capture_output=True, text=True, check=True).stdout
    return datetime.datetime.fromisoformat(out.strip().removeprefix("notAfter="))
