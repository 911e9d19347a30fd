"""Certificates as kubeadm makes and checks them, for the kubeadm stand-in.

- Which names a serving certificate must carry: GetAPIServerAltNames and getAltNames in
  kubernetes/kubernetes cmd/kubeadm/app/util/pkiutil/pki_helpers.go (node name, the kubernetes
  service names, the service subnet's first IP, the advertise address, the controlPlaneEndpoint
  host, then ClusterConfiguration.apiServer.certSANs; etcd: name, localhost, address, loopback).
- A pre-placed certificate is kept only when signed by the CA and valid for every one of those
  names, else "certificate <name> is invalid: <x509 error>": validateCertificateWithConfig in
  cmd/kubeadm/app/phases/certs/certs.go, which calls Go's Certificate.VerifyHostname; the error
  text is Go's HostnameError.Error() (crypto/x509/verify.go).
"""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.harness import pki
from tests.harness.standins.common import ToolError, write

SERVER = ["digital_signature", "key_encipherment", "server_auth"]
CLIENT = ["digital_signature", "key_encipherment", "client_auth"]
BOTH = [*SERVER, "client_auth"]


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def apiserver_names(node: str, advertise: str, service_subnet: str, dns_domain: str,
                    endpoint: str, cert_sans: list[str]) -> list[str]:
    first_ip = str(next(ipaddress.ip_network(service_subnet, strict=False).hosts()))
    names = [node, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
             f"kubernetes.default.svc.{dns_domain}", first_ip, advertise]
    if endpoint:
        names.append(endpoint.rsplit(":", 1)[0].strip("[]"))
    return names + [str(s) for s in cert_sans]


def etcd_names(node: str, advertise: str) -> list[str]:
    return [node, "localhost", advertise, "127.0.0.1", "::1"]


def issue(ca: pki.KeyPair, common_name: str, names: list[str], uses: list[str],
          org: str | None = None) -> pki.KeyPair:
    key = pki.new_key_pem()
    dns = [n for n in names if not _is_ip(n)]
    ips = [n for n in names if _is_ip(n)]
    return pki.KeyPair(pki.build_cert(subject_key_pem=key, common_name=common_name, issuer=ca,
                                      dns=dns or None, ips=ips or None, uses=uses, org=org,
                                      hours=24 * 365), key)


def _sans(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return (ext.get_values_for_type(x509.DNSName),
            [str(i) for i in ext.get_values_for_type(x509.IPAddress)])


def hostname_error(cert: x509.Certificate, host: str) -> str | None:
    """Go's VerifyHostname for one name, with its error text; None when the name is valid."""
    dns, ips = _sans(cert)
    if _is_ip(host):
        if ipaddress.ip_address(host) in {ipaddress.ip_address(i) for i in ips}:
            return None
        if not ips:
            return f"x509: cannot validate certificate for {host} because it doesn't contain any IP SANs"
        valid = ", ".join(ips)
    else:
        wanted = host.lower().rstrip(".")
        for pattern in (d.lower() for d in dns):
            if pattern == wanted or (pattern.startswith("*.") and "." in wanted
                                     and wanted.split(".", 1)[1] == pattern[2:]):
                return None
        valid = ", ".join(dns)
    if not valid:
        return f"x509: certificate is not valid for any names, but wanted to match {host}"
    return f"x509: certificate is valid for {valid}, not {host}"


def check_existing(cert_pem: str, ca_pem: str, base: str, names: list[str]) -> None:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError) as err:
        raise ToolError(f"certificate {base} is not signed by corresponding CA") from err
    for name in names:
        if (problem := hostname_error(cert, name)) is not None:
            raise ToolError(f"failed to write or validate certificate \"{base}\": certificate {base} "
                            f"is invalid: {problem}")


def ensure(pki_dir: Path, base: str, ca: pki.KeyPair, common_name: str, names: list[str],
           uses: list[str], org: str | None = None) -> str:
    """kubeadm's writeCertificateFilesIfNotExist: keep a valid pre-placed pair, else make one."""
    crt = pki_dir / f"{base}.crt"
    if crt.exists():
        check_existing(crt.read_text(), ca.cert_pem, base, names)
        return f'[certs] Using the existing "{base}" certificate and key'
    pair = issue(ca, common_name, names, uses, org)
    write(crt, pair.cert_pem)
    write(pki_dir / f"{base}.key", pair.key_pem, 0o600)
    return f'[certs] Generating "{base}" certificate and key'


def new_ca(common_name: str) -> pki.KeyPair:
    return pki.make_ca(common_name)


def service_account_key() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode(),
            key.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo).decode())


def spki_sha256(cert_pem: str) -> str:
    """kubeadm's CA pin: sha256 of the DER SubjectPublicKeyInfo (pubkeypin.Hash)."""
    key = x509.load_pem_x509_certificate(cert_pem.encode()).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()
