"""kubectl stand-in for the verbs our scripts send to a live apiserver.

What it reproduces, from kubernetes/kubernetes staging/src/k8s.io/kubectl (v1.32):
- The kubeconfig is read first: a missing --kubeconfig file fails before anything else with
  "error: stat <path>: no such file or directory", exit 1 (observed with the real kubectl
  v1.32). The server is --server, else the kubeconfig's current cluster.
- Connection errors: "The connection to the server <host:port> was refused - did you specify
  the right host or port?" and "Unable to connect to the server: ..." (pkg/cmd/util/helpers.go
  StandardErrorMessage); API errors: "Error from server (NotFound): <resource> "<name>" not
  found", exit 1 (same function; apimachinery errors.NewNotFound's text).
- get -o jsonpath='{.data.key}' prints the value with no newline added, an absent key prints
  nothing and succeeds (checked against the real kubectl's printer); -o name prints
  "<type>/<name>"; --ignore-not-found turns a missing object into no output and exit 0
  (kubectl get --help: "If the requested object does not exist the command will return exit
  code 0"). get --raw=/readyz prints the body, "ok". get nodes lists NAME STATUS ROLES AGE
  VERSION, STATUS "Ready" or "NotReady", then ",SchedulingDisabled" when cordoned
  (pkg/printers/internalversion/printers.go printNode); --no-headers drops the header line.
- create ... --dry-run=client -o yaml is client-side: the real kubectl runs it.
- apply --server-side --force-conflicts -f - reads stdin and prints
  "<kind>/<name> serverside-applied" (pkg/cmd/apply/apply.go); our ConfigMaps' data keys are
  merged into the live object, other keys kept (server-side apply with its own field manager).
- rollout restart prints "daemonset.apps/<name> restarted" (pkg/cmd/rollout/rollout_restart.go).
- wait --for=condition=Ready node/<n>: a named object that does not exist fails at once with
  NotFound (pkg/cmd/wait/wait.go RunWait); success prints "node/<n> condition met"; else
  "error: timed out waiting for the condition on nodes/<n>" (pkg/cmd/wait/condition.go) after
  the timeout, which KUBE_HA_WAIT_CAP shortens for tests.
- drain cordons then evicts: "node/<n> cordoned" ("already cordoned"), "node/<n> drained"
  (pkg/cmd/drain/drain.go RunDrain). On a node whose kubelet is gone the evicted pods stay
  Terminating (only the kubelet confirms a pod gone), so drain waits out its --timeout and
  fails: 'error: unable to drain node "<n>" due to error: error when waiting for pod "<p>" in
  namespace "<ns>" to terminate: global timeout reached: <t>, continuing command...', then
  "There are pending nodes to be drained:", exit 1 (k8s.io/kubectl/pkg/drain waitForDelete;
  the text as printed in xunleii/terraform-module-k3s#138, the case in
  kubernetes-sigs/cluster-api#7125). cordon prints "node/<n> cordoned" or "already cordoned".
  delete prints 'node "<n>" deleted'; --ignore-not-found
  makes a missing object a silent success; --wait=false returns without waiting for
  finalizers (nothing to wait for here either way).
- annotate node <n> key=value [--overwrite] prints "node/<n> annotated"; a key that already
  has another value needs --overwrite, else "error: --overwrite is false but found the
  following declared annotation(s): 'key' already has a value (old)", exit 1
  (pkg/cmd/annotate/annotate.go validateNoAnnotationOverwrites). get -o jsonpath reads
  metadata.annotations with `\\.` escaping a dot in the key (kubectl jsonpath docs).
- taint nodes <n> key=value:Effect [--overwrite] / key:Effect- (kubectl pkg/cmd/taint,
  v1.32 as at kubernetes/kubectl dee3483): without --overwrite a taint of the same key and
  effect is refused, "error: node <n> already has <key> taint(s) with same effect(s) and
  --overwrite is false" (taint.go updateTaints, checkIfTaintsAlreadyExists joins the keys);
  with it the taint is replaced and the printer says "node/<n> modified"; a new one, without
  --overwrite, "node/<n> tainted" (utils.go reorganizeTaints); removing one that is not there
  fails, 'error: taint "<key>:<Effect>" not found' (utils.go deleteTaints), else
  "node/<n> untainted". A missing Node is NotFound.
- --request-timeout bounds each request; an answering fake never reaches it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tests.harness.standins import common
from tests.harness.standins.common import Invocation, State, ToolError, UnsupportedError

GLOBAL = {"--kubeconfig": True, "-n": True, "--namespace": True, "--server": True,
          "--request-timeout": True}
APISERVICES = "apiservices.apiregistration.k8s.io"
TYPES = {"configmap": "configmaps", "configmaps": "configmaps", "cm": "configmaps",
         "node": "nodes", "nodes": "nodes", "no": "nodes",
         "apiservice": APISERVICES, "apiservices": APISERVICES, APISERVICES: APISERVICES}


def main(argv: list[str]) -> int:
    return common.run("kubectl", argv, _dispatch)


def _split(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """Global flags out (kubectl takes them anywhere), the command's own arguments left."""
    rest: list[str] = []
    flags: dict[str, str] = {}
    i = 0
    while i < len(argv):
        name, eq, value = argv[i].partition("=")
        if name in GLOBAL:
            if not eq:
                i += 1
                value = argv[i]
            flags["namespace" if name in ("-n", "--namespace") else name[2:]] = value
        else:
            rest.append(argv[i])
        i += 1
    return rest, flags


