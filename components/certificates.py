"""Cluster CA and the certificates this program issues (pulumi_tls).

The SANs come from the pure `topology` module, so a membership edit shows in preview as the
replacement of exactly the certificates it touches. `certificates.rotation` re-keys them all.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pulumi
import pulumi_tls as tls

from components.remote import Ssh, run_script
from kube_ha.certificates import renewal
from kube_ha.kubeadm.scripts import read_ca_script
from kube_ha.model import Cluster, Host
from kube_ha.topology import SanSet, apiserver_sans


def now() -> datetime:
    """The clock renewal is judged by (tests set it)."""
    return datetime.now(UTC)


SERVER_USES = ["digital_signature", "key_encipherment", "server_auth"]
CLIENT_USES = ["digital_signature", "key_encipherment", "client_auth"]


def split_pem_bundle(bundle: str) -> tuple[str, str]:
    """`cat ca.crt ca.key` output -> (certificate PEM, private key PEM)."""
    marker = "-----END CERTIFICATE-----"
    if marker not in bundle or "PRIVATE KEY-----" not in bundle:
        raise ValueError("reading the cluster CA from the bootstrap node gave no certificate "
                         "and key; set certificates.caSource: generate for a new cluster")
    cert_end = bundle.index(marker) + len(marker)
    return bundle[: cert_end].strip() + "\n", bundle[cert_end:].strip() + "\n"


class IssuedCert(pulumi.ComponentResource):
    """A key, a request with SANs, a certificate signed by the cluster CA."""

    def __init__(self, name: str, common_name: str, sans: SanSet | None, uses: list[str],
                 ca_cert_pem: pulumi.Input[str], ca_key_pem: pulumi.Input[str], cluster: Cluster,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("kube-ha:tls:IssuedCert", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        settings = cluster.certificates
        # Re-keyed (and so re-issued) on a rotation bump and once per renewal period: see
        # kube_ha/certificates/renewal.py for why early_renewal_hours alone renews nothing.
        key = tls.PrivateKey(
            f"{name}-key", algorithm="ECDSA", ecdsa_curve="P256",
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(
                replacement_trigger=renewal.replacement_trigger(
                    settings.rotation, now(), settings.validity_hours))),
        )
        request = tls.CertRequest(
            f"{name}-csr",
            private_key_pem=key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name=common_name),
            dns_names=list(sans.dns_names) if sans else None,
            ip_addresses=list(sans.ip_addresses) if sans else None,
            opts=child,
        )
        cert = tls.LocallySignedCert(
            f"{name}-cert",
            cert_request_pem=request.cert_request_pem,
            ca_cert_pem=ca_cert_pem,
            ca_private_key_pem=ca_key_pem,
            allowed_uses=uses,
            validity_period_hours=settings.validity_hours,
            # Marks the state ready_for_renewal on refresh; the re-issue itself is driven above.
            early_renewal_hours=int(renewal.renewal_period(settings.validity_hours)
                                    .total_seconds() // 3600),
            opts=child,
        )
        self.cert_pem: pulumi.Output[str] = cert.cert_pem
        self.expires: pulumi.Output[str] = cert.validity_end_time
        self.key_pem: pulumi.Output[str] = pulumi.Output.secret(key.private_key_pem)
        self.register_outputs({"certPem": self.cert_pem})


class ClusterCertificates(pulumi.ComponentResource):
    """The CA (imported from the bootstrap node or generated), one apiserver serving cert per
    control-plane node, and the LB's health-check client cert."""

    def __init__(self, name: str, cluster: Cluster, ssh: Ssh,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("kube-ha:tls:ClusterCertificates", name, None, opts)
        self.ca_cert_pem, self.ca_key_pem = self._ca(name, cluster, ssh)
        self.apiserver: dict[str, IssuedCert] = {
            node.name: self.apiserver_cert(name, cluster, node) for node in cluster.control_plane
        }
        self.health = health = IssuedCert(f"{name}-lb-health-check", "kube-ha:lb-health-check", None,
                            CLIENT_USES, self.ca_cert_pem, self.ca_key_pem, cluster,
                            opts=pulumi.ResourceOptions(parent=self))
        # haproxy wants certificate and key in one file.
        self.health_client_pem: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.concat(health.cert_pem, health.key_pem))  # type: ignore[arg-type]
        self.register_outputs({"caCertPem": self.ca_cert_pem})

    def apiserver_cert(self, name: str, cluster: Cluster, node: Host) -> IssuedCert:
        return IssuedCert(f"{name}-apiserver-{node.name}", "kube-apiserver",
                          apiserver_sans(cluster, node), SERVER_USES, self.ca_cert_pem,
                          self.ca_key_pem, cluster, opts=pulumi.ResourceOptions(parent=self))

    def _ca(self, name: str, cluster: Cluster, ssh: Ssh
            ) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        if cluster.certificates.ca_source == "generate":
            key = tls.PrivateKey(f"{name}-ca-key", algorithm="RSA", rsa_bits=2048,
                                 opts=pulumi.ResourceOptions(parent=self))
            ca = tls.SelfSignedCert(
                f"{name}-ca",
                private_key_pem=key.private_key_pem,
                is_ca_certificate=True,
                validity_period_hours=87600,
                allowed_uses=["cert_signing", "crl_signing", "digital_signature",
                              "key_encipherment"],
                subject=tls.SelfSignedCertSubjectArgs(common_name="kubernetes"),
                opts=pulumi.ResourceOptions(parent=self),
            )
            return ca.cert_pem, pulumi.Output.secret(key.private_key_pem)
        # Read once: a kubeadm cluster's CA does not change, so moving or removing the
        # bootstrap node does not read it again (preview would otherwise not know it, and
        # show every certificate replaced). A `rotation` bump reads it again, from the
        # bootstrap node of that run: a step of a new name, made from the current inputs (the
        # old one has no delete). Rotation 0, the default, keeps earlier stacks' step.
        rotation = cluster.certificates.rotation
        read = run_script(f"{name}-read-ca" + (f"-rotation-{rotation}" if rotation else ""),
                          cluster.bootstrap, ssh, read_ca_script(), parent=self,
                          secret_stdout=True, read_once=True)
        pair = read.stdout.apply(split_pem_bundle)
        # The CA certificate is public; only the key stays secret.
        cert = pulumi.Output.unsecret(pair.apply(lambda p: p[0]))
        return cert, pulumi.Output.secret(pair.apply(lambda p: p[1]))
