"""Engine mocks: record every resource, and compute what providers would (real certificates).

Mocks stand in for the Pulumi engine only. The tls "provider" here does real X.509 with
`cryptography`, so downstream checks (openssl, kubectl, haproxy) see real PEMs; remote commands
answer with what the host would print (a CA bundle, join credentials).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pulumi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from google.protobuf import json_format
from pulumi.runtime.mocks import MockMonitor

from tests.harness import pki

SECRET_SIG = "4dabf18193072939515e22adb298388d"


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270"


def seen_by_engine(new: dict[str, Any], old: dict[str, Any], ignored: tuple[str, ...]
                   ) -> dict[str, Any]:
    """`new` after the engine put back the old value of each ignored input (pkg/resource/
    deploy/step_generator.go processIgnoreChanges; only top-level names are used here)."""
    out = dict(new)
    for key in ignored:
        assert key.isidentifier(), f"nested ignore_changes path {key!r} is not modelled"
        if key in old:
            out[key] = old[key]
        else:
            out.pop(key, None)
    return out


def plain(value: Any) -> Any:
    """Unwrap secret markers, recursively."""
    if is_secret(value):
        return plain(value["value"])
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


@dataclass
class Recorded:
    typ: str
    name: str
    inputs: dict[str, Any]

    @property
    def plain(self) -> dict[str, Any]:
        return plain(self.inputs)


def _csr(key_pem: str, subject: dict[str, Any], dns: list[str], ips: list[str]) -> str:
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, subject.get("commonName", ""))]
    if subject.get("organization"):
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject["organization"]))
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    if dns or ips:
        builder = builder.add_extension(x509.SubjectAlternativeName(pki._sans(dns, ips)), False)
    return builder.sign(key, hashes.SHA256()).public_bytes(  # type: ignore[arg-type]
        serialization.Encoding.PEM).decode()


@dataclass
class Registration:
    urn: str
    typ: str
    name: str
    parent: str
    dependencies: list[str]
    secret_outputs: list[str]
    replacement_trigger: Any = None
    # The URNs this resource was known by before (its `aliases`, resolved as the engine does).
    alias_urns: tuple[str, ...] = ()
    # The engine never calls the provider's Delete for it (the `retainOnDelete` option).
    retain_on_delete: bool = False


class RecordingMonitor(MockMonitor):
    """The engine's view of each registration: parent, dependencies, secret outputs."""

    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.registrations: dict[str, Registration] = {}

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """The engine's URN: every ancestor's type joined by `$`, the root Stack's left out
        (pulumi/pulumi sdk/go/common/resource/urn.go `NewURN`: `parentType != RootStackType`;
        the parent type is the parent URN's whole qualified type). MockMonitor keeps only the
        parent's own type, which would let a re-parent two levels up go unseen."""
        if not parent:
            return super().make_urn(parent, type_, name)
        qualified = parent.split("::")[2]
        if qualified != "pulumi:pulumi:Stack":
            type_ = f"{qualified}${type_}"
        return "::".join(["urn:pulumi:" + parent.split("::")[0].removeprefix("urn:pulumi:"),
                          parent.split("::")[1], type_, name])

    def RegisterResource(self, request):  # type: ignore[no-untyped-def]  # noqa: N802
        ignored = tuple(request.ignoreChanges)
        trigger = None
        if request.HasField("replacement_trigger"):
            trigger = json_format.MessageToDict(request.replacement_trigger)
        if isinstance(self.mocks, ClusterMocks):
            with self.mocks.lock:
                self.mocks.ignore_changes[request.name] = ignored
                self.mocks.triggers[request.name] = trigger
        response = super().RegisterResource(request)
        self.registrations[request.name] = Registration(
            response.urn, request.type, request.name, request.parent,
            list(request.dependencies), list(request.additionalSecretOutputs), trigger,
            tuple(self._alias_urn(request, alias) for alias in request.aliases),
            request.HasField("retainOnDelete") and request.retainOnDelete)
        return response

    def _alias_urn(self, request: Any, alias: Any) -> str:
        """An alias as the engine resolves it (pulumi/pulumi pkg/resource/deploy/
        step_generator.go `collapseAliasToUrn`): name and type default to the resource's own,
        the parent to its own parent (`noParent` drops it), and the URN is built as for any
        child (sdk/go/common/resource/alias.go `CreateURN`). The Python SDK sends
        `Alias(parent=component)` as a spec with only `parentUrn` set (runtime/resource.py
        `create_alias_spec`)."""
        if alias.HasField("urn"):
            return str(alias.urn)
        spec = alias.spec
        parent = "" if spec.noParent else (spec.parentUrn or request.parent)
        return self.make_urn(parent, spec.type or request.type, spec.name or request.name)

    def by_urn(self, urn: str) -> Registration:
        return next(r for r in self.registrations.values() if r.urn == urn)

    def command_chain_depth(self) -> int:
        """Longest dependency path, counted in remote commands."""
        commands = {r.urn: r for r in self.registrations.values()
                    if r.typ == "command:remote:Command"}
        memo: dict[str, int] = {}

        def depth(urn: str) -> int:
            if urn not in memo:
                deps = [d for d in commands[urn].dependencies if d in commands]
                memo[urn] = 1 + max((depth(d) for d in deps), default=0)
            return memo[urn]

        return max((depth(u) for u in commands), default=0)


