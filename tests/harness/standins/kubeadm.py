"""kubeadm stand-in: init, join, reset, token create, certs certificate-key, init phase upload-certs.

Each follows kubeadm v1.31/v1.32 (kubernetes/kubernetes cmd/kubeadm/app/...):
- init (cmd/init.go, cmd/phases/init/*): phases in kubeadm's order, each one failable with
  KUBE_HA_FAIL="kubeadm init:<phase>" after the earlier ones have written their files. Preflight
  refuses existing control-plane manifests and a non-empty /var/lib/etcd (preflight/checks.go
  RunInitNodeChecks). certs keeps a pre-placed CA and a pre-placed apiserver pair only if valid
  (see certs.py). kubeconfig: admin.conf, super-admin.conf, kubelet.conf dial the
  controlPlaneEndpoint (else the advertise address); controller-manager.conf and
  scheduler.conf the local endpoint (phases/kubeconfig/kubeconfig.go getKubeConfigSpecsBase).
  upload-config stores the ClusterConfiguration in kube-system/kubeadm-config; bootstrap-token
  prints "[bootstrap-token] Using token: <t>" unless --skip-token-print (phases/init/
  bootstraptoken.go) and writes kube-public/cluster-info from admin.conf's cluster
  (phases/bootstraptoken/clusterinfo/clusterinfo.go); addon writes the kube-proxy ConfigMap
  (kubeconfig.conf dials the controlPlaneEndpoint) unless --skip-phases=addon/kube-proxy;
  show-join-command prints the join commands with token and, with --upload-certs, the
  certificate key, each "<value withheld>" under --skip-token-print /
  --skip-certificate-key-print (phases/init/showjoincommand.go, cmd/util/join.go). All on stdout.
- join (cmd/join.go, cmd/phases/join/*): RunJoinNodeChecks (non-empty /etc/kubernetes/manifests,
  existing kubelet.conf or bootstrap-kubelet.conf, and for workers an existing pki/ca.crt are
  fatal); token discovery checks the token's form, its JWS signature (only tokens that exist
  are signed) and the CA pin (discovery/token/token.go); the kubelet's kubeconfig dials the
  server named in cluster-info (discovery/discovery.go For). A control-plane join needs a
  controlPlaneEndpoint in kubeadm-config, the uploaded certs' key, validates a pre-placed
  apiserver.crt, writes admin.conf for the controlPlaneEndpoint and adds its etcd member as a
  learner, then promotes it (etcd.py).
- reset (cmd/phases/reset/*): --force only (without it kubeadm prompts on stdin); removes this
  node's etcd member if still listed, a member already gone counting as done (phases/etcd/
  local.go ErrNoMemberIDForPeerURL, kubernetes#117724) and any other etcd error only a warning
  (removeetcdmember.go klog.Warningf; the log in kubernetes#133437), and empties /var/lib/etcd
  all the same; stops the kubelet
  and removes the containers; empties /etc/kubernetes/manifests, /var/lib/kubelet and
  /etc/kubernetes/pki (the directories stay) and deletes admin.conf, super-admin.conf,
  kubelet.conf, bootstrap-kubelet.conf, controller-manager.conf, scheduler.conf
  (cleanupnode.go). It leaves the Node object and /etc/cni/net.d alone.
- token create prints the token alone, "[a-z0-9]{6}.[a-z0-9]{16}" (cmd/token.go RunCreateToken);
  certs certificate-key prints 32 random bytes hex-encoded (cmd/certs.go,
  phases/copycerts/copycerts.go CreateCertificateKey); init phase upload-certs stores the
  certificates under that key and prints it (phases/init/uploadcerts.go). The key comes from
  --certificate-key or, with --config, from the InitConfiguration's certificateKey (init.go
  initData.CertificateKey); the two cannot be mixed ("can not mix '--config' with arguments
  [certificate-key]", apis/kubeadm/validation isAllowedFlag allows only upload-certs,
  kubeconfig and skip-* beside --config); --upload-certs stays a flag. Each upload makes a
  token with no usages, "Proxy for managing TTL for the kubeadm-certs secret", 2 h, that owns
  the kubeadm-certs Secret (copycerts.go createShortLivedBootstrapToken, getSecretOwnerRef):
  deleting it deletes the Secret (garbage collection; here at once).
- token list -o jsonpath=T applies T to each token on its own (cmd/token.go RunListTokens
  prints one outputapiv1alpha3.BootstrapToken per Secret); `.token` is the whole
  "id.secret" (BootstrapTokenString.MarshalJSON), `.description` empty when unset
  (token_test.go TestTokenOutput). token delete takes IDs or whole tokens, several at once,
  prints 'bootstrap token "<id>" deleted' per token and stops at the first that is missing,
  'failed to delete bootstrap token "<id>"', exit 1 (cmd/token.go RunDeleteTokens).
- version -o short prints the binary's GitVersion alone, "v1.32.3" (cmd/version.go RunVersion,
  case "short"). The version here is the node's installed one (state "installed", else the
  cluster's); a node whose kubeadm is not installed answers as bash does: exit 127.
- The static pods name their image registry/component:kubernetesVersion
  (phases/controlplane/manifests.go GetStaticPodSpecs, images.GetKubernetesImage).
- A token authenticates only with usage-bootstrap-authentication (bootstrap.go
  AuthenticateToken): token create's default usages are signing and authentication.
"""

