"""The elastic control plane: manifests (validated strictly), program wiring, and the LB
picking up an HPA-added apiserver with no new `pulumi up`."""

from __future__ import annotations

import copy
import threading
import time
from pathlib import Path
from typing import Any

import kubernetes_validate

from kube_ha.config import parse_cluster
from kube_ha.elastic import manifests as m
from kube_ha.elastic import pool
from kube_ha.loadbalancer.haproxy import render_haproxy_cfg
from kube_ha.membership import membership_record
from kube_ha.topology import elastic_apiserver_sans, elastic_san_marker
from tests.harness import pki
from tests.harness.hosts import host
from tests.harness.lab import Lab
from tests.mocks import ClusterMocks, is_secret, plain
from tests.program import Run, changed_between, dev_stack, run_program, value_of

K8S_PREFIX = "kubernetes:"


def _ints(value: Any) -> Any:
    """The engine carries numbers as floats; Kubernetes schemas want integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


def _version(raw: dict[str, Any]) -> str:
    major, minor = parse_cluster(raw).minor_version
    return f"{major}.{minor}.0"


def _k8s(run: Run, kind: str) -> dict[str, dict[str, Any]]:
    return {r.name: _ints(plain(r.inputs)) for r in run.mocks.resources
            if r.typ == f"kubernetes:{kind}"}


def test_rendered_manifests_validate_strictly(raw: dict[str, Any]) -> None:
    raw["kubeScheduler"] = {"replicas": 2}
    manifests = m.all_manifests(parse_cluster(raw))
    assert len(manifests) == 14
    for manifest in manifests.values():
        kubernetes_validate.validate(manifest, _version(raw), strict=True)


def test_program_manifests_validate_strictly(dev: Run) -> None:
    count = 0
    for rec in dev.mocks.resources:
        if not rec.typ.startswith(K8S_PREFIX) or rec.typ.endswith("Patch"):
            continue
        obj = _ints(plain(rec.inputs))
        kubernetes_validate.validate(obj, _version(dev_stack()), strict=True)
        count += 1
    assert count >= 8


def test_program_creates_exactly_the_rendered_manifests(dev: Run) -> None:
    rendered = m.all_manifests(parse_cluster(dev_stack()))
    deployments = _k8s(dev, "apps/v1:Deployment")
    elastic = deployments["kubernetes-elastic-apiserver-deployment"]
    want = rendered["elastic-apiserver-deployment.yaml"]
    # The program adds one thing the offline render cannot know: the digest of what the pods
    # mount (deploy-time content), which rolls them when it changes.
    spec = copy.deepcopy(elastic["spec"])
    assert len(spec["template"]["metadata"].pop("annotations")[m.CHECKSUM_ANNOTATION]) == 64
    assert spec == want["spec"] and elastic["metadata"] == want["metadata"]


def test_hpa_targets_the_deployment_and_deployment_leaves_replicas_to_it(dev: Run) -> None:
    dep = _k8s(dev, "apps/v1:Deployment")["kubernetes-elastic-apiserver-deployment"]
    hpa = _k8s(dev, "autoscaling/v2:HorizontalPodAutoscaler")["kubernetes-elastic-apiserver-hpa"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    assert "replicas" not in dep["spec"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 2)


def test_the_hpa_scales_on_cpu_and_on_memory_only_when_asked(raw: dict[str, Any]) -> None:
    """An apiserver's memory is mostly its watch cache, held whole by every replica: by
    default only CPU drives the HPA; a memory target is added when the stack sets one."""
    def targets(cluster_raw: dict[str, Any]) -> dict[str, int]:
        hpa = m.elastic_apiserver_hpa(parse_cluster(cluster_raw))
        return {x["resource"]["name"]: x["resource"]["target"]["averageUtilization"]
                for x in hpa["spec"]["metrics"]}

    assert targets(raw) == {"cpu": 70}
    raw["elasticApiserver"]["memoryTargetPercent"] = 90
    assert targets(raw) == {"cpu": 70, "memory": 90}


def test_elastic_apiservers_recycle_connections(dev: Run) -> None:
    """They close one HTTP/2 connection in a thousand requests (kube-apiserver
    --goaway-chance: 0 is off, at most .02), so clients that dial the endpoint spread onto
    replicas the HPA adds; the static apiservers' own flag is theirs, so the preflight's flag
    comparison skips it."""
    command = _k8s(dev, "apps/v1:Deployment")["kubernetes-elastic-apiserver-deployment"][
        "spec"]["template"]["spec"]["containers"][0]["command"]
    assert 0 < float(_flag(command, "goaway-chance")) <= 0.02
    assert "goaway-chance" in m.OWN_FLAGS["kube-apiserver"]


def _flag(command: list[str], name: str) -> str:
    return next(a.split("=", 1)[1] for a in command if a.startswith(f"--{name}="))


def test_probe_ports_match_flags_and_nothing_from_host_pki(dev: Run) -> None:
    for name, dep in _k8s(dev, "apps/v1:Deployment").items():
        pod = dep["spec"]["template"]["spec"]
        container = pod["containers"][0]
        port = int(_flag(container["command"], "secure-port"))
        for probe in ("startupProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["port"] == port, (name, probe)
            assert container[probe]["httpGet"]["scheme"] == "HTTPS"
        assert pod["priorityClassName"] == "system-cluster-critical"
        assert not any("hostPath" in v for v in pod["volumes"]), name
        assert all(vm["readOnly"] for vm in container["volumeMounts"]), name
        assert "podAntiAffinity" in pod["affinity"]
    cm = _k8s(dev, "apps/v1:Deployment")["kubernetes-controller-manager-deployment"]
    command = cm["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "--leader-elect=true" in command and _flag(command, "secure-port") == "10357"


def test_key_holding_pods_are_placed_only_by_what_a_kubelet_cannot_set(dev: Run) -> None:
    """NodeRestriction lets a kubelet set its own Node's labels except node-restriction.
    kubernetes.io/* and node-role.kubernetes.io/* (KEP-279; kubernetes plugin/pkg/admission/
    noderestriction): a worker that relabels itself `kubernetes.io/hostname` or any label of
    ours must not receive the pods holding sa.key, the etcd client key or the CA key."""
    deployments = _k8s(dev, "apps/v1:Deployment")
    cluster = parse_cluster(dev_stack())
    expect = {
        "kubernetes-elastic-apiserver-deployment": (
            {"node-restriction.kubernetes.io/kube-ha-elastic-apiserver": "true"},
            list(cluster.elastic_apiserver.pool_nodes)),
        "kubernetes-controller-manager-deployment": (
            {"node-role.kubernetes.io/control-plane": ""}, [h.name for h in cluster.control_plane]),
    }
    for name, (selector, nodes) in expect.items():
        pod = deployments[name]["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == selector, name
        terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"]
        assert terms == [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                           "values": nodes}]}], name
    patched = {plain(r.inputs)["metadata"]["name"]: plain(r.inputs)["metadata"]["labels"]
               for r in dev.mocks.by_type("kubernetes:core/v1:NodePatch")}
    assert patched == {n: {m.POOL_LABEL: "true"} for n in cluster.elastic_apiserver.pool_nodes}


def test_controller_manager_and_scheduler_listen_on_loopback_only(dev: Run) -> None:
    """As kubeadm's static pods: with hostNetwork, 0.0.0.0 would expose them on the node."""
    cm = _k8s(dev, "apps/v1:Deployment")["kubernetes-controller-manager-deployment"]
    container = cm["spec"]["template"]["spec"]["containers"][0]
    assert _flag(container["command"], "bind-address") == "127.0.0.1"
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["host"] == "127.0.0.1"
    sched = m.scheduler_deployment(parse_cluster({**dev_stack(), "kubeScheduler": {"replicas": 2}}))
    assert _flag(sched["spec"]["template"]["spec"]["containers"][0]["command"],
                 "bind-address") == "127.0.0.1"


def test_configured_digests_pin_the_deployed_images(dev: Run) -> None:
    """`imageDigests`: the runtime pulls `tag@digest` by the digest alone (the tag is kept for
    readers), so a registry cannot swap what runs with the cluster's keys; without it, tags."""
    digests = {"kube-apiserver": "sha256:" + "a" * 64,
               "kube-controller-manager": "sha256:" + "b" * 64}
    pinned = run_program({**dev_stack(), "imageDigests": digests})
    for run, expect in ((pinned, digests), (dev, {})):
        images = {c["name"]: c["image"] for d in _k8s(run, "apps/v1:Deployment").values()
                  for c in d["spec"]["template"]["spec"]["containers"]}
        assert images == {name: f"registry.k8s.io/{name}:v1.32.3"
                          + (f"@{expect[name]}" if name in expect else "")
                          for name in ("kube-apiserver", "kube-controller-manager")}
    sched = m.scheduler_deployment(parse_cluster(
        {**dev_stack(), "kubeScheduler": {"replicas": 2},
         "imageDigests": {"kube-scheduler": "sha256:" + "c" * 64}}))
    assert sched["spec"]["template"]["spec"]["containers"][0]["image"].endswith(
        ":v1.32.3@sha256:" + "c" * 64)


def test_graceful_shutdown_is_shorter_than_grace_period(dev: Run) -> None:
    dep = _k8s(dev, "apps/v1:Deployment")["kubernetes-elastic-apiserver-deployment"]
    pod = dep["spec"]["template"]["spec"]
    delay = int(_flag(pod["containers"][0]["command"], "shutdown-delay-duration").rstrip("s"))
    assert delay < pod["terminationGracePeriodSeconds"]


def test_every_mounted_secret_is_created_by_the_program(dev: Run) -> None:
    created = {s["metadata"]["name"] for s in _k8s(dev, "core/v1:Secret").values()}
    for name, dep in _k8s(dev, "apps/v1:Deployment").items():
        for volume in dep["spec"]["template"]["spec"]["volumes"]:
            sources = volume.get("projected", {}).get("sources", [])
            names = [s["secret"]["name"] for s in sources]
            if "secret" in volume:
                names.append(volume["secret"]["secretName"])
            assert names and set(names) <= created, (name, names, created)
    # Keys in Secrets are secret in state.
    for rec in dev.mocks.resources:
        if rec.typ == "kubernetes:core/v1:Secret":
            payload = rec.inputs.get("data") or rec.inputs.get("stringData") or {}
            assert is_secret(payload) or all(is_secret(v) for v in payload.values()), rec.name


def test_kubeconfig_is_secret_and_dials_the_endpoint(dev: Run) -> None:
    ha = dev.scope["ha"]
    text = value_of(ha.kubeconfig)
    assert "server: https://api.k8s.lab.internal:6443" in text
    provider = next(r for r in dev.mocks.resources if r.typ == "pulumi:providers:kubernetes")
    assert is_secret(provider.inputs["kubeconfig"])
    assert plain(provider.inputs["clusterIdentifier"]) == "kubernetes@api.k8s.lab.internal:6443"


def test_first_preview_with_unknown_kubeconfig_keeps_a_stable_provider() -> None:
    run = run_program(dev_stack(), preview=True)
    provider = next(r for r in run.mocks.resources if r.typ == "pulumi:providers:kubernetes")
    assert plain(provider.inputs["clusterIdentifier"]) == "kubernetes@api.k8s.lab.internal:6443"
    assert any(r.typ == "kubernetes:apps/v1:Deployment" for r in run.mocks.resources)


def test_the_provider_identity_survives_an_endpoint_or_name_change() -> None:
    """The identifier the stack's first run recorded (clusterIdentifier) is kept: a new
    endpoint (or clusterName) updates the provider's kubeconfig in place instead of replacing
    the provider and with it every in-cluster object. Without a record (a stack's first run,
    or its first with this version) it is the value earlier versions computed."""
    first = run_program(dev_stack())
    recorded = value_of(first.scope["ha"].access.cluster_identifier)
    assert recorded == "kubernetes@api.k8s.lab.internal:6443"
    moved = copy.deepcopy(dev_stack())
    moved["endpoint"].update(dnsName="api.k8s.prod.internal", port=8443)
    for previous, expected in (({"clusterIdentifier": recorded}, recorded),
                               ({}, "kubernetes@api.k8s.prod.internal:8443")):
        mocks = ClusterMocks()
        mocks.previous_outputs = previous
        run = run_program(moved, mocks=mocks)
        provider = next(r for r in run.mocks.resources if r.typ == "pulumi:providers:kubernetes")
        assert plain(provider.inputs["clusterIdentifier"]) == expected
        assert "api.k8s.prod.internal:8443" in value_of(run.scope["ha"].kubeconfig)


def test_changing_min_max_touches_only_the_hpa(dev: Run) -> None:
    raw = dev_stack()
    raw["elasticApiserver"].update(minReplicas=2, maxReplicas=2)
    assert changed_between(dev, run_program(raw)) == {"kubernetes-elastic-apiserver-hpa"}


def test_changing_the_pool_touches_affinity_labels_lb_and_the_pool_cert() -> None:
    raw = dev_stack()
    raw["workers"].append(host("ubuntu-81", "10.21.22.81"))
    base = run_program(copy.deepcopy(raw))
    raw["elasticApiserver"]["poolNodes"].append("ubuntu-81")
    changed = changed_between(base, run_program(raw))
    assert changed == {
        "kubernetes-elastic-apiserver-deployment",      # node affinity
        "kubernetes-elastic-apiserver-pool-ubuntu-81",  # the label (a new NodePatch)
        "kubernetes-kubeadm-elastic-pool",              # and the taint
        # Its firewall admits the LB to its elastic port and it probes etcd on the control
        # plane, which admits it to etcd; the LB probes its elastic port.
        "kubernetes-elastic-paths-ubuntu-81-firewall",
        "kubernetes-elastic-paths-ubuntu-70-firewall",
        "kubernetes-elastic-paths-ubuntu-72-firewall",
        "kubernetes-elastic-paths-ubuntu-73-firewall",
        "kubernetes-elastic-paths-haproxy-101-reach",
        "kubernetes-lb-haproxy-101-configure",          # a new backend line
        # One serving certificate names every pool node, so its request and Secret follow.
        "kubernetes-elastic-apiserver-serving-csr",
        "kubernetes-elastic-apiserver-serving-cert",
        "kubernetes-elastic-apiserver-serving-secret",
    }, changed


# --- the LB and the HPA, for real -------------------------------------------------------------

def test_switching_the_elastic_apiserver_off_removes_its_objects_and_lb_entries(dev: Run) -> None:
    """`elasticApiserver.enabled: false` on a running stack: its in-cluster objects are no longer
    registered, so `up` deletes them (pulumi-kubernetes deletes what leaves the program), the LB
    configs lose the pool's server lines (an in-place update of the configure step), and no
    remote step with a delete script is deleted (a remote delete resets a node or removes an
    etcd member): only the reads of its Secret's files and of the static pod it copies, and the
    LB's probe of the elastic ports, go. The pool step and the firewall steps stay, to untaint
    the workers and close what the last `up` opened."""
    raw = dev_stack()
    raw["elasticApiserver"]["enabled"] = False
    mocks = ClusterMocks()
    mocks.previous_outputs = {"membership": membership_record(parse_cluster(dev_stack()))}
    off = run_program(raw, mocks=mocks)
    before = {r.name: r.typ for r in dev.mocks.resources}
    after = {r.name: r.typ for r in off.mocks.resources}
    gone = set(before) - set(after)
    assert gone and all(n.startswith(("kubernetes-elastic-apiserver",
                                      "kubernetes-access-read-elastic-apiserver-pki",
                                      "kubernetes-access-read-static-kube-apiserver",
                                      "kubernetes-elastic-paths-haproxy-101-reach"))
                        for n in gone), gone
    assert {"kubernetes-elastic-apiserver-deployment", "kubernetes-elastic-apiserver-hpa",
            "kubernetes-elastic-apiserver-pool-ubuntu-74"} <= gone
    reads = sorted(n for n in gone if before[n].startswith("command:"))
    assert reads == ["kubernetes-access-read-elastic-apiserver-pki",
                     "kubernetes-access-read-static-kube-apiserver",
                     "kubernetes-elastic-paths-haproxy-101-reach"]
    assert not any(dev.inputs(n).get("delete") for n in reads)
    assert "kubernetes-lb-haproxy-101-configure" in changed_between(dev, off)
    untaint = off.inputs("kubernetes-kubeadm-elastic-pool")["stdin"]
    assert "ubuntu-74 kube-ha.io/elastic-apiserver:NoSchedule-" in untaint
    assert "ubuntu-75 kube-ha.io/elastic-apiserver:NoSchedule-" in untaint
    assert "--overwrite" not in untaint
    assert "server elastic-" in render_haproxy_cfg(parse_cluster(dev_stack()))
    assert "server elastic-" not in render_haproxy_cfg(parse_cluster(raw))


def test_hpa_added_apiserver_takes_traffic_within_3s_and_leaves_without_errors(tmp_path: Path
                                                                                ) -> None:
    lab = Lab(tmp_path, pool_n=2, drain_seconds=4)
    pool = [s for s in lab.servers if s.name.startswith("elastic-")]
    with lab:
        lab.start([s for s in lab.servers if s not in pool])
        lab.wait_states({"elastic-pool-1": "DOWN", "elastic-pool-2": "DOWN"}, 10)
        ready_at: list[float] = []

        def scale_out() -> None:
            def start() -> None:
                lab.start_backend(pool[0])  # returns once the pod's apiserver is serving
                ready_at.append(time.monotonic())
            threading.Thread(target=start, daemon=True).start()

        report = lab.load(8, 40, scale_out, fault_after=1)
        assert report.failed == [], report.summary()
        first = min(r.start for r in report.results if r.backend == "elastic-pool-1")
        assert first - ready_at[0] < 3.0, f"took {first - ready_at[0]:.2f}s"
        assert lab.states()["elastic-pool-2"] == "DOWN"  # a pool node with no pod gets nothing

        scale_in = lab.load(9, 40, lambda: lab.drain("elastic-pool-1"), fault_after=1,
                            watch="elastic-pool-1")
        assert scale_in.failed == [], scale_in.summary()
        assert pool[0].proc is not None and pool[0].proc.poll() is not None


def test_an_elastic_apiserver_on_its_certificate_from_before_a_san_change_stays_out(
        tmp_path: Path) -> None:
    """Issue 12 item 5. An elastic pod gets its re-issued certificate from a Secret the
    Kubernetes provider writes after every host was re-pointed at the new address (a VIP,
    127.0.0.1, an extra SAN), so the LB must not send it clients until it serves the new one.
    Its check verifies the marker name that stands for the current names (haproxy verifyhost
    checks DNS names only): on real haproxy, a pod still on the old certificate (which names
    the endpoint's DNS name and is signed by the cluster CA: only the marker tells it apart)
    stays DOWN and gets no request; once it serves the new one it is back in rotation."""
    probe = Lab(tmp_path / "probe", pool_n=1)
    assert probe.ca is not None
    before = parse_cluster(probe.raw_config())
    lab = Lab(tmp_path / "lab", pool_n=1, ca=probe.ca, prefix=probe.prefix,
              config_overrides={"certificates": {"extraSans": ["203.0.113.7"]}})
    old_sans = elastic_apiserver_sans(before)
    assert lab.dns_name in old_sans.dns_names
    assert elastic_san_marker(before) != elastic_san_marker(lab.cluster)
    lab.certs["elastic-pool-1"] = pki.issue(probe.ca, "kube-apiserver",
                                            dns=list(old_sans.dns_names),
                                            ips=list(old_sans.ip_addresses))
    with lab:
        lab.start()
        lab.wait_states({"cp-1": "UP", "cp-2": "UP", "cp-3": "UP"}, 10)
        lab.wait_states({"elastic-pool-1": "DOWN"}, 10)
        report = lab.load(3, 40)
        assert report.failed == [], report.summary()
        assert "elastic-pool-1" not in {r.backend for r in report.results}

        del lab.certs["elastic-pool-1"]  # the re-issued certificate, rolled out
        lab.crash("elastic-pool-1")
        lab.start_backend(lab.server("elastic-pool-1"))
        lab.wait_states({"elastic-pool-1": "UP"}, 10)
        report = lab.load(3, 40)
    assert report.failed == [], report.summary()
    assert "elastic-pool-1" in {r.backend for r in report.results}


def test_pods_restart_when_the_files_they_mount_change_and_only_then() -> None:
    """A Secret volume's files change in place, but kube-apiserver and kube-controller-manager
    read them only at start: a digest of the mounted content in the pod template rolls the pods
    when it changes (and not on an `up` that changes nothing)."""
    def annotations(suffix: str) -> dict[str, str]:
        mocks = ClusterMocks()
        mocks.files_suffix = suffix
        run = run_program(dev_stack(), mocks=mocks)
        return {r.name: plain(r.inputs)["spec"]["template"]["metadata"]["annotations"][
                    m.CHECKSUM_ANNOTATION]
                for r in run.mocks.by_type("kubernetes:apps/v1:Deployment")}

    first, same, rotated = annotations(""), annotations(""), annotations(" (renewed)")
    assert set(first) == {"kubernetes-elastic-apiserver-deployment",
                          "kubernetes-controller-manager-deployment"}
    assert first == same
    assert all(first[k] != rotated[k] for k in first), (first, rotated)
    assert all(len(v) == 64 for v in first.values())


# --- the pool's taint -------------------------------------------------------------------------

def test_the_pool_step_taints_the_pool_workers_and_untaints_those_that_left() -> None:
    """Only workers are tainted (control-plane nodes keep kubeadm's taint, which the
    controller-manager and scheduler Deployments tolerate); a worker the last `up` tainted is
    untainted once it leaves the pool while still listed, not once it left the config (its
    Node is deleted); switched off, every tainted worker is untainted."""
    raw = dev_stack()
    raw["workers"].append(host("ubuntu-81", "10.21.22.81"))
    raw["elasticApiserver"]["poolNodes"] = ["ubuntu-70", "ubuntu-74", "ubuntu-75"]
    cluster = parse_cluster(raw)
    assert pool.tainted_pool(cluster) == ("ubuntu-74", "ubuntu-75")
    before = {pool.RECORD_KEY: ["ubuntu-74", "ubuntu-81", "ubuntu-99"]}
    assert pool.pool_taints(before, cluster) == pool.PoolTaints(
        ("ubuntu-74", "ubuntu-75"), ("ubuntu-81",))
    assert pool.pool_taints(None, cluster) == pool.PoolTaints(("ubuntu-74", "ubuntu-75"), ())
    raw["elasticApiserver"]["enabled"] = False
    off = parse_cluster(raw)
    assert pool.pool_taints(before, off) == pool.PoolTaints((), ("ubuntu-74", "ubuntu-81"))
    assert not pool.pool_taints({pool.RECORD_KEY: []}, off)
    assert membership_record(cluster)[pool.RECORD_KEY] == ["ubuntu-74", "ubuntu-75"]


def test_the_pool_is_labelled_and_tainted_after_its_workers_joined(dev: Run) -> None:
    """The label and the taint wait for the pool workers' joins (a Node that has not
    registered cannot be patched), the Deployment for both; the pods tolerate the taint."""
    for node in ("ubuntu-74", "ubuntu-75"):
        assert f"kubernetes-kubeadm-{node}-join" in dev.upstream(
            f"kubernetes-elastic-apiserver-pool-{node}")
        assert f"kubernetes-kubeadm-{node}-join" in dev.upstream("kubernetes-kubeadm-elastic-pool")
    deployment = dev.upstream("kubernetes-elastic-apiserver-deployment")
    assert {"kubernetes-kubeadm-elastic-pool", "kubernetes-elastic-apiserver-pool-ubuntu-74"
            } <= deployment
    pod = plain(dev.inputs("kubernetes-elastic-apiserver-deployment"))["spec"]["template"]["spec"]
    assert pool.pool_toleration() in pod["tolerations"]
    assert not dev.inputs("kubernetes-kubeadm-elastic-pool").get("delete")