# One CA and one key per resource name for the whole test session, and certificates cached by
# their inputs: two runs of the program with the same config produce the same state, so tests
# can diff what a config edit changes.
_CA = pki.make_ca("kubernetes")
_KEYS: dict[str, str] = {}
_DERIVED: dict[tuple[str, str], str] = {}


def kubeadm_static_flags(c: Any, component: str,
                         extra_args: dict[str, list[dict[str, str]]] | None = None) -> list[str]:
    """The flags the kubeadm stand-in writes into the bootstrap node's static pod of
    `component` for cluster `c` (a kube_ha Cluster), `extra_args` per ClusterConfiguration
    section merged in."""
    from tests.harness.standins import kubeadm

    cc = {"certificatesDir": "/etc/kubernetes/pki", "clusterName": c.name,
          "networking": {"dnsDomain": c.networking.cluster_domain,
                         "serviceSubnet": c.networking.service_subnet,
                         "podSubnet": c.networking.pod_subnet},
          **{k: {"extraArgs": (extra_args or {}).get(k)}
             for k in ("apiServer", "controllerManager", "scheduler")}}
    if component == "kube-apiserver":
        return kubeadm._apiserver_flags(str(c.bootstrap.address), c.apiserver_port, cc)
    if component == "kube-controller-manager":
        return kubeadm._controller_manager_flags(cc)
    return kubeadm._scheduler_flags(cc)