from __future__ import annotations

import base64
import copy
import re
import secrets
import shutil
import string
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.harness import pki
from tests.harness.standins import apiserver, certs, common, etcd
from tests.harness.standins.common import K8S, Invocation, State, ToolError, UnsupportedError, write

PKI = K8S / "pki"
MANIFESTS = K8S / "manifests"
KUBELET_DIR = Path("/var/lib/kubelet")
ETCD_DATA = Path("/var/lib/etcd")
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
API_VERSIONS = ("kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4")
TOKEN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
UPLOADED = ("ca.crt", "ca.key", "sa.key", "sa.pub", "front-proxy-ca.crt", "front-proxy-ca.key",
            "etcd/ca.crt", "etcd/ca.key")  # copycerts.go certsToTransfer
KUBECONFIGS = ("admin.conf", "super-admin.conf", "kubelet.conf", "bootstrap-kubelet.conf",
               "controller-manager.conf", "scheduler.conf")


def main(argv: list[str]) -> int:
    return common.run("kubeadm", argv, _dispatch)


def _dispatch(inv: Invocation) -> int:
    words = []
    for arg in inv.argv:
        if arg.startswith("-"):
            break
        words.append(arg)
    rest = inv.argv[len(words):]
    if words == ["version"]:
        inv.set_verb("kubeadm version")
        return _version(inv, rest)
    if words == ["init", "phase", "upload-certs"]:
        inv.set_verb("kubeadm init phase upload-certs")
        return _upload_certs_phase(inv, rest)
    handlers = {("init",): _init, ("join",): _join, ("reset",): _reset,
                ("token", "create"): _token_create, ("token", "list"): _token_list,
                ("token", "delete"): _token_delete, ("certs", "certificate-key"): _certificate_key}
    # `token delete <id>...` takes positional arguments after its verb.
    n = next((n for n in range(len(words), 0, -1) if tuple(words[:n]) in handlers), 0)
    if n == 0 or (n < len(words) and words[:2] != ["token", "delete"]):
        raise UnsupportedError("verb")
    inv.set_verb("kubeadm " + " ".join(words[:n]))
    return handlers[tuple(words[:n])](inv, words[n:] + rest)


# --- config -------------------------------------------------------------------------------

def _docs(inv: Invocation, path: str) -> dict[str, dict[str, Any]]:
    docs = {}
    for doc in yaml.safe_load_all(inv.read_config(path)):
        if not doc:
            continue
        if doc.get("apiVersion") not in API_VERSIONS:
            raise ToolError(f'no kind "{doc.get("kind")}" is registered for version '
                            f'"{doc.get("apiVersion")}"')
        docs[doc["kind"]] = doc
    return docs


def _cluster_defaults(cc: dict[str, Any] | None) -> dict[str, Any]:
    """SetDefaults_ClusterConfiguration (apis/kubeadm/v1beta4/defaults.go), the parts we use."""
    cc = copy.deepcopy(cc or {})
    if "kubernetesVersion" not in cc:
        raise UnsupportedError("no kubernetesVersion: kubeadm would look up stable-1 on the internet")
    cc.setdefault("apiVersion", API_VERSIONS[1])
    cc["kind"] = "ClusterConfiguration"
    cc.setdefault("certificatesDir", "/etc/kubernetes/pki")
    cc.setdefault("clusterName", "kubernetes")
    cc.setdefault("imageRepository", "registry.k8s.io")
    cc.setdefault("etcd", {"local": {"dataDir": "/var/lib/etcd"}})
    net = cc.setdefault("networking", {})
    net.setdefault("dnsDomain", "cluster.local")
    net.setdefault("serviceSubnet", "10.96.0.0/12")
    for key in ("apiServer", "controllerManager", "scheduler", "dns", "proxy"):
        cc.setdefault(key, {})
    return cc


def _stored_cluster_config(st: State) -> dict[str, Any]:
    cm = st["configmaps"].get("kube-system/kubeadm-config")
    if cm is None:
        raise ToolError('unable to fetch the kubeadm-config ConfigMap: configmaps "kubeadm-config" '
                        "not found")
    return yaml.safe_load(cm["ClusterConfiguration"])  # type: ignore[no-any-return]


# --- preflight ----------------------------------------------------------------------------