def _dispatch(inv: Invocation) -> int:
    rest, g = _split(inv.argv)
    if not rest:
        raise UnsupportedError("no command")
    cmd = rest[0]
    sub = rest[1] if len(rest) > 1 and not rest[1].startswith("-") else ""
    inv.set_verb(f"kubectl {cmd} {sub}".strip() if cmd in ("get", "create", "delete", "rollout")
                 else f"kubectl {cmd}", reads_stdin=cmd == "apply" and "-" in rest)
    kubeconfig = g.get("kubeconfig")
    if kubeconfig is None:
        raise UnsupportedError("without --kubeconfig")
    if not Path(kubeconfig).exists():
        raise ToolError(f"error: stat {kubeconfig}: no such file or directory")
    if cmd == "create":
        return _create(inv, rest)
    server = g.get("server") or str(common.current_cluster(Path(kubeconfig).read_text())["server"])
    st = common.load()
    problem = common.dial(st, server)
    host = server.removeprefix("https://").rstrip("/")
    if problem == "refused":
        raise ToolError(f"The connection to the server {host} was refused - did you specify the "
                        "right host or port?")
    if problem:
        raise ToolError(f"Unable to connect to the server: dial tcp: lookup {host.rsplit(':', 1)[0]}:"
                        " no such host")
    ns = g.get("namespace", "default")
    handlers = {"get": _get, "apply": _apply, "rollout": _rollout, "wait": _wait,
                "drain": _drain, "delete": _delete, "annotate": _annotate,
                "cordon": _cordon_verb, "taint": _taint}
    if cmd not in handlers:
        raise UnsupportedError(f"command {cmd}")
    return handlers[cmd](inv, rest[1:], ns)


def _create(inv: Invocation, rest: list[str]) -> int:
    """Client-side only (`--dry-run=client -o yaml`): the real kubectl does it, offline."""
    if "--dry-run=client" not in rest:
        raise UnsupportedError("create against the server")
    real = common.env(common.REAL_KUBECTL)
    return subprocess.run([real, *inv.argv], stdin=subprocess.DEVNULL, check=False).returncode


def _not_found(resource: str, name: str) -> ToolError:
    return ToolError(f'Error from server (NotFound): {resource} "{name}" not found')


METRICS_API = "/apis/metrics.k8s.io/v1beta1"