class ClusterMocks(pulumi.runtime.Mocks):
    """Keeps every resource it sees in `resources`, in registration order."""

    def __init__(self) -> None:
        self.resources: list[Recorded] = []
        self.lock = threading.Lock()
        self.ca = _CA
        self.outputs: dict[str, dict[str, Any]] = {}
        # Each resource's `ignore_changes` and `replacement_trigger`, as the monitor saw them
        # before calling new_resource.
        self.ignore_changes: dict[str, tuple[str, ...]] = {}
        self.triggers: dict[str, Any] = {}
        # The last `up`'s resources {name: (type, inputs, replacement trigger, state)}, when this
        # run is the next one (see `after`).
        self.previous: dict[str, tuple[str, dict[str, Any], Any, dict[str, Any]]] = {}
        # Each resource's inputs as the engine stores them (and hands its provider): the
        # program's, with the old value of every `ignore_changes` input put back.
        self.stored: dict[str, dict[str, Any]] = {}
        self.files_suffix = ""  # what the node's copied files hold differs when set
        # When the certificates in the copied files end (kubeadm issues them for a year).
        self.copied_not_after = datetime(2027, 11, 22, tzinfo=UTC)
        # The stack outputs of the last `up`, as a StackReference to this stack reads them.
        self.previous_outputs: dict[str, Any] = {}
        # The stack config the program runs with (tests/program.run_program sets it): the
        # bootstrap node's static pods are what kubeadm wrote for it, with `extra_args`
        # {kubeadm component key: [{name, value}]} merged in, and `host_files` {path: text}
        # beside them.
        self.config: dict[str, Any] = {}
        self.extra_args: dict[str, list[dict[str, str]]] = {}
        self.host_files: dict[str, str] = {}

    def after(self, before: ClusterMocks) -> ClusterMocks:
        """Make this the engine of the run after `before`: a resource the engine sees
        unchanged (same type and replacement trigger, the same inputs once `ignore_changes` put
        the old values back) is not sent to its provider and keeps the state it had; any
        other is computed afresh. A StackReference is read on every run."""
        self.previous = {r.name: (r.typ, before.stored[r.name], before.triggers.get(r.name),
                                  before.outputs[r.name]) for r in before.resources}
        return self

    def engine_inputs(self, name: str, typ: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """The inputs the engine stores and sends to the provider, for an update and for a
        replacement alike (pkg/resource/deploy/step_generator.go: processIgnoreChanges runs
        before the diff; only a targeted `--replace` takes the program's values)."""
        old = self.previous.get(name)
        if old is None or old[0] != typ:
            return inputs
        with self.lock:
            ignored = self.ignore_changes.get(name, ())
        return seen_by_engine(inputs, old[1], ignored)

    def kept_state(self, name: str, typ: str, stored: dict[str, Any]) -> dict[str, Any] | None:
        """The state the engine keeps for an unchanged resource; None when it changed."""
        old = self.previous.get(name)
        if old is None or old[0] != typ or typ == "pulumi:pulumi:StackReference":
            return None
        with self.lock:
            trigger = self.triggers.get(name)
        if trigger != old[2] or stored != old[1]:
            return None
        return dict(old[3])

    def by_type(self, typ: str) -> list[Recorded]:
        return [r for r in self.resources if r.typ == typ]

    def named(self, name: str) -> Recorded:
        return next(r for r in self.resources if r.name == name)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        with self.lock:
            self.resources.append(Recorded(args.typ, args.name, dict(args.inputs)))
        inputs = self.engine_inputs(args.name, args.typ, plain(dict(args.inputs)))
        with self.lock:
            self.stored[args.name] = inputs
        state = self.kept_state(args.name, args.typ, inputs)
        if state is None:
            state = self.computed(args.typ, args.name, inputs)
        with self.lock:
            self.outputs[args.name] = state
        return f"{args.name}-id", state

    def computed(self, typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """What the provider answers for a created, updated or replaced resource."""
        state = dict(inputs)
        digest = (name, json.dumps(inputs, sort_keys=True, default=str))
        if typ == "tls:index/privateKey:PrivateKey":
            # A new key for each replacement trigger: a replaced key is a new key.
            trigger = json.dumps(self.triggers.get(name), sort_keys=True)
            key = _KEYS.setdefault(f"{name} {trigger}", pki.new_key_pem())
            state.update(privateKeyPem=key, publicKeyPem="")
        elif typ == "tls:index/certRequest:CertRequest":
            state["certRequestPem"] = _DERIVED.setdefault(digest, _csr(
                inputs["privateKeyPem"], inputs.get("subject") or {},
                inputs.get("dnsNames") or [], inputs.get("ipAddresses") or []))
        elif typ == "tls:index/locallySignedCert:LocallySignedCert":
            # setdefault, not check-then-set: resources register on several threads, and a
            # second signature of the same inputs would differ (ECDSA is randomised).
            state["certPem"] = _DERIVED.get(digest) or _DERIVED.setdefault(
                digest, self._sign(inputs))
            # The provider records the validity window in RFC 3339 (terraform-provider-tls
            # validity_end_time); the policy pack and the certificateExpiry output read it.
            end = x509.load_pem_x509_certificate(state["certPem"].encode()).not_valid_after_utc
            state["validityEndTime"] = end.strftime("%Y-%m-%dT%H:%M:%SZ")
        elif typ == "tls:index/selfSignedCert:SelfSignedCert":
            key = inputs["privateKeyPem"]
            state["certPem"] = _DERIVED.setdefault(digest, pki.build_cert(
                subject_key_pem=key, common_name=(inputs.get("subject") or {}).get(
                    "commonName", "ca"), issuer=None, is_ca=True))
        elif typ == "command:remote:Command":
            state["stdout"] = self._stdout(inputs.get("stdin") or "",
                                           str((inputs.get("connection") or {}).get("host")),
                                           digest[1])
            state["stderr"] = ""
        elif typ == "pulumi:pulumi:StackReference":
            # The engine's builtin provider (builtins.go readStackReference): the referenced
            # stack's last outputs and which of them are secret.
            state.update(outputs=self.previous_outputs, secretOutputNames=[])
        return state

    def _sign(self, inputs: dict[str, Any]) -> str:
        csr = x509.load_pem_x509_csr(inputs["certRequestPem"].encode())
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            dns = san.get_values_for_type(x509.DNSName)
            ips = [str(i) for i in san.get_values_for_type(x509.IPAddress)]
        except x509.ExtensionNotFound:
            dns, ips = [], []
        cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        orgs = csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        issuer = pki.KeyPair(inputs["caCertPem"], inputs["caPrivateKeyPem"])
        # The CSR carries the public key; rebuild the cert around the same key the mock issued.
        subject_key = self._key_for(csr)
        return pki.build_cert(subject_key_pem=subject_key, common_name=str(cn), issuer=issuer,
                              dns=dns, ips=ips, uses=inputs.get("allowedUses") or [],
                              org=str(orgs[0].value) if orgs else None,
                              hours=int(inputs.get("validityPeriodHours") or 24))

    def _key_for(self, csr: x509.CertificateSigningRequest) -> str:
        want = csr.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        for r in self.by_type("tls:index/certRequest:CertRequest"):
            key_pem = plain(r.inputs).get("privateKeyPem")
            if not isinstance(key_pem, str):
                continue
            key = serialization.load_pem_private_key(key_pem.encode(), None)
            if key.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo) == want:
                return key_pem
        raise AssertionError("no private key for this CSR")

    def _stdout(self, script: str, host: str = "", run: str = "") -> str:
        """What the step prints when it runs on `host`; `run` tells one run from another
        (the step's inputs: a step runs again only when they changed)."""
        if "kube-ha: read-ca" in script:
            return self.ca.cert_pem + self.ca.key_pem
        if "kube-ha: join-credentials" in script:
            # `kubeadm token create` prints a new random token on every run (and `kubeadm
            # init phase upload-certs` a new certificate key): a step that runs again hands
            # its joins new credentials; one the engine leaves alone keeps what it printed.
            secret = hashlib.sha256((host + run).encode()).hexdigest()
            return json.dumps({"token": f"abcdef.{secret[:16]}", "caCertHash": "sha256:" + "0" * 64,
                               "certificateKey": "f" * 64})
        if "kube-ha: read-admin-kubeconfig" in script:
            return admin_kubeconfig(self.copied_not_after, _node_marker(host))
        if "kube-ha: read-control-plane-files" in script:
            keys = re.findall(r'out\+="\$sep\\"([^\\]+)\\"', script)
            return json.dumps({k.strip("'"): base64.b64encode(
                self._copied(k.strip("'"), host).encode()).decode() for k in keys})
        if "kube-ha: read-static-pod" in script:
            return self._static_pod(script)
        return ""

    def _static_pod(self, script: str) -> str:
        """What read_static_pod_script prints on a node kubeadm built from this stack: the
        manifest the kubeadm stand-in writes (getXCommand, cited there), each file its carried
        flags name."""
        from kube_ha.config import parse_cluster
        from kube_ha.elastic.carry import CARRIED_FILE_FLAGS, host_paths, split_flag
        from tests.harness.standins import common

        match = re.search(r"/etc/kubernetes/manifests/([a-z-]+)\.yaml", script)
        assert match, "a static pod read names its manifest"
        comp = match[1]
        c = parse_cluster(self.config)
        flags = kubeadm_static_flags(c, comp, self.extra_args)
        image = f"{c.image_repository}/{comp}:{c.kubernetes_version}"
        manifest = common.static_pod(comp, [comp, *flags], image=image)
        lines = [f"manifest {base64.b64encode(manifest.encode()).decode()}"]
        for name, value in map(split_flag, flags):
            if name in CARRIED_FILE_FLAGS[comp] and value:
                for path in host_paths(name, value):
                    text = self.host_files.get(path, f"content of {path}\n")
                    lines.append(f"file {base64.b64encode(path.encode()).decode()} "
                                 f"{base64.b64encode(text.encode()).decode()}")
        return "\n".join(lines) + "\n"

    def _copied(self, key: str, host: str = "") -> str:
        """What a control-plane node's file holds: a kubeconfig, a certificate (both ending at
        copied_not_after) or other content; files_suffix marks a renewed one. Only the files
        kubeadm copies to every control-plane node are the same on each (SHARED_FILES); the
        others each node's join makes for itself, so their content depends on the node."""
        suffix = self.files_suffix + ("" if key in SHARED_FILES else _node_marker(host))
        if key.endswith(".conf"):
            return admin_kubeconfig(self.copied_not_after, suffix)
        if key.endswith(".crt"):
            return copied_cert(key, self.copied_not_after) + f"# {suffix}\n"
        return f"content of {key}{suffix}\n"

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        if args.token == "pulumi:pulumi:readStackOutputs":
            # The builtin provider's answer (builtins.go readStackReference): the referenced
            # stack's last outputs, and which are secret.
            return {"name": args.args["name"], "outputs": self.previous_outputs,
                    "secretOutputNames": []}, []
        return {}, []


# What `kubeadm join --control-plane --certificate-key` copies from the cluster, so the same
# on every control-plane node (kubernetes cmd/kubeadm/app/phases/copycerts/copycerts.go
# certsToTransfer: the CA, front-proxy CA, service-account and etcd CA pairs), by the Secret
# keys kube-ha stores them under. Every other certificate and kubeconfig (admin.conf,
# controller-manager.conf, front-proxy-client, apiserver-etcd-client...) is made by each node's
# own certs and kubeconfig phases: its content differs from node to node.
SHARED_FILES = frozenset({"ca.crt", "ca.key", "sa.key", "sa.pub", "front-proxy-ca.crt",
                          "front-proxy-ca.key", "etcd-ca.crt", "etcd-ca.key"})


def _node_marker(host: str) -> str:
    return f" made on {host}" if host else ""


_COPIED: dict[tuple[str, datetime], str] = {}


def copied_cert(label: str, not_after: datetime) -> str:
    """A kubeadm-like leaf certificate ending at `not_after` (the same PEM for the same label
    and end, so repeated runs see the same content)."""
    if (label, not_after) not in _COPIED:
        key = serialization.load_pem_private_key(_KEYS.setdefault("copied", pki.new_key_pem()).encode(),
                                                 None)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, label)])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key())  # type: ignore[arg-type]
                .serial_number(len(_COPIED) + 1)
                .not_valid_before(not_after - timedelta(days=365)).not_valid_after(not_after)
                .sign(key, hashes.SHA256()))  # type: ignore[arg-type]
        # The first one made wins: two reads on two threads must see the same file.
        _COPIED.setdefault((label, not_after), cert.public_bytes(serialization.Encoding.PEM).decode())
    return _COPIED[(label, not_after)]


def admin_kubeconfig(not_after: datetime, marker: str = "") -> str:
    """admin.conf as kubeadm writes it: the client certificate inline (its own one per
    `marker`: a node, a renewal)."""
    data = base64.b64encode(copied_cert(f"kubernetes-admin{marker}", not_after).encode()).decode()
    return ADMIN_KUBECONFIG.replace("client-certificate-data: ZmFrZQ==",
                                    f"client-certificate-data: {data}") + (
        f"# {marker}\n" if marker else "")


ADMIN_KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: ZmFrZQ==
    server: https://10.21.22.101:6443
  name: kubernetes
contexts:
- context: {cluster: kubernetes, user: kubernetes-admin}
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
users:
- name: kubernetes-admin
  user: {client-certificate-data: ZmFrZQ==, client-key-data: ZmFrZQ==}
"""