def _dir_not_empty(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def _preflight(errors: list[str]) -> None:
    if errors:
        lines = "\n".join(f"\t[ERROR {e}" for e in errors)
        raise ToolError(f"error execution phase preflight: [preflight] Some fatal errors occurred:\n"
                        f"{lines}\n[preflight] If you know what you are doing, you can make a check "
                        "non-fatal with `--ignore-preflight-errors=...`")


def _check_name(path: Path, kind: str) -> str:
    return f"{kind}-{str(path).replace('/', '-')}]: "


def _control_plane_checks() -> list[str]:
    errors = [_check_name(MANIFESTS / f"{c}.yaml", "FileAvailable") + f"{MANIFESTS / c}.yaml "
              "already exists" for c in COMPONENTS if (MANIFESTS / f"{c}.yaml").exists()]
    if _dir_not_empty(ETCD_DATA):
        errors.append(_check_name(ETCD_DATA, "DirAvailable") + f"{ETCD_DATA} is not empty")
    return errors


# --- certificates and kubeconfigs ---------------------------------------------------------

def _pair(base: Path) -> pki.KeyPair:
    return pki.KeyPair(base.with_suffix(".crt").read_text(), base.with_suffix(".key").read_text())


def _ensure_ca(base: Path, common_name: str, out: list[str]) -> pki.KeyPair:
    if base.with_suffix(".crt").exists():
        if not base.with_suffix(".key").exists():
            raise UnsupportedError(f"external CA ({base}.key absent)")
        out.append(f"[certs] Using existing {base.name} certificate authority")
        return _pair(base)
    ca = certs.new_ca(common_name)
    write(base.with_suffix(".crt"), ca.cert_pem)
    write(base.with_suffix(".key"), ca.key_pem, 0o600)
    out.append(f'[certs] Generating "{base.name}" certificate and key')
    return ca


def _node_certs(ca: pki.KeyPair, etcd_ca: pki.KeyPair, name: str, advertise: str,
                cc: dict[str, Any], out: list[str]) -> None:
    net = cc["networking"]
    api = certs.apiserver_names(name, advertise, net["serviceSubnet"], net["dnsDomain"],
                                cc.get("controlPlaneEndpoint", ""),
                                cc["apiServer"].get("certSANs") or [])
    out.append(certs.ensure(PKI, "apiserver", ca, "kube-apiserver", api, certs.SERVER))
    out.append(certs.ensure(PKI, "apiserver-etcd-client", etcd_ca, "kube-apiserver-etcd-client",
                            [], certs.CLIENT))
    # The apiserver's client certificates toward kubelets and extension apiservers (kubeadm's
    # certs phase; kubernetes.io "PKI certificates and requirements", All certificates).
    out.append(certs.ensure(PKI, "apiserver-kubelet-client", ca, "kube-apiserver-kubelet-client",
                            [], certs.CLIENT))
    out.append(certs.ensure(PKI, "front-proxy-client", _pair(PKI / "front-proxy-ca"),
                            "front-proxy-client", [], certs.CLIENT))
    for base, uses in (("server", certs.BOTH), ("peer", certs.BOTH)):
        out.append(certs.ensure(PKI / "etcd", base, etcd_ca, name, certs.etcd_names(name, advertise),
                                uses))
    out.append(certs.ensure(PKI / "etcd", "healthcheck-client", etcd_ca,
                            "kube-etcd-healthcheck-client", [], certs.CLIENT))


def _kubeconfig(name: str, ca: pki.KeyPair, server: str, user: str, org: str | None,
                out: list[str]) -> None:
    """kubeconfig phase: keep a file with the same server, refuse one dialling elsewhere."""
    path = K8S / name
    if path.exists():
        have = common.current_cluster(path.read_text()).get("server")
        if have != server:
            raise ToolError(f'a kubeconfig file "{path}" exists already but has an unexpected API '
                            f"Server URL: expected: {server}, got: {have}")
        out.append(f'[kubeconfig] Using existing kubeconfig file: "{path}"')
        return
    client = certs.issue(ca, user, [], certs.CLIENT, org)
    write(path, common.kubeconfig(server, ca.cert_pem, user, client.cert_pem, client.key_pem), 0o600)
    out.append(f'[kubeconfig] Writing "{name}" kubeconfig file')


def _cluster_info(server: str, ca_pem: str) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "clusters": [{"cluster": {
        "certificate-authority-data": common.b64(ca_pem), "server": server}, "name": ""}],
        "contexts": None, "current-context": "", "kind": "Config", "preferences": {},
        "users": None})


def _kube_proxy_kubeconfig(server: str) -> str:
    """kubeadm's kube-proxy ConfigMap kubeconfig.conf (phases/addons/proxy/manifests.go)."""
    return f"""apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
    server: {server}
  name: default
contexts:
- context:
    cluster: default
    namespace: default
    user: default
  name: default
current-context: default
users:
- name: default
  user:
    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token
"""


def _arguments_to_command(base: list[tuple[str, str]], extra: list[dict[str, str]] | None
                          ) -> list[str]:
    """util/arguments.go ArgumentsToCommand: every extraArg first; a default only where no
    extraArg has its name; sorted by name, then value; each `--name=value`."""
    overrides = [(a["name"], a["value"]) for a in extra or []]
    names = {n for n, _ in overrides}
    args = overrides + [(n, v) for n, v in base if n not in names]
    return [f"--{n}={v}" for n, v in sorted(args)]