def _metrics_api() -> int:
    """The group-version document when metrics-server serves. Without its APIService the
    request reaches the apiserver's notfoundhandler (a plain-text 404), with it but its backend
    down kube-aggregator's proxyHandler answers a plain-text 503 (handler_proxy.go
    proxyError); client-go then uses apimachinery's NewGenericServerResponse messages, which
    kubectl prints as "Error from server (<Reason>): <message>", exit 1 (cmd/util/helpers.go
    StandardErrorMessage). As seen in kubernetes-sigs/metrics-server#283 and
    opsnull/follow-me-install-kubernetes-cluster#409."""
    answer = common.load().get("metricsApi")
    if answer == "available":
        print(json.dumps({"kind": "APIResourceList", "apiVersion": "v1",
                          "groupVersion": "metrics.k8s.io/v1beta1",
                          "resources": [{"name": "nodes", "kind": "NodeMetrics"},
                                        {"name": "pods", "kind": "PodMetrics"}]}))
        return 0
    if answer == "unavailable":
        raise ToolError("Error from server (ServiceUnavailable): the server is currently unable"
                        " to handle the request")
    raise ToolError("Error from server (NotFound): the server could not find the requested"
                    " resource")


def _jsonpath(obj: dict[str, Any], expr: str) -> str:
    """Only the `{.a.b}` paths our scripts use, with `\\.` inside a key, and text between them
    as written (a template: `{.a}/{.b}`). A missing key prints nothing: kubectl's
    --allow-missing-template-keys defaults to true (cli-runtime PrintFlags)."""
    if not re.fullmatch(r"(?:[^{}]*\{\.[^{}]+\})+[^{}]*", expr):
        raise UnsupportedError(f"jsonpath {expr}")

    def one(found: re.Match[str]) -> str:
        value: Any = obj
        for part in re.split(r"(?<!\\)\.", found.group(1)):
            if not isinstance(value, dict) or part.replace("\\.", ".") not in value:
                return ""
            value = value[part.replace("\\.", ".")]
        return value if isinstance(value, str) else yaml.safe_dump(value)

    return re.sub(r"\{\.([^{}]+)\}", one, expr)


def _get(inv: Invocation, args: list[str], ns: str) -> int:
    pos, f = common.parse_flags(args, {"-o": True, "--output": True, "--raw": True,
                                       "--ignore-not-found": False, "--no-headers": False})
    if "raw" in f:
        if f["raw"] == METRICS_API:
            return _metrics_api()
        if f["raw"] not in ("/readyz", "/livez", "/healthz"):
            raise UnsupportedError(f"--raw={f['raw']}")
        sys.stdout.write("ok")
        return 0
    if len(pos) == 1 and TYPES.get(pos[0]) == "nodes" and not (f.get("o") or f.get("output")):
        nodes = common.load()["nodes"]
        if "no-headers" not in f:
            print("NAME\tSTATUS\tROLES\tAGE\tVERSION")
        for name in sorted(nodes):
            print(_node_line(name, nodes[name]))
        return 0
    if len(pos) != 2 or pos[0] not in TYPES:
        raise UnsupportedError("get needs a configmap or node and its name")
    resource, name = TYPES[pos[0]], pos[1]
    st = common.load()
    obj = _object(st, resource, ns, name)
    if obj is None:
        if "ignore-not-found" in f:
            return 0
        raise _not_found(resource, name)
    output = f.get("o") or f.get("output") or ""
    if output == "name":
        print(f"{resource.removesuffix('s')}/{name}")
    elif output.startswith("jsonpath="):
        sys.stdout.write(_jsonpath(obj, output.removeprefix("jsonpath=")))
    elif output:
        raise UnsupportedError(f"-o {output}")
    elif resource == "nodes":
        if "no-headers" not in f:
            print("NAME\tSTATUS\tROLES\tAGE\tVERSION")
        print(_node_line(name, common.load()["nodes"][name]))
    else:
        print(f"NAME\tDATA\tAGE\n{name}\t{len(obj['data'])}\t1d")
    return 0


def _node_line(name: str, node: dict[str, Any]) -> str:
    status = "Ready" if node["ready"] else "NotReady"
    if node["unschedulable"]:
        status += ",SchedulingDisabled"
    return f"{name}\t{status}\t<none>\t1d\tv1.32.3"


