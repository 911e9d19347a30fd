"""Policies for stacks of this program: guard rails a reviewer would otherwise check by hand.

Imported by __main__.py (which only builds the PolicyPack) and by the tests, which feed them the
resources the real program registers.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

COMMAND = "command:remote:Command"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
# Markers in what the program registers, each equal to the program's own constant (a test keeps
# them in step: this pack runs in its own venv and imports nothing from the program).
HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"  # kube_ha.paths.HAPROXY_CFG
HAPROXY_CHECK = 'haproxy -c -q -f "$tmp"'  # kube_ha.loadbalancer.scripts.HAPROXY_CHECK
GOES_LIVE = 'mv -f "$tmp" {path}'  # kube_ha.shell.GOES_LIVE
MEMBERSHIP_STEP = "-membership"  # components.kubeadm.MEMBERSHIP_STEP: one per etcd member
CONTROL_PLANE_STEP = "-control-plane"  # components.kubeadm.CONTROL_PLANE_STEP: init or join
WORKERS_STEP = "-workers"  # components.kubeadm.WORKERS_STEP: on the bootstrap node
POOL_TAINT = "kube-ha.io/elastic-apiserver=true:NoSchedule"  # kube_ha.elastic.pool
CONTROL_PLANE_ROLE = "node-role.kubernetes.io/control-plane"  # elastic.manifests.CONTROL_PLANE_LABEL
# How a kubeconfig is re-pointed (kube_ha.kubeadm.scripts._sed_server): `\1<url>#`.
REPOINT = re.compile(r"\\1(https://[^#\s'\"]+)#")
APISERVER_CN = "kube-apiserver"  # components.certificates: every apiserver serving certificate
SERVING_CSR = "-apiserver-{node}-csr"  # components.certificates: the static apiservers' own
ELASTIC_CSR = "-elastic-apiserver-serving-csr"  # components.elastic_apiserver
ELASTIC_SERVER = "elastic-"  # kube_ha.topology.lb_backends: an elastic pool node's server line
CERT_REQUEST = "tls:index/certRequest:CertRequest"
_SECRET_ON_COMMAND_LINE = re.compile(
    r"PRIVATE KEY-----|--token[= ]|--certificate-key[= ]|--discovery-token-ca-cert-hash")


def _no_secret_on_command_line(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != COMMAND:
        return
    for field in ("create", "update", "delete"):
        text = str(args.props.get(field) or "")
        if _SECRET_ON_COMMAND_LINE.search(text):
            report(f"`{field}` carries a key or token: the engine logs command strings and prints "
                   "them in errors. Pass secrets on stdin (a secret input) instead.", None)


def _ssh_host_key_verified(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != COMMAND:
        return
    connection = args.props.get("connection") or {}
    if not connection.get("hostKey"):
        report(f"connects to {connection.get('host')} without a hostKey: the SSH client then "
               "accepts any host key, and whoever answers on that address receives root scripts "
               "carrying the cluster's keys and join tokens. Give the host a hostKey in the stack "
               "config.", None)


def _scripts_update_in_place(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != COMMAND:
        return
    if args.props.get("triggers"):
        report("`triggers` always replace the command (create new, then delete old); put the "
               "content in stdin so a change is an in-place update.", None)
    if args.props.get("stdin") and args.props.get("update") != args.props.get("create"):
        report("a script on stdin needs update == create, or edits re-run nothing.", None)


def _haproxy_validated_before_live(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != COMMAND:
        return
    stdin = str(args.props.get("stdin") or "")
    move = stdin.find(GOES_LIVE.format(path=HAPROXY_CFG))
    if move < 0:
        return
    check = stdin.find(HAPROXY_CHECK)
    if check < 0 or move < check:
        report("haproxy.cfg is written without `haproxy -c` before it goes live.", None)


def _no_host_pki(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != DEPLOYMENT:
        return
    pod = (args.props.get("spec") or {}).get("template", {}).get("spec", {})
    for volume in pod.get("volumes") or []:
        path = (volume.get("hostPath") or {}).get("path", "")
        if path.startswith("/etc/kubernetes"):
            report(f"volume {volume.get('name')!r} mounts {path} from the host: control-plane "
                   "keys belong in Secrets, not on whichever node the pod lands.", None)


# Labels a kubelet cannot set on its own Node under NodeRestriction (KEP-279).
_PROTECTED_LABEL_PREFIXES = ("node-restriction.kubernetes.io/", "node-role.kubernetes.io/")


def _key_holding_pod(args: ResourceValidationArgs) -> tuple[dict[str, Any], list[str]] | None:
    """The pod spec and Secret names of a Deployment that mounts one of our key Secrets
    (`kube-ha-*-pki`), else None."""
    if args.resource_type != DEPLOYMENT:
        return None
    pod = (args.props.get("spec") or {}).get("template", {}).get("spec", {})
    secrets = [s for v in pod.get("volumes") or [] for s in _secret_names(v)]
    if not any(name.startswith("kube-ha-") and name.endswith("-pki") for name in secrets):
        return None
    return pod, secrets


def _key_holding_pods_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """A Deployment mounting one of our key Secrets is placed only by labels a compromised
    kubelet cannot give its own Node, and by the node's name."""
    found = _key_holding_pod(args)
    if found is None:
        return
    pod, secrets = found
    selector = pod.get("nodeSelector") or {}
    if not selector or not all(k.startswith(_PROTECTED_LABEL_PREFIXES) for k in selector):
        report(f"mounts {secrets} but is placed by {sorted(selector)}: a kubelet can set these "
               "labels on its own Node. Select with node-restriction.kubernetes.io/ or "
               "node-role.kubernetes.io/ labels.", None)
    terms = _required_terms(pod)
    if not terms or any(t.get("matchExpressions") or not t.get("matchFields") for t in terms):
        report("node affinity must name the nodes with matchFields on metadata.name, not with "
               "labels such as kubernetes.io/hostname that the kubelet sets itself.", None)