def _apiserver_flags(advertise: str, port: int, cc: dict[str, Any]) -> list[str]:
    """phases/controlplane/manifests.go getAPIServerCommand, stacked etcd, v1.31-v1.33 (the
    flags match the v1.31.0 and v1.33.1 manifests in kubernetes#128354 and website#51166)."""
    pki, net = cc["certificatesDir"], cc["networking"]
    etcd_host = "[::1]" if ":" in advertise else "127.0.0.1"
    base = [("advertise-address", advertise), ("allow-privileged", "true"),
            ("authorization-mode", "Node,RBAC"), ("client-ca-file", f"{pki}/ca.crt"),
            ("enable-admission-plugins", "NodeRestriction"),
            ("enable-bootstrap-token-auth", "true"), ("etcd-cafile", f"{pki}/etcd/ca.crt"),
            ("etcd-certfile", f"{pki}/apiserver-etcd-client.crt"),
            ("etcd-keyfile", f"{pki}/apiserver-etcd-client.key"),
            ("etcd-servers", f"https://{etcd_host}:2379"),
            ("kubelet-client-certificate", f"{pki}/apiserver-kubelet-client.crt"),
            ("kubelet-client-key", f"{pki}/apiserver-kubelet-client.key"),
            ("kubelet-preferred-address-types", "InternalIP,ExternalIP,Hostname"),
            ("proxy-client-cert-file", f"{pki}/front-proxy-client.crt"),
            ("proxy-client-key-file", f"{pki}/front-proxy-client.key"),
            ("requestheader-allowed-names", "front-proxy-client"),
            ("requestheader-client-ca-file", f"{pki}/front-proxy-ca.crt"),
            ("requestheader-extra-headers-prefix", "X-Remote-Extra-"),
            ("requestheader-group-headers", "X-Remote-Group"),
            ("requestheader-username-headers", "X-Remote-User"), ("secure-port", str(port)),
            ("service-account-issuer", f"https://kubernetes.default.svc.{net['dnsDomain']}"),
            ("service-account-key-file", f"{pki}/sa.pub"),
            ("service-account-signing-key-file", f"{pki}/sa.key"),
            ("service-cluster-ip-range", net["serviceSubnet"]),
            ("tls-cert-file", f"{pki}/apiserver.crt"),
            ("tls-private-key-file", f"{pki}/apiserver.key")]
    return _arguments_to_command(base, cc["apiServer"].get("extraArgs"))


def _controller_manager_flags(cc: dict[str, Any]) -> list[str]:
    """getControllerManagerCommand: --allocate-node-cidrs, --cluster-cidr and
    --service-cluster-ip-range only with a podSubnet; --cluster-name from clusterName."""
    pki, net, conf = cc["certificatesDir"], cc["networking"], f"{K8S}/controller-manager.conf"
    base = [("authentication-kubeconfig", conf), ("authorization-kubeconfig", conf),
            ("bind-address", "127.0.0.1"), ("client-ca-file", f"{pki}/ca.crt"),
            ("cluster-name", cc["clusterName"]), ("cluster-signing-cert-file", f"{pki}/ca.crt"),
            ("cluster-signing-key-file", f"{pki}/ca.key"),
            ("controllers", "*,bootstrapsigner,tokencleaner"), ("kubeconfig", conf),
            ("leader-elect", "true"),
            ("requestheader-client-ca-file", f"{pki}/front-proxy-ca.crt"),
            ("root-ca-file", f"{pki}/ca.crt"),
            ("service-account-private-key-file", f"{pki}/sa.key"),
            ("use-service-account-credentials", "true")]
    if net.get("podSubnet"):
        base += [("allocate-node-cidrs", "true"), ("cluster-cidr", net["podSubnet"]),
                 ("service-cluster-ip-range", net["serviceSubnet"])]
    return _arguments_to_command(base, cc["controllerManager"].get("extraArgs"))


def _scheduler_flags(cc: dict[str, Any]) -> list[str]:
    """getSchedulerCommand."""
    conf = f"{K8S}/scheduler.conf"
    base = [("authentication-kubeconfig", conf), ("authorization-kubeconfig", conf),
            ("bind-address", "127.0.0.1"), ("kubeconfig", conf), ("leader-elect", "true")]
    return _arguments_to_command(base, cc["scheduler"].get("extraArgs"))


def _control_plane_manifests(name: str, advertise: str, port: int, cc: dict[str, Any]) -> None:
    """The three static pods, each command as getXCommand builds it, image
    registry/component:kubernetesVersion."""
    flags = {"kube-apiserver": _apiserver_flags(advertise, port, cc),
             "kube-controller-manager": _controller_manager_flags(cc),
             "kube-scheduler": _scheduler_flags(cc)}
    for comp, args in flags.items():
        image = f"{cc.get('imageRepository', 'registry.k8s.io')}/{comp}:{cc['kubernetesVersion']}"
        write(MANIFESTS / f"{comp}.yaml", common.static_pod(comp, [comp, *args], image=image),
              0o600)


def _etcd_manifest(name: str, advertise: str, initial_cluster: str, new: bool) -> None:
    argv = etcd.member_argv(name, advertise, Path("/"), initial_cluster, new)
    write(MANIFESTS / "etcd.yaml", common.static_pod("etcd", ["etcd", *argv[1:]]), 0o600)


def _start_kubelet(name: str, st_changes: dict[str, Any]) -> None:
    write(KUBELET_DIR / "config.yaml", "apiVersion: kubelet.config.k8s.io/v1beta1\n"
          "kind: KubeletConfiguration\n")
    with common.mutate() as st:
        st["kubelet"][name] = {**st["kubelet"].get(name, {}), "active": True}
        st["nodes"][name] = {"ready": bool(st["cni"]), "unschedulable": False, **st_changes}
    apiserver.start(name)  # the kubelet runs the static pods it finds


PROXY_TOKEN = "Proxy for managing TTL for the kubeadm-certs secret"
DEFAULT_USAGES = ["authentication", "signing"]


def _new_token(description: str, ttl: str, usages: list[str] | None = None) -> str:
    alphabet = string.ascii_lowercase + string.digits
    tid = "".join(secrets.choice(alphabet) for _ in range(6))
    secret = "".join(secrets.choice(alphabet) for _ in range(16))
    with common.mutate() as st:
        st["tokens"][tid] = {"secret": secret, "description": description, "ttl": ttl,
                             "usages": DEFAULT_USAGES if usages is None else usages}
    return f"{tid}.{secret}"