def _object(st: State, resource: str, ns: str, name: str) -> dict[str, Any] | None:
    """The API object as kubectl would see it (only the fields our scripts read)."""
    if resource == APISERVICES:
        # metrics-server's, once installed (metricsApi set); another owner's if planted.
        services = {**({"v1beta1.metrics.k8s.io": "kube-system/metrics-server"}
                       if st.get("metricsApi") else {}), **st.get("apiServices", {})}
        if name not in services:
            return None
        namespace, _, service = services[name].partition("/")
        return {"metadata": {"name": name},
                "spec": {"service": {"namespace": namespace, "name": service}}}
    if resource == "configmaps":
        data = st["configmaps"].get(f"{ns}/{name}")
        return None if data is None else {"metadata": {"name": name, "namespace": ns},
                                          "data": data}
    node = st["nodes"].get(name)
    return None if node is None else {"metadata": {"name": name,
                                                   "annotations": node.get("annotations", {})},
                                      "spec": {"unschedulable": node["unschedulable"]},
                                      "status": {"ready": node["ready"]}}


def _apply(inv: Invocation, args: list[str], ns: str) -> int:
    _, f = common.parse_flags(args, {"--server-side": False, "--force-conflicts": False,
                                     "--field-manager": True, "-f": True, "--filename": True})
    if f.get("f", f.get("filename")) != "-" or "server-side" not in f:
        raise UnsupportedError("only apply --server-side -f -")
    docs = [d for d in yaml.safe_load_all(inv.read_stdin()) if d]
    inv.extra["field-manager"] = f.get("field-manager", "kubectl")
    for doc in docs:
        if doc.get("kind") != "ConfigMap":
            raise UnsupportedError(f"apply of {doc.get('kind')}")
        meta = doc["metadata"]
        key = f"{meta.get('namespace', ns)}/{meta['name']}"
        with common.mutate() as st:
            st["configmaps"].setdefault(key, {}).update(doc.get("data") or {})
        print(f"configmap/{meta['name']} serverside-applied")
    return 0


def _rollout(inv: Invocation, args: list[str], ns: str) -> int:
    pos, _ = common.parse_flags(args, {})
    if len(pos) != 2 or pos[0] != "restart" or not pos[1].startswith("daemonset/"):
        raise UnsupportedError("only rollout restart daemonset/<name>")
    name = pos[1].split("/", 1)[1]
    with common.mutate() as st:
        ds = st["daemonsets"].get(f"{ns}/{name}")
        if ds is None:
            raise _not_found("daemonsets.apps", name)
        ds["restarts"] += 1
    print(f"daemonset.apps/{name} restarted")
    return 0


def _seconds(text: str) -> float:
    found = re.fullmatch(r"(\d+)(s|m)", text)
    if not found:
        raise UnsupportedError(f"duration {text}")
    return float(found.group(1)) * (60 if found.group(2) == "m" else 1)


def _wait(inv: Invocation, args: list[str], ns: str) -> int:
    pos, f = common.parse_flags(args, {"--for": True, "--timeout": True})
    if f.get("for") != "condition=Ready" or len(pos) != 1 or not pos[0].startswith("node/"):
        raise UnsupportedError("only wait --for=condition=Ready node/<name>")
    name = pos[0].split("/", 1)[1]
    timeout = _seconds(f.get("timeout", "30s"))
    deadline = time.monotonic() + min(timeout, float(os.environ.get(common.WAIT_CAP, "2")))
    while True:
        node = common.load()["nodes"].get(name)
        if node is None:
            raise _not_found("nodes", name)
        if node["ready"]:
            print(f"node/{name} condition met")
            return 0
        if time.monotonic() > deadline:
            raise ToolError(f"error: timed out waiting for the condition on nodes/{name}")
        time.sleep(0.1)


def _drain(inv: Invocation, args: list[str], ns: str) -> int:
    pos, flags = common.parse_flags(args, {"--ignore-daemonsets": False,
                                           "--delete-emptydir-data": False, "--timeout": True})
    if len(pos) != 1:
        raise UnsupportedError("drain of more than one node")
    name = pos[0]
    node = _cordon(name)
    if node.get("kubelet_down"):
        timeout = flags.get("timeout", "0s")
        time.sleep(min(_seconds(timeout), float(os.environ.get(common.WAIT_CAP, "2"))))
        pod = f'error when waiting for pod "coredns-7c65d6cfc9-x2v4k" in namespace "kube-system"' \
              f" to terminate: global timeout reached: {timeout}"
        raise ToolError(f'error: unable to drain node "{name}" due to error: {pod}, continuing'
                        f" command...\nThere are pending nodes to be drained:\n {name}\n{pod}")
    print(f"node/{name} drained")
    return 0