def _key_holding_images_by_digest(args: ResourceValidationArgs, report: ReportViolation
                                  ) -> None:
    """A tag is whatever the registry (or a mirror's operator) says today; a digest is content."""
    found = _key_holding_pod(args)
    for c in (found[0].get("containers") or []) if found else []:
        if "@sha256:" not in str(c.get("image", "")):
            report(f"{c.get('name')} runs {c.get('image')} by tag with the cluster's keys mounted. "
                   "Pin it: imageDigests.<component> in the stack config.", None)


def _secret_names(volume: dict[str, Any]) -> list[str]:
    if "secret" in volume:
        return [volume["secret"].get("secretName", "")]
    sources = (volume.get("projected") or {}).get("sources") or []
    return [src["secret"].get("name", "") for src in sources if "secret" in src]


def _leader_election(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != DEPLOYMENT:
        return
    pod = (args.props.get("spec") or {}).get("template", {}).get("spec", {})
    for c in pod.get("containers") or []:
        command: list[Any] = c.get("command") or []
        if command and command[0] in ("kube-controller-manager", "kube-scheduler") and (
                "--leader-elect=true" not in command):
            report(f"{command[0]} without --leader-elect=true would run beside the static pod "
                   "and act twice on every object.", None)


def _hpa_owns_replicas(args: StackValidationArgs, report: ReportViolation) -> None:
    deployments = {(r.props.get("metadata") or {}).get("name"): r
                   for r in args.resources if r.resource_type == DEPLOYMENT}
    for hpa in (r for r in args.resources if r.resource_type == HPA):
        target = ((hpa.props.get("spec") or {}).get("scaleTargetRef") or {}).get("name")
        dep = deployments.get(target)
        if dep is not None and "replicas" in (dep.props.get("spec") or {}):
            report(f"Deployment {target!r} sets spec.replicas while HPA {hpa.name!r} scales it: "
                   "every update would reset the HPA's count.", dep.urn)


def _required_terms(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod's required node affinity terms."""
    required = (((pod.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    return list(required.get("nodeSelectorTerms") or [])


def _named_nodes(pod: dict[str, Any]) -> list[str]:
    return [v for term in _required_terms(pod)
            for f in term.get("matchFields") or [] if f.get("key") == "metadata.name"
            for v in f.get("values") or []]


# The toleration POOL_TAINT asks for (`key=value:effect`).
_POOL_KEY, _, _rest = POOL_TAINT.partition("=")
POOL_TOLERATION = {"key": _POOL_KEY, "operator": "Equal",
                   "value": _rest.partition(":")[0], "effect": _rest.partition(":")[2]}


def _key_holding_pool_dedicated(args: StackValidationArgs, report: ReportViolation) -> None:
    """Pods holding the cluster's keys off the control plane (the elastic apiservers) run only
    on control-plane nodes or on workers a step taints for them, so that no other workload
    shares those nodes; and they tolerate that taint."""
    commands = [r for r in args.resources if r.resource_type == COMMAND]
    # Every node step is named `<prefix>-<node>-<step>`, the workers step `<prefix>-workers`.
    names = {r.name for r in commands}
    prefixes = {n.removesuffix(WORKERS_STEP) for n in names if n.endswith(WORKERS_STEP)}
    tainted = {node for r in commands
               for node in re.findall(r"taint nodes (\S+) " + re.escape(POOL_TAINT) + " ",
                                      str(r.props.get("stdin") or ""))}
    for r in args.resources:
        found = _key_holding_pod(ResourceValidationArgs(r.resource_type, r.props, r.urn, r.name,
                                                        r.opts, None))
        if found is None or CONTROL_PLANE_ROLE in (found[0].get("nodeSelector") or {}):
            continue
        bare = sorted(n for n in set(_named_nodes(found[0])) - tainted
                      if not any(f"{p}-{n}{CONTROL_PLANE_STEP}" in names for p in prefixes))
        if bare:
            report(f"{r.name} runs the cluster's keys on {', '.join(bare)}, which no step taints "
                   f"({POOL_TAINT}): any other pod may share those nodes. Taint them (the "
                   "program's elastic pool step does) and tolerate only that taint.", r.urn)
        if not any(all(t.get(k) == v for k, v in POOL_TOLERATION.items())
                   for t in found[0].get("tolerations") or []):
            report(f"{r.name} does not tolerate {POOL_TAINT}: it cannot run on its pool.", r.urn)


def _normal(name: str) -> str:
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name.lower()


def _names_on_each_hop(args: StackValidationArgs, report: ReportViolation) -> None:
    """Every name a client dials is in every certificate served on that hop. Kubeconfigs are
    re-pointed at a URL (the endpoint, its VIP or DNS name, or 127.0.0.1 with node-local
    proxies) that any apiserver may answer through the LB or proxy, so each apiserver serving
    certificate names it; and each LB or proxy health check verifies the name it sends
    (`verifyhost`), so the certificates of the servers it checks name that."""
    served: dict[str, set[str]] = {}
    for r in args.resources:
        subject = (r.props or {}).get("subject") or {}
        if r.resource_type == CERT_REQUEST and subject.get("commonName") == APISERVER_CN:
            served[r.name] = {_normal(str(n)) for n in (r.props.get("dnsNames") or [])} | {
                _normal(str(n)) for n in (r.props.get("ipAddresses") or [])}
    if not served:
        return
    dialled: dict[str, str] = {}
    checked: list[tuple[str, str, str]] = []  # (step, server, verified name)
    for r in args.resources:
        if r.resource_type != COMMAND:
            continue
        text = str((r.props or {}).get("stdin") or "")
        for url in REPOINT.findall(text):
            dialled.setdefault(_normal(urlsplit(url).hostname or ""), r.name)
        default = ""
        for line in text.splitlines():
            words = line.split()
            if words[:1] == ["default-server"] and "verifyhost" in words:
                default = words[words.index("verifyhost") + 1]
            elif words[:1] == ["server"] and "no-check" not in words and len(words) > 1:
                name = words[words.index("verifyhost") + 1] if "verifyhost" in words else default
                if name:
                    checked.append((r.name, words[1], _normal(name)))
    for host, step in sorted(dialled.items()):
        for csr, names in sorted(served.items()):
            if host not in names:
                report(f"{step} points kubeconfigs at {host}, which {csr} (served on that hop) "
                       "does not name: those clients would fail x509 verification there.", None)
    for step, server, name in checked:
        own = [c for c in served if (c.endswith(ELASTIC_CSR) if server.startswith(ELASTIC_SERVER)
                                     else c.endswith(SERVING_CSR.format(node=server)))]
        for csr in own:
            if name not in served[csr]:
                report(f"{step} checks server {server} for {name}, which {csr} does not name: "
                       "the check would keep it DOWN.", None)


CERTIFICATES = ("tls:index/locallySignedCert:LocallySignedCert",
                "tls:index/selfSignedCert:SelfSignedCert")
EXPIRY_WARNING = timedelta(days=30)


STACK_REFERENCE = "pulumi:pulumi:StackReference"
COPIES_OUTPUT = "controlPlaneCopies"  # components/cluster_access.py


def _certificate_expiry(args: StackValidationArgs, report: ReportViolation) -> None:
    """Nothing expires silently: any certificate within 30 days of its end is reported with
    the way to renew it. Issued ones carry the provider's validityEndTime (RFC 3339); the
    copies of the nodes' files are dated in the stack's `controlPlaneCopies` output, which
    the program reads back through a reference to its own stack."""
    soon = datetime.now(UTC) + EXPIRY_WARNING
    for r in args.resources:
        props = r.props or {}
        if r.resource_type in CERTIFICATES and props.get("validityEndTime"):
            end = str(props["validityEndTime"])
            if datetime.fromisoformat(end) <= soon:
                report(f"{r.name} expires {end}: run `pulumi up` (it re-issues certificates once "
                       "per renewal period) or bump certificates.rotation.", r.urn)
        elif r.resource_type == STACK_REFERENCE:
            copies = ((props.get("outputs") or {}).get(COPIES_OUTPUT) or {}).get("expiry") or {}
            for name, end in sorted(copies.items()):
                if datetime.fromisoformat(str(end)) <= soon:
                    report(f"the copy of the bootstrap node's {name} expires {end}: renew it there "
                           "(`kubeadm certs renew all`, or a kubeadm upgrade), then `pulumi up` "
                           "re-reads it.", r.urn)


def _odd_control_plane(args: StackValidationArgs, report: ReportViolation) -> None:
    members = [r for r in args.resources
               if r.resource_type == COMMAND and r.name.endswith(MEMBERSHIP_STEP)]
    if members and len(members) % 2 == 0:
        report(f"{len(members)} control-plane nodes: an even etcd member count tolerates no more "
               "failures than one fewer. Add or remove one.", None)


POLICIES = [
    ResourceValidationPolicy(
        name="no-secret-on-command-line", enforcement_level=EnforcementLevel.MANDATORY,
        description="Remote commands carry keys and tokens on stdin, never in command strings.",
        validate=_no_secret_on_command_line),
    ResourceValidationPolicy(
        name="ssh-host-key-verified", enforcement_level=EnforcementLevel.MANDATORY,
        description="Every remote command pins its host's SSH host key.",
        validate=_ssh_host_key_verified),
    ResourceValidationPolicy(
        name="scripts-update-in-place", enforcement_level=EnforcementLevel.MANDATORY,
        description="Script changes update commands in place (no triggers, update == create).",
        validate=_scripts_update_in_place),
    ResourceValidationPolicy(
        name="haproxy-validated-before-live", enforcement_level=EnforcementLevel.MANDATORY,
        description="haproxy.cfg passes `haproxy -c` before it replaces the live file.",
        validate=_haproxy_validated_before_live),
    ResourceValidationPolicy(
        name="no-host-pki", enforcement_level=EnforcementLevel.MANDATORY,
        description="Control-plane Deployments take certificates from Secrets, not hostPath.",
        validate=_no_host_pki),
    ResourceValidationPolicy(
        name="key-holding-pods-pinned", enforcement_level=EnforcementLevel.MANDATORY,
        description="Pods mounting the cluster's keys run only on nodes chosen by name and by "
                    "labels a kubelet cannot set.",
        validate=_key_holding_pods_pinned),
    ResourceValidationPolicy(
        name="key-holding-images-by-digest", enforcement_level=EnforcementLevel.ADVISORY,
        description="Pods mounting the cluster's keys run images pinned by digest.",
        validate=_key_holding_images_by_digest),
    ResourceValidationPolicy(
        name="leader-election", enforcement_level=EnforcementLevel.MANDATORY,
        description="Extra controller-managers and schedulers join the static pods' election.",
        validate=_leader_election),
    StackValidationPolicy(
        name="key-holding-pool-dedicated", enforcement_level=EnforcementLevel.MANDATORY,
        description="Pods holding the cluster's keys off the control plane run only on nodes "
                    "tainted for them.",
        validate=_key_holding_pool_dedicated),
    StackValidationPolicy(
        name="names-covered-on-each-hop", enforcement_level=EnforcementLevel.MANDATORY,
        description="Every name a client dials is in every certificate served on that hop.",
        validate=_names_on_each_hop),
    StackValidationPolicy(
        name="hpa-owns-replicas", enforcement_level=EnforcementLevel.MANDATORY,
        description="A Deployment scaled by an HPA does not set spec.replicas.",
        validate=_hpa_owns_replicas),
    StackValidationPolicy(
        name="certificate-expiry", enforcement_level=EnforcementLevel.ADVISORY,
        description="No certificate this stack issues is within 30 days of expiry.",
        validate=_certificate_expiry),
    StackValidationPolicy(
        name="odd-control-plane", enforcement_level=EnforcementLevel.ADVISORY,
        description="An odd number of control-plane (etcd) members.",
        validate=_odd_control_plane),
]