def _join_command(endpoint: str, token: str, pin: str, key: str | None) -> str:
    """cmd/kubeadm/app/cmd/util/join.go's template: key None for a worker, "" for a
    control-plane join without uploaded certs."""
    cmd = f"kubeadm join {endpoint} --token {token} \\\n\t--discovery-token-ca-cert-hash {pin} "
    if key is not None:
        cmd += "\\\n\t--control-plane " + (f"--certificate-key {key}" if key else "")
    return cmd


# --- init ---------------------------------------------------------------------------------

def _init(inv: Invocation, args: list[str]) -> int:
    _, f = common.parse_flags(args, {"--config": True, "--upload-certs": False,
                                     "--skip-token-print": False,
                                     "--skip-certificate-key-print": False,
                                     "--skip-phases": True})
    if "config" not in f:
        raise UnsupportedError("init without --config")
    docs = _docs(inv, f["config"])
    ic = docs.get("InitConfiguration", {})
    cc = _cluster_defaults(docs.get("ClusterConfiguration"))
    name = ic["nodeRegistration"]["name"]
    advertise = str(ic["localAPIEndpoint"]["advertiseAddress"])
    port = int(ic["localAPIEndpoint"].get("bindPort", 6443))
    cpe = cc.get("controlPlaneEndpoint", "")
    local_url = f"https://{advertise}:{port}"
    server = f"https://{cpe}" if cpe else local_url
    skip = set(f.get("skip-phases", "").split(","))
    out: list[str] = [f"[init] Using Kubernetes version: {cc['kubernetesVersion']}"]
    try:
        _init_phases(inv, f, name, advertise, port, cc, local_url, server, skip, out,
                     ic.get("bootstrapTokens") or [])
    finally:
        print("\n".join(out))
    return 0


def _init_phases(inv: Invocation, f: dict[str, str], name: str, advertise: str, port: int,
                 cc: dict[str, Any], local_url: str, server: str, skip: set[str],
                 out: list[str], tokens: list[dict[str, Any]]) -> None:
    inv.phase("preflight")
    _preflight(_control_plane_checks())
    inv.phase("certs")
    ca = _ensure_ca(PKI / "ca", "kubernetes", out)
    etcd_ca = _ensure_ca(PKI / "etcd/ca", "etcd-ca", out)
    _ensure_ca(PKI / "front-proxy-ca", "front-proxy-ca", out)
    with common.mutate() as st:  # the controller-manager signs kubelet CSRs with it
        st["ca_key"] = ca.key_pem
    if not (PKI / "sa.key").exists():
        sa_key, sa_pub = certs.service_account_key()
        write(PKI / "sa.key", sa_key, 0o600)
        write(PKI / "sa.pub", sa_pub)
    _node_certs(ca, etcd_ca, name, advertise, cc, out)
    inv.phase("kubeconfig")
    _kubeconfig("admin.conf", ca, server, "kubernetes-admin", "kubeadm:cluster-admins", out)
    _kubeconfig("super-admin.conf", ca, server, "kubernetes-super-admin", "system:masters", out)
    _kubeconfig("kubelet.conf", ca, server, f"system:node:{name}", "system:nodes", out)
    _kubeconfig("controller-manager.conf", ca, local_url, "system:kube-controller-manager", None,
                out)
    _kubeconfig("scheduler.conf", ca, local_url, "system:kube-scheduler", None, out)
    inv.phase("etcd")
    initial = f"{name}=https://{advertise}:2380"
    _etcd_manifest(name, advertise, initial, new=True)
    st = common.load()
    if st["real_etcd"]:
        etcd.start(st, name, initial, new=True)
        etcd.wait_healthy(common.root_of(st, name))
    inv.phase("control-plane")
    _control_plane_manifests(name, advertise, port, cc)
    inv.phase("kubelet-start")
    _start_kubelet(name, {"control_plane": True})
    inv.phase("wait-control-plane")
    inv.phase("upload-config")
    with common.mutate() as st:
        st["configmaps"]["kube-system/kubeadm-config"] = {
            "ClusterConfiguration": yaml.safe_dump(cc)}
    inv.phase("upload-certs")
    key = _upload(f.get("certificate-key")) if "upload-certs" in f else None
    if key is None:
        out.append("[upload-certs] Skipping phase. Please see --upload-certs")
    else:
        out.append('[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the '
                   '"kube-system" Namespace')
        if "skip-certificate-key-print" not in f:
            out.append(f"[upload-certs] Using certificate key:\n{key}")
    inv.phase("mark-control-plane")
    inv.phase("bootstrap-token")
    # InitConfiguration.bootstrapTokens, else one default token (v1beta4 defaults.go
    # SetDefaults_BootstrapToken: 24h; the token itself generated, initconfiguration.go).
    declared = (tokens or [{}])[0]
    token = _new_token(declared.get("description",
                                   "The default bootstrap token generated by 'kubeadm init'."),
                       declared.get("ttl", "24h0m0s"))
    if "skip-token-print" not in f:
        out.append(f"[bootstrap-token] Using token: {token}")
    with common.mutate() as st:
        st["configmaps"]["kube-public/cluster-info"] = {"kubeconfig": _cluster_info(server,
                                                                                   ca.cert_pem)}
    inv.phase("kubelet-finalize")
    inv.phase("addon")
    if not skip & {"addon", "addon/kube-proxy"}:
        with common.mutate() as st:
            st["configmaps"]["kube-system/kube-proxy"] = {
                "config.conf": "apiVersion: kubeproxy.config.k8s.io/v1alpha1\n"
                               "kind: KubeProxyConfiguration\n",
                "kubeconfig.conf": _kube_proxy_kubeconfig(server)}
            st["daemonsets"]["kube-system/kube-proxy"] = {"restarts": 0}
        out.append("[addons] Applied essential addon: kube-proxy")
    inv.phase("show-join-command")
    shown_token = "<value withheld>" if "skip-token-print" in f else token
    shown_key = None if key is None else (
        "<value withheld>" if "skip-certificate-key-print" in f else key)
    endpoint = server.removeprefix("https://")
    pin = certs.spki_sha256(ca.cert_pem)
    out.append("\nYour Kubernetes control-plane has initialized successfully!\n")
    if cc.get("controlPlaneEndpoint"):
        out.append("You can now join any number of control-plane nodes running the following "
                   "command on each as root:\n\n  "
                   + _join_command(endpoint, shown_token, pin, shown_key or "") + "\n")
    out.append("Then you can join any number of worker nodes by running the following on each "
               "as root:\n\n" + _join_command(endpoint, shown_token, pin, None))