def _cordon(name: str) -> dict[str, Any]:
    with common.mutate() as st:
        node = st["nodes"].get(name)
        if node is None:
            raise _not_found("nodes", name)
        already = node["unschedulable"]
        node["unschedulable"] = True
    print(f"node/{name} {'already cordoned' if already else 'cordoned'}")
    return node  # type: ignore[no-any-return]


def _cordon_verb(inv: Invocation, args: list[str], ns: str) -> int:
    pos, _ = common.parse_flags(args, {})
    if len(pos) != 1:
        raise UnsupportedError("cordon of more than one node")
    _cordon(pos[0])
    return 0


def _annotate(inv: Invocation, args: list[str], ns: str) -> int:
    pos, f = common.parse_flags(args, {"--overwrite": False})
    if len(pos) != 3 or TYPES.get(pos[0]) != "nodes" or "=" not in pos[2]:
        raise UnsupportedError("only annotate node <name> key=value")
    name, (key, value) = pos[1], pos[2].split("=", 1)
    with common.mutate() as st:
        node = st["nodes"].get(name)
        if node is None:
            raise _not_found("nodes", name)
        old = node.setdefault("annotations", {}).get(key)
        if old is not None and old != value and "overwrite" not in f:
            raise ToolError("error: --overwrite is false but found the following declared "
                            f"annotation(s): '{key}' already has a value ({old})")
        node["annotations"][key] = value
    print(f"node/{name} annotated")
    return 0


def _taint(inv: Invocation, args: list[str], ns: str) -> int:
    pos, f = common.parse_flags(args, {"--overwrite": False})
    if len(pos) != 3 or TYPES.get(pos[0]) != "nodes":
        raise UnsupportedError("only taint nodes <name> <one taint>")
    name, spec = pos[1], pos[2]
    removing = spec.endswith("-")
    found = re.fullmatch(r"([^=:]+)(?:=([^:]*))?:(NoSchedule|PreferNoSchedule|NoExecute)",
                         spec.removesuffix("-"))
    if not found or (removing and found.group(2) is not None):
        raise UnsupportedError(f"taint {spec}")
    key, value, effect = found.group(1), found.group(2) or "", found.group(3)
    with common.mutate() as st:
        node = st["nodes"].get(name)
        if node is None:
            raise _not_found("nodes", name)
        taints = node.setdefault("taints", [])
        same = [t for t in taints if (t["key"], t["effect"]) == (key, effect)]
        if removing:
            if not same:
                raise ToolError(f'error: taint "{key}:{effect}" not found')
            node["taints"] = [t for t in taints if t not in same]
            operation = "untainted"
        else:
            if same and "overwrite" not in f:
                raise ToolError(f"error: node {name} already has {key} taint(s) with same "
                                "effect(s) and --overwrite is false")
            node["taints"] = [{"key": key, "value": value, "effect": effect},
                              *(t for t in taints if t not in same)]
            operation = "modified" if "overwrite" in f else "tainted"
    print(f"node/{name} {operation}")
    return 0


def _delete(inv: Invocation, args: list[str], ns: str) -> int:
    pos, f = common.parse_flags(args, {"--ignore-not-found": False, "--wait": False})
    kind = "secrets" if pos[:1] in (["secret"], ["secrets"]) else TYPES.get(pos[0] if pos else "")
    if len(pos) != 2 or kind not in ("nodes", "secrets"):
        raise UnsupportedError("only delete node <name> and secret kubeadm-certs")
    name = pos[1]
    if kind == "secrets" and (ns, name) != ("kube-system", "kubeadm-certs"):
        raise UnsupportedError("only the kube-system/kubeadm-certs Secret is modelled")
    with common.mutate() as st:
        store = st["nodes"] if kind == "nodes" else {"kubeadm-certs": st.get("kubeadm_certs")}
        gone = store.pop(name, None) is None
        if kind == "secrets":
            st.pop("kubeadm_certs", None)
    if gone:
        if "ignore-not-found" in f:
            return 0
        raise _not_found(kind, name)
    print(f'{kind[:-1]} "{name}" deleted')
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