def _upload(given: str | None) -> str:
    key = given or secrets.token_hex(32)
    if not re.fullmatch(r"[0-9a-f]{64}", key):
        raise ToolError("error execution phase upload-certs: error uploading certs: error decoding "
                        f"certificate key: {key!r} is not 32 hex-encoded bytes")
    files = {}
    for rel in UPLOADED:
        try:
            files[rel] = (PKI / rel).read_text()
        except FileNotFoundError as err:
            raise ToolError(f"error uploading certs: open {PKI / rel}: no such file or directory"
                            ) from err
    owner = _new_token(PROXY_TOKEN, "2h0m0s", usages=[]).split(".")[0]
    with common.mutate() as st:
        st["kubeadm_certs"] = {"key": key, "files": files, "owner": owner}
    return key


# --- commands that talk to the cluster ----------------------------------------------------

def _require_admin() -> State:
    admin = K8S / "admin.conf"
    if not admin.exists():
        raise ToolError(f"failed to load admin kubeconfig: open {admin}: no such file or directory")
    st = common.load()
    server = common.current_cluster(admin.read_text())["server"]
    if common.dial(st, server) is not None:
        raise ToolError(f"unable to connect to the cluster at {server}: connection refused")
    return st


def _token_create(inv: Invocation, args: list[str]) -> int:
    _, f = common.parse_flags(args, {"--ttl": True, "--description": True})
    _require_admin()
    print(_new_token(f.get("description", ""), f.get("ttl", "24h0m0s")))
    return 0


_JSONPATH_PART = re.compile(r'\{(?:\.(token|description)|"((?:[^"\\]|\\.)*)")\}|([^{}]+)')


def _token_list(inv: Invocation, args: list[str]) -> int:
    _, f = common.parse_flags(args, {"-o": True, "--output": True})
    template = f.get("o") or f.get("output") or ""
    if not template.startswith("jsonpath="):
        raise UnsupportedError("token list without -o jsonpath=")
    parts = _JSONPATH_PART.findall(template.removeprefix("jsonpath="))
    if "".join(f"{{.{a}}}" if a else (f'{{"{b}"}}' if b or not c else c) for a, b, c in parts
               ) != template.removeprefix("jsonpath="):
        raise UnsupportedError("jsonpath beyond {.token}, {.description} and {\"...\"}")
    st = _require_admin()
    for tid, tok in st["tokens"].items():
        fields = {"token": f"{tid}.{tok['secret']}", "description": tok.get("description", "")}
        sys.stdout.write("".join(fields[a] if a else (
            b.encode().decode("unicode_escape") if b else c) for a, b, c in parts))
    return 0


def _token_delete(inv: Invocation, args: list[str]) -> int:
    ids, _ = common.parse_flags(args, {})
    if not ids:
        raise ToolError("missing subcommand; 'token delete' is missing token of form "
                        '"[a-z0-9]{6}"')
    _require_admin()
    for given in ids:
        match = re.fullmatch(r"([a-z0-9]{6})(\.[a-z0-9]{16})?", given)
        if match is None:
            raise ToolError(f"given token didn't match pattern \"[a-z0-9]{{6}}\": {given!r}")
        tid = match.group(1)
        with common.mutate() as st:
            gone = st["tokens"].pop(tid, None) is None
            if not gone and (st.get("kubeadm_certs") or {}).get("owner") == tid:
                st.pop("kubeadm_certs")  # the garbage collector follows the owner reference
        if gone:
            raise ToolError(f'failed to delete bootstrap token "{tid}": secrets '
                            f'"bootstrap-token-{tid}" not found')
        print(f'bootstrap token "{tid}" deleted')
    return 0


def _version(inv: Invocation, args: list[str]) -> int:
    _, f = common.parse_flags(args, {"-o": True, "--output": True})
    if (f.get("o") or f.get("output")) != "short":
        raise UnsupportedError("version without -o short")
    print(common.installed("kubeadm"))
    return 0


def _certificate_key(inv: Invocation, args: list[str]) -> int:
    common.parse_flags(args, {})
    print(secrets.token_hex(32))
    return 0


def _upload_certs_phase(inv: Invocation, args: list[str]) -> int:
    _, f = common.parse_flags(args, {"--upload-certs": False, "--certificate-key": True,
                                     "--config": True, "--skip-certificate-key-print": False})
    given = f.get("certificate-key")
    if "config" in f:
        if given is not None:
            raise ToolError("can not mix '--config' with arguments [certificate-key]")
        docs = _docs(inv, f["config"])
        _cluster_defaults(docs.get("ClusterConfiguration"))
        given = str((docs.get("InitConfiguration") or {}).get("certificateKey") or "") or None
    if "upload-certs" not in f:
        print("[upload-certs] Skipping phase. Please see --upload-certs")
        return 0
    _require_admin()
    key = _upload(given)
    if given or "skip-certificate-key-print" in f:
        print('[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the '
              '"kube-system" Namespace')
        return 0
    print('[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" '
          f"Namespace\n[upload-certs] Using certificate key:\n{key}")
    return 0


# --- join ---------------------------------------------------------------------------------

def _join(inv: Invocation, args: list[str]) -> int:
    _, f = common.parse_flags(args, {"--config": True})
    if "config" not in f:
        raise UnsupportedError("join without --config")
    jc = _docs(inv, f["config"]).get("JoinConfiguration")
    if jc is None:
        raise ToolError("no JoinConfiguration found in the config file")
    control_plane = jc.get("controlPlane")
    name = jc["nodeRegistration"]["name"]
    out: list[str] = ["[preflight] Running pre-flight checks"]
    try:
        _join_phases(inv, jc, name, control_plane, out)
    finally:
        print("\n".join(out))
    return 0


def _discover(jc: dict[str, Any]) -> tuple[State, dict[str, Any]]:
    """Token discovery: the cluster-info kubeconfig, after the JWS and CA-pin checks."""
    bt = jc["discovery"]["bootstrapToken"]
    token = str(bt["token"])
    match = TOKEN.match(token)
    if match is None:
        raise ToolError(f'the bootstrap token "{token}" was not of the form '
                        f'"^([a-z0-9]{{6}})\\.([a-z0-9]{{16}})$"')
    st = common.load()
    if common.dial(st, f"https://{bt['apiServerEndpoint']}") is not None:
        raise ToolError("error execution phase preflight: couldn't validate the identity of the API "
                        f"Server: Get \"https://{bt['apiServerEndpoint']}/api/v1/namespaces/kube-public"
                        "/configmaps/cluster-info\": connection refused")
    found = st["tokens"].get(match.group(1), {})
    if found.get("secret") != match.group(2) or "authentication" not in found.get(
            "usages", DEFAULT_USAGES):
        raise ToolError("error execution phase preflight: couldn't validate the identity of the API "
                        "Server: could not find a JWS signature in the cluster-info ConfigMap for "
                        f'token ID "{match.group(1)}"')
    info = common.current_cluster(st["configmaps"]["kube-public/cluster-info"]["kubeconfig"])
    ca_pem = base64.b64decode(info["certificate-authority-data"]).decode()
    pin = certs.spki_sha256(ca_pem)
    if pin not in [str(h) for h in bt.get("caCertHashes") or []]:
        raise ToolError("error execution phase preflight: couldn't validate the identity of the API "
                        "Server: cluster CA found in cluster-info ConfigMap is invalid: none of the "
                        f'public keys "{pin}" are pinned')
    return st, {"server": info["server"], "ca": ca_pem}


def _join_phases(inv: Invocation, jc: dict[str, Any], name: str,
                 control_plane: dict[str, Any] | None, out: list[str]) -> None:
    inv.phase("preflight")
    errors = []
    if _dir_not_empty(MANIFESTS):
        errors.append(_check_name(MANIFESTS, "DirAvailable") + f"{MANIFESTS} is not empty")
    for conf in ("kubelet.conf", "bootstrap-kubelet.conf"):
        if (K8S / conf).exists():
            errors.append(_check_name(K8S / conf, "FileAvailable") + f"{K8S / conf} already exists")
    if control_plane is None and (PKI / "ca.crt").exists():
        errors.append(_check_name(PKI / "ca.crt", "FileAvailable") + f"{PKI}/ca.crt already exists")
    if control_plane is not None:
        errors += _control_plane_checks()
    _preflight(errors)
    st, info = _discover(jc)
    if control_plane is not None:
        _prepare_control_plane(inv, st, name, control_plane, out)
    inv.phase("kubelet-start")
    if control_plane is None:
        write(PKI / "ca.crt", info["ca"])
    ca = pki.KeyPair(info["ca"], "")
    client = _kubelet_client(name, ca, st)
    write(K8S / "kubelet.conf", common.kubeconfig(info["server"], info["ca"], f"system:node:{name}",
                                                  client.cert_pem, client.key_pem), 0o600)
    _start_kubelet(name, {"control_plane": control_plane is not None})
    out.append("[kubelet-start] Starting the kubelet\n[kubelet-start] Waiting for the kubelet to "
               "perform the TLS Bootstrap")
    if control_plane is not None:
        inv.phase("control-plane-join")
        _join_etcd(name)
        out.append("\nThis node has joined the cluster and a new control plane instance was "
                   "created")
    else:
        out.append("\nThis node has joined the cluster")


def _kubelet_client(name: str, ca: pki.KeyPair, st: State) -> pki.KeyPair:
    """The kubelet's client pair from the TLS bootstrap (the controller-manager signs it)."""
    ca_key = st["ca_key"]
    return certs.issue(pki.KeyPair(ca.cert_pem, ca_key), f"system:node:{name}", [], certs.CLIENT,
                       "system:nodes")


def _prepare_control_plane(inv: Invocation, st: State, name: str, cp: dict[str, Any],
                           out: list[str]) -> None:
    cc = _stored_cluster_config(st)
    cpe = cc.get("controlPlaneEndpoint", "")
    if not cpe:
        raise ToolError("error execution phase preflight: \nOne or more conditions for hosting a new "
                        "control plane instance is not satisfied.\n\nunable to add a new control "
                        "plane instance to a cluster that doesn't have a stable controlPlaneEndpoint "
                        "address")
    endpoint = cp.get("localAPIEndpoint", {})
    advertise = str(endpoint.get("advertiseAddress", common.address_of(st, name)))
    port = int(endpoint.get("bindPort", 6443))
    inv.phase("control-plane-prepare")
    uploaded = st.get("kubeadm_certs")
    if not uploaded or uploaded["key"] != str(cp.get("certificateKey", "")):
        raise ToolError("error execution phase control-plane-prepare/download-certs: error downloading "
                        "certs: error decoding certificate key: the kubeadm-certs Secret cannot be "
                        "decrypted with this key")
    for rel, text in uploaded["files"].items():
        write(PKI / rel, text, 0o600 if rel.endswith(".key") else 0o644)
    ca, etcd_ca = _pair(PKI / "ca"), _pair(PKI / "etcd/ca")
    _node_certs(ca, etcd_ca, name, advertise, cc, out)
    server, local_url = f"https://{cpe}", f"https://{advertise}:{port}"
    _kubeconfig("admin.conf", ca, server, "kubernetes-admin", "kubeadm:cluster-admins", out)
    _kubeconfig("controller-manager.conf", ca, local_url, "system:kube-controller-manager", None,
                out)
    _kubeconfig("scheduler.conf", ca, local_url, "system:kube-scheduler", None, out)
    _control_plane_manifests(name, advertise, port, cc)


def _join_etcd(name: str) -> None:
    st = common.load()
    advertise = common.address_of(st, name)
    peers = ",".join(f"https://{common.address_of(st, n)}:2379" for n in st["etcd"] if n != name)
    _etcd_manifest(name, advertise, "", new=False)
    if st["real_etcd"]:
        if not peers:
            raise ToolError("error execution phase control-plane-join/etcd: no etcd member to join")
        etcd.add_learner_and_promote(st, name, peers)


# --- reset --------------------------------------------------------------------------------

def _reset(inv: Invocation, args: list[str]) -> int:
    _, f = common.parse_flags(args, {"--force": False, "-f": False})
    if "force" not in f and "f" not in f:
        raise UnsupportedError("reset without --force prompts on stdin")
    out = ["[preflight] Running pre-flight checks"]
    try:
        inv.phase("preflight")
        inv.phase("remove-etcd-member")
        if (MANIFESTS / "etcd.yaml").exists():
            out += _remove_own_member()
            _clean(ETCD_DATA)
            out.append(f"[reset] Deleting contents of the etcd data directory: {ETCD_DATA}")
        inv.phase("cleanup-node")
        me = common.node()
        etcd.stop(me)
        apiserver.stop(me)
        with common.mutate() as st:
            st["kubelet"][me] = {**st["kubelet"].get(me, {}), "active": False}
            st["containers"].pop(me, None)
        out.append("[reset] Stopping the kubelet service")
        dirs = [MANIFESTS, KUBELET_DIR, PKI]
        for d in dirs:
            _clean(d)
        out.append(f"[reset] Deleting contents of directories: {[str(d) for d in dirs]}")
        files = [K8S / c for c in KUBECONFIGS]
        for path in files:
            path.unlink(missing_ok=True)
        out.append(f"[reset] Deleting files: {[str(p) for p in files]}")
        out.append("\nThe reset process does not clean CNI configuration. To do so, you must "
                   "remove /etc/cni/net.d")
    finally:
        print("\n".join(out))
    return 0


def _clean(directory: Path) -> None:
    """CleanDir: remove what is inside, keep the directory itself."""
    if not directory.is_dir():
        return
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _remove_own_member() -> list[str]:
    """RemoveStackedEtcdMemberFromCluster: through the other members; only warnings."""
    st = common.load()
    me = common.node()
    if not st["real_etcd"]:
        return []
    peer = f"https://{common.address_of(st, me)}:2380"
    others = ",".join(f"https://{common.address_of(st, n)}:2379" for n in st["hosts"]
                      if n != me and etcd.running(st, n))
    pki_dir = PKI / "etcd"
    if not others or not (pki_dir / "healthcheck-client.crt").exists():
        return ["[reset] WARNING: could not reach any other etcd member; remove this member "
                "with etcdctl if it is still listed"]
    listed = etcd.etcdctl(["member", "list"], others, pki_dir)
    for line in listed.stdout.splitlines():
        fields = line.split(", ")
        if len(fields) > 3 and fields[3] == peer:
            removed = etcd.etcdctl(["member", "remove", fields[0]], others, pki_dir)
            if removed.returncode != 0:
                return [f"[reset] ToolError to remove etcd member: {removed.stderr.strip()}"]
            return [f"[reset] Removed etcd member {fields[0]}"]
    return []


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
