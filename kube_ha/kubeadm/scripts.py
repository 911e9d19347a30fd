"""kubeadm lifecycle scripts: bootstrap, join credentials, joins, re-pointing, safe removal. Pure.

Each script checks its postcondition first (node already joined, endpoint already patched,
member already gone) and then does nothing, so re-running `pulumi up` is always safe. Secrets
(keys, tokens, certificate keys) are embedded only in scripts that travel as secret stdin.
"""

from __future__ import annotations

import hashlib

from kube_ha.elastic.carry import CARRIED_FILE_FLAGS, HOST_FILES, STATIC_FLAGS
from kube_ha.endpoint_switch import retire_lines, switch_install_lines
from kube_ha.hosts_entry import hosts_entry_lines
from kube_ha.kubeadm.admin import (
    KUBECTL,
    KUBECTL_LONG,
    MANAGED_MARKER,
    MARK_MANAGED,
    drain_or_cordon,
    keep_annotated,
)
from kube_ha.kubeadm.config import (
    JOIN_TOKEN_DESCRIPTION,
    api_version,
    cert_sans_items,
    join_configuration,
    kubeadm_config,
    yaml_str,
)
from kube_ha.kubeadm.etcd import EtcdAccess
from kube_ha.loadbalancer.haproxy import NODE_LOCAL_MARK
from kube_ha.model import Cluster, Host, host_port
from kube_ha.paths import ADMIN_CONF, HAPROXY_CFG, K8S, KUBELET_CONF, NODE_STATE, PKI, STATIC_PODS
from kube_ha.shell import heredoc, indent, quote, script, tcp_probe, write_file

KUBEADM_CONFIG = f"{NODE_STATE}/kubeadm.yaml"


def _print_secret_last(fmt: str, *variables: str) -> str:
    """The last line of a script whose stdout is a secret. pulumi-command puts stdout and stderr
    into the error message of a failed step whatever its logging settings, so such a script
    checks and reads everything into variables first and prints once, at the end: a failure
    anywhere before leaves stdout empty."""
    return f"printf {quote(fmt)}" + "".join(f' "${v}"' for v in variables)


def read_ca_script() -> str:
    """Print the cluster CA certificate then its key (stdout is a secret output)."""
    return script(
        "read-ca",
        f'for f in {PKI}/ca.crt {PKI}/ca.key; do',
        '  [ -s "$f" ] || { log "$f missing: is this the bootstrap control-plane node?"; exit 1; }',
        "done",
        f"cert=$(cat {PKI}/ca.crt)",
        f"key=$(cat {PKI}/ca.key)",
        _print_secret_last("%s\\n%s\\n", "cert", "key"),
    )


def read_admin_kubeconfig_script(generation: int | str) -> str:
    """Print the bootstrap node's admin kubeconfig (stdout is a secret output). `generation`
    (renewal.copy_generation) re-reads it when it changes; "0" leaves the script as it was
    before re-reads existed, so upgrading re-reads nothing."""
    return script(
        "read-admin-kubeconfig",
        f"# generation {generation}" if str(generation) != "0" else "",
        f'[ -s {ADMIN_CONF} ] || {{ log "{ADMIN_CONF} missing: is the cluster initialised?"; exit 1; }}',
        f"conf=$(cat {ADMIN_CONF})",
        _print_secret_last("%s\\n", "conf"),
    )


def read_files_script(files: dict[str, str], generation: int | str) -> str:
    """Print {key: base64(file)} as JSON for control-plane files the in-cluster Deployments
    mount from Secrets. `generation` (renewal.copy_generation: certificates.rotation, then
    a day inside a copy's renewal window) re-reads them when it changes."""
    lines = [f"# generation {generation}", "missing=0"]
    for path in files.values():
        lines.append(f'[ -s {quote(path)} ] || {{ log "{path} missing"; missing=1; }}')
    lines += ['[ "$missing" = 0 ] || exit 1', "out='{'", 'sep=""']
    for key, path in files.items():
        lines += [f"b64=$(base64 -w0 < {quote(path)})",
                  f'out+="$sep\\"{key}\\":\\"$b64\\""', 'sep=","']
    lines.append("out+='}'")
    return script("read-control-plane-files", *lines, _print_secret_last("%s\\n", "out"))


def read_static_pod_script(component: str, generation: str) -> str:
    """Print a static pod's manifest and each file its carried flags name (kube_ha.elastic.
    carry), a line each: `manifest <base64>`, `file <base64 path> <base64 content>`. Secret
    stdout: an encryption config holds keys. `generation` re-reads when it changes."""
    manifest = f"{STATIC_PODS}/{component}.yaml"
    names = " ".join(CARRIED_FILE_FLAGS[component])
    return script(
        "read-static-pod",
        f"# generation {generation}",
        STATIC_FLAGS,
        HOST_FILES,
        f'[ -s {manifest} ] || {{ log "{manifest} missing: is this a control-plane node?"; exit 1; }}',
        f'out="manifest $(base64 -w0 < {manifest})"',
        f"paths=$(static_flags {manifest} | host_files {quote(names)})",
        "while IFS= read -r path; do",
        '  [ -n "$path" ] || continue',
        '  [ -r "$path" ] || { log "$path, which the static pod names, is missing"; exit 1; }',
        '  out+=$\'\\n\'"file $(printf %s "$path" | base64 -w0) $(base64 -w0 < "$path")"',
        'done <<< "$paths"',
        _print_secret_last("%s\\n", "out"),
    )


def install_ca_script(ca_cert: str, ca_key: str) -> str:
    """For a new cluster: place the generated CA before `kubeadm init`; never replace a CA."""
    return script(
        "install-ca",
        f"install -d -m 0755 {PKI}",
        f"if [ -s {PKI}/ca.crt ]; then",
        f'  if [ "$(cat {PKI}/ca.crt)" = {quote(ca_cert.strip())} ]; then',
        '    log "cluster CA already installed"; exit 0',
        "  fi",
        f'  log "{PKI}/ca.crt holds another CA: refusing to replace it (use caSource: import)"',
        "  exit 1",
        "fi",
        write_file(f"{PKI}/ca.key", ca_key, "0600", flag=None),
        write_file(f"{PKI}/ca.crt", ca_cert, "0644", flag=None),
    )


def _wait_readyz(node: Host, port: int) -> str:
    url = f"https://{host_port(node.address, port)}"
    return f"""\
for _ in $(seq 180); do
  if {KUBECTL} --server={quote(url)} get --raw=/readyz >/dev/null 2>&1; then break; fi
  sleep 1
done
{KUBECTL} --server={quote(url)} get --raw=/readyz >/dev/null || {{
  log "apiserver on {node.name} not ready"; exit 1; }}
log "apiserver on {node.name} is ready\""""


def install_serving_cert(cluster: Cluster, node: Host, cert: str, key: str) -> str:
    """Put this node's apiserver cert in place (old pair backed up) and wait until the running
    apiserver serves it. No-op when the cert is already installed.

    kube-apiserver reloads its serving certificate from disk by itself (dynamic serving
    certificates, k8s.io/apiserver dynamiccertificates, since 1.17; the files are re-read on
    change and at least once a minute), so nothing is restarted: a restart is a full outage on
    a single control plane (`crictl stop` defaults to --timeout 0, SIGKILL). Only if the new
    serial is not served after 180 s is the container stopped, gracefully (60 s)."""
    served = (f"timeout 5 openssl s_client -connect {quote(host_port(node.address, cluster.apiserver_port))}"
              " </dev/null 2>/dev/null | openssl x509 -noout -serial 2>/dev/null || true")
    return "\n".join([
        f'if [ -s {PKI}/apiserver.crt ] && [ "$(cat {PKI}/apiserver.crt)" = {quote(cert.strip())} ]; then',
        '  log "apiserver serving certificate already current"',
        "else",
        "  stamp=$(date +%Y%m%d%H%M%S)",
        "  for f in apiserver.crt apiserver.key; do",
        f'    if [ -f {PKI}/"$f" ]; then cp -p {PKI}/"$f" {PKI}/"$f.kube-ha-$stamp"; fi',
        "  done",
        write_file(f"{PKI}/apiserver.key", key, "0600", flag=None),
        write_file(f"{PKI}/apiserver.crt", cert, "0644", flag=None),
        f"  if [ -f {STATIC_PODS}/kube-apiserver.yaml ]; then",
        f"    want=$(openssl x509 -noout -serial -in {PKI}/apiserver.crt)",
        "    id=$(crictl ps -q --name '^kube-apiserver$' | head -n 1)",
        '    if [ -n "$id" ]; then',
        "      for _ in $(seq 90); do",
        f'        [ "$({served})" = "$want" ] && break',
        "        sleep 2",
        "      done",
        f'      if [ "$({served})" = "$want" ]; then',
        '        log "kube-apiserver serves the new certificate ($want), no restart"',
        "      else",
        '        log "kube-apiserver did not load the new certificate in 180 s: stopping it gracefully"',
        '        crictl stop --timeout 60 "$id" >/dev/null',
        "      fi",
        "    fi",
        *indent([_wait_readyz(node, cluster.apiserver_port)]),
        "  fi",
        "fi",
    ])


def serving_certificate_script(cluster: Cluster, node: Host, cert: str, key: str) -> str:
    """On every control-plane node, before the bootstrap step re-points anything at the
    endpoint: a node that already runs an apiserver serves the certificate issued for it (no
    restart: see install_serving_cert). The LB routes to every such node as soon as a client
    dials the endpoint, and haproxy's check can verify a DNS name but not an IP SAN
    (`verifyhost`), so with an IP-only endpoint this order alone keeps a client from reaching
    a backend whose certificate lacks the address it dialled. A node that has not joined yet
    gets its certificate with its join."""
    return script(
        f"serving-certificate {node.name}",
        f"if [ -f {STATIC_PODS}/kube-apiserver.yaml ]; then",
        install_serving_cert(cluster, node, cert, key),
        "else",
        f'  log "{node.name} runs no apiserver yet: its join places its certificate"',
        "fi",
    )


def _sed_server(endpoint_url: str) -> str:
    return f"s#^\\( *server: \\)https://.*#\\1{endpoint_url}#"


def _sed(endpoint_url: str) -> str:
    """A kubeconfig's `server:` lines dial `endpoint_url`: the sed filter."""
    return f"sed {quote(_sed_server(endpoint_url))}"


def has_line(line: str, source: str) -> str:
    """A test: some line of `source` (shell words) is `line` once leading blanks are dropped.
    A string compare, not a regex: an IPv6 URL's `[...]` would be a bracket expression.
    (`awk -v` reads backslash escapes; no line given here has a backslash.)"""
    assert "\\" not in line, line
    return ("awk -v want=" + quote(line)
            + " '{ sub(/^[ \\t]+/, \"\") } $0 == want { found = 1 } END { exit !found }' "
            + source)


def repoint_kubeconfig(path: str, endpoint_url: str) -> str:
    """Point a kubeadm kubeconfig (one cluster) at the endpoint; no-op when it already is."""
    q = quote(path)
    return "\n".join([
        f"if [ -f {q} ]; then",
        f'  if {has_line(f"server: {endpoint_url}", q)}; then log "{path} already uses the endpoint"',
        f"  else sed -i {quote(_sed_server(endpoint_url))} {q}; changed=1; log \"{path} -> {endpoint_url}\"; fi",
        "fi",
    ])


def _patch_configmap(namespace: str, name: str, key: str, edit: str, check: str | None,
                     flag: str | None = None, optional: bool = False) -> str:
    """Edit one text key of a ConfigMap with the filter `edit`, applied server-side (other keys
    untouched). Done when some line is `check`; with no `check`, when the edit would change
    nothing.

    `optional`: the ConfigMap belongs to an add-on a cluster may run without (kube-proxy is
    skipped with `--skip-phases=addon/kube-proxy`, e.g. under Cilium's replacement); when it
    is absent (`--ignore-not-found` prints nothing and exits 0) the step says so and goes on."""
    jsonpath = "{.data." + key.replace(".", "\\.") + "}"
    mark = f"\n  {flag}=1" if flag else ""
    get = f"{KUBECTL} -n {namespace} get configmap {name}"
    if check is None:
        done = f"""edited=$(printf '%s\\n' "$current" | {edit})
[ "$edited" = "$current" ]"""
        write = 'printf \'%s\\n\' "$edited"'
    else:
        done = has_line(check, '<<< "$current"')
        write = f"""printf '%s\\n' "$current" | {edit}"""
    patch = f"""\
current=$({get} -o jsonpath={quote(jsonpath)})
if {done}; then
  log "configmap {namespace}/{name} already up to date"
else
  work=$(mktemp -d)
  {write} > "$work/{key}"
  {KUBECTL} -n {namespace} create configmap {name} --from-file={key}="$work/{key}" \\
    --dry-run=client -o yaml | {KUBECTL} apply --server-side --force-conflicts \\
    --field-manager=kube-ha -f -
  rm -rf "$work"
  log "patched configmap {namespace}/{name}"{mark}
fi"""
    if not optional:
        return patch
    return "\n".join([
        f'if [ -z "$({get} --ignore-not-found -o name)" ]; then',
        f'  log "configmap {namespace}/{name} absent (add-on not installed): nothing to re-point"',
        "else",
        patch,
        "fi",
    ])


def cluster_configuration_edit(cluster: Cluster) -> str:
    """awk filter for the adopted cluster's ClusterConfiguration, as kubeadm marshals it
    (sigs.k8s.io/yaml: sorted keys, two-space indent, list items level with their key,
    `apiServer: {}` when empty): controlPlaneEndpoint becomes the endpoint (first line), and
    apiServer.certSANs the names every apiserver shares (`cert_sans_items`). Other keys are left
    as they are; a second pass changes nothing.

    certSANs matter because kubeadm join checks our pre-placed certificate against them
    (pkiutil.GetAPIServerAltNames): an adopted cluster's certSANs often list each master's
    address (the seed's write-up adds its LB's), which a new node's certificate does not name,
    so the join would fail "certificate apiserver is invalid"."""
    endpoint = f"controlPlaneEndpoint: {yaml_str(cluster.endpoint.host_port)}"
    items = "\\n".join(f"  - {s}" for s in cert_sans_items(cluster))
    program = (
        'function sans() { print "  certSANs:"; printf "%s\\n", items } '
        "BEGIN { print endpoint } "
        "/^controlPlaneEndpoint:/ { next } "
        '/^apiServer: *[{] *[}] *$/ { print "apiServer:"; sans(); seen = 1; next } '
        "/^apiServer: *$/ { print; sans(); seen = api = 1; next } "
        "api && /^[^ ]/ { api = skip = 0 } "
        "api && /^  certSANs:/ { skip = 1; next } "
        "skip && /^  - / { next } "
        "{ skip = 0; print } "
        'END { if (!seen) { print "apiServer:"; sans() } }')
    return f"awk -v endpoint={quote(endpoint)} -v items={quote(items)} {quote(program)}"


INIT_MARKER = f"{NODE_STATE}/init-started"


def _init_state() -> str:
    """Set `init` to none (no kubeadm here), finished, or unfinished. kubeadm init writes admin.conf
    in its kubeconfig phase, long before upload-config, so an admin.conf alone is not a
    cluster: finished means the kubeadm-config ConfigMap exists. Unfinished needs positive
    evidence that this program started that init (its marker, removed once init succeeds):
    a running cluster whose ConfigMap was deleted is refused, never reset. Asked with
    super-admin.conf where it exists (kubeadm >= 1.29: admin.conf is authorised only through a
    ClusterRoleBinding that upload-config creates); when the apiserver does not answer, nothing
    is decided and nothing is touched."""
    return f"""\
init=none
if [ -f {ADMIN_CONF} ]; then
  kc={ADMIN_CONF}
  if [ -f {K8S}/super-admin.conf ]; then kc={K8S}/super-admin.conf; fi
  init=unknown
  for _ in $(seq 30); do
    if found=$(kubectl --kubeconfig="$kc" --request-timeout=30s -n kube-system get configmap \\
        kubeadm-config --ignore-not-found -o name); then
      if [ -n "$found" ]; then init=finished; else init=unfinished; fi
      break
    fi
    sleep 2
  done
  if [ "$init" = unknown ]; then
    log "{ADMIN_CONF} exists but the apiserver does not answer: cannot tell whether kubeadm init" \\
      "finished; nothing changed"
    exit 1
  fi
  if [ "$init" = unfinished ] && [ ! -f {INIT_MARKER} ]; then
    log "kube-system/kubeadm-config is missing, but kube-ha did not start a kubeadm init here:" \\
      "refusing to reset this node. Restore it (kubeadm init phase upload-config kubeadm)" \\
      "or reset the node yourself; nothing changed"
    exit 1
  fi
fi"""


def _endpoint_name(cluster: Cluster) -> list[str]:
    """A node step's first lines: the endpoint's name resolves here before anything dials it
    (kept in /etc/hosts, or switched between the Service and the control plane)."""
    return [*hosts_entry_lines(cluster), *switch_install_lines(cluster)]


def bootstrap_script(cluster: Cluster, cert: str, key: str) -> str:
    """The bootstrap node: `kubeadm init` a new cluster, or move a running one behind the
    endpoint — serving cert with the new SANs first, then controlPlaneEndpoint, kubeconfigs,
    cluster-info (what joining nodes discover). kube-proxy follows after the workers
    (kube_proxy_script)."""
    node = cluster.bootstrap
    ep = cluster.endpoint
    return script(
        "bootstrap",
        *_endpoint_name(cluster),
        f"install -d -m 0700 {NODE_STATE}",
        write_file(KUBEADM_CONFIG, kubeadm_config(cluster), "0600", flag=None),
        _init_state(),
        'if [ "$init" = unfinished ]; then',
        '  log "kubeadm init did not finish here (no kubeadm-config was uploaded): resetting this'
        ' node and running it again, keeping its cluster CA"',
        f'  keep=$(mktemp -d {NODE_STATE}/ca.XXXXXX)',
        f'  for f in ca.crt ca.key; do if [ -f {PKI}/"$f" ]; then cp -p {PKI}/"$f" "$keep"/; fi; done',
        "  kubeadm reset --force >&2",
        f"  install -d -m 0755 {PKI}",
        f'  for f in ca.crt ca.key; do if [ -f "$keep/$f" ]; then cp -p "$keep/$f" {PKI}/; fi; done',
        '  rm -rf "$keep"',
        "fi",
        'if [ "$init" = finished ]; then',
        '  log "cluster already initialised"',
        "else",
        '  log "kubeadm init"',
        *_place_serving_pair(cert, key),
        # It prints a join command with a token and the certificate key unless told not to
        # (kubeadm init reference: --skip-token-print, --skip-certificate-key-print).
        f"  touch {INIT_MARKER}",
        f"  kubeadm init --config={KUBEADM_CONFIG} --upload-certs --skip-token-print"
        " --skip-certificate-key-print >&2",
        f"  {MARK_MANAGED}",
        f"  rm -f {INIT_MARKER}",
        "fi",
        keep_annotated(node.name),
        install_serving_cert(cluster, node, cert, key),
        _patch_configmap("kube-system", "kubeadm-config", "ClusterConfiguration",
                         cluster_configuration_edit(cluster), None),
        "changed=0",
        repoint_kubeconfig(ADMIN_CONF, ep.url),
        repoint_kubeconfig(f"{KUBELET_CONF}", ep.url),
        'if [ "$changed" = 1 ]; then systemctl restart kubelet; log "kubelet restarted"; fi',
        _patch_configmap("kube-public", "cluster-info", "kubeconfig", _sed(ep.url),
                         f"server: {ep.url}"),
    )


def ca_hash_command(ca_path: str = f"{PKI}/ca.crt") -> str:
    """kubeadm's --discovery-token-ca-cert-hash: SHA-256 of the CA's SubjectPublicKeyInfo."""
    return (f"openssl x509 -pubkey -noout -in {quote(ca_path)} | openssl pkey -pubin -outform der"
            " | sha256sum | cut -d' ' -f1")


# copycerts.go createShortLivedBootstrapToken: owns the kubeadm-certs Secret (deleting the token
# deletes the Secret); it has no usages, so it never authenticates.
CERTS_PROXY_DESCRIPTION = "Proxy for managing TTL for the kubeadm-certs secret"


def _upload_certs(cluster: Cluster) -> list[str]:
    """A fresh certificate key and the control-plane certificates uploaded under it (kubeadm
    keeps them 2 h). The key reaches kubeadm in a 0600 --config file, never in argv (where any
    local user reads it in /proc/<pid>/cmdline); the ClusterConfiguration names the version
    so kubeadm does not look up stable-1 on the internet (util/version.go)."""
    api = api_version(cluster)
    fmt = (f"apiVersion: {api}\nkind: InitConfiguration\ncertificateKey: %s\n---\n"
           f"apiVersion: {api}\nkind: ClusterConfiguration\n"
           f"kubernetesVersion: {cluster.kubernetes_version}\n")
    return [
        "key=$(kubeadm certs certificate-key)",
        f"install -d -m 0700 {NODE_STATE}",
        f"conf=$(mktemp {NODE_STATE}/upload-certs.XXXXXX)",
        "trap 'rm -f \"$conf\"' EXIT",
        f'printf {quote(fmt)} "$key" > "$conf"',
        'kubeadm init phase upload-certs --upload-certs --config="$conf" >/dev/null',
    ]


def join_credentials_script(cluster: Cluster, control_plane: bool) -> str:
    """On the bootstrap node: a 1 h token, the CA hash and, for control-plane joins, a fresh
    certificate key (uploaded certs expire after 2 h). Prints JSON; stdout is secret. The
    revoke step deletes the token once every join of the run is done."""
    cert_key = _upload_certs(cluster) if control_plane else ['key=""']
    return script(
        "join-credentials",
        f"token=$(kubeadm token create --ttl=1h --description={quote(JOIN_TOKEN_DESCRIPTION)})",
        f"hash=$({ca_hash_command()})",
        *cert_key,
        "printf '{\"token\":\"%s\",\"caCertHash\":\"sha256:%s\",\"certificateKey\":\"%s\"}\\n' "
        '"$token" "$hash" "$key"',
    )


def revoke_join_credentials_script(cluster: Cluster) -> str:
    """On the bootstrap node, after every join of the run: delete the bootstrap tokens this
    program made, kubeadm's TTL proxies for uploaded certificates, and the kubeadm-certs Secret
    (the cluster's CA keys, encrypted with a certificate key the join credentials carried).
    The nodes that have join credentials and a digest of the credentials scripts are in the
    script, so it re-runs whenever a credentials step does: a node added, or the credentials
    scripts changed (a new kubernetesVersion re-runs them all). A token that expired between
    list and delete (the token cleaner) is no failure."""
    names = sorted(n.name for n in (*cluster.joining_control_plane, *cluster.workers))
    credentials = (join_credentials_script(cluster, True), join_credentials_script(cluster, False))
    made_by = hashlib.sha256("\0".join(credentials).encode()).hexdigest()[:16]
    return script(
        "revoke-join-credentials",
        f"# {len(names)} nodes joined with credentials from kube-ha, set "
        f"{hashlib.sha256(chr(10).join(names).encode()).hexdigest()[:16]}, made by {made_by}",
        # One object per token (cmd/token.go RunListTokens); `.token` is "id.secret": it stays
        # in this shell, only the public id reaches an argv.
        "list=$(kubeadm token list -o jsonpath='{.token} {.description}{\"\\n\"}')",
        "ids=()",
        "while read -r token description; do",
        f'  case "$description" in {quote(JOIN_TOKEN_DESCRIPTION)}|{quote(CERTS_PROXY_DESCRIPTION)})'
        ' ids+=("${token%%.*}");; esac',
        'done < <(printf \'%s\\n\' "$list")',
        # `${a[@]+...}`: bash before 4.4 calls an empty array unset under `set -u`.
        'for id in ${ids[@]+"${ids[@]}"}; do',
        '  if ! out=$(kubeadm token delete "$id" 2>&1); then',
        '    case "$out" in *"not found"*) ;; *) printf \'%s\\n\' "$out" >&2; exit 1;; esac',
        "  fi",
        "done",
        f"{KUBECTL} -n kube-system delete secret kubeadm-certs --ignore-not-found >&2",
        'log "revoked ${#ids[@]} bootstrap tokens; no uploaded control-plane certificates left"',
    )


def _place_serving_pair(cert: str, key: str) -> list[str]:
    """Our apiserver certificate where kubeadm looks before it would make its own (it keeps a
    pre-placed pair whose SANs pass its check)."""
    return [f"  install -d -m 0755 {PKI}",
            write_file(f"{PKI}/apiserver.key", key, "0600", flag=None),
            write_file(f"{PKI}/apiserver.crt", cert, "0644", flag=None)]


def _kubeadm_join(cluster: Cluster, node: Host, creds: dict[str, str], control_plane: bool
                  ) -> list[str]:
    """Write the JoinConfiguration (0600, removed afterwards, even on failure) and join."""
    path = f"{NODE_STATE}/join.yaml"
    return [
        f"install -d -m 0700 {NODE_STATE}",
        f"trap 'rm -f {path}' EXIT",
        write_file(path, join_configuration(cluster, node, creds, control_plane), "0600",
                   flag=None),
        f"kubeadm join --config={path} >&2",
    ]


def _wait_ready_with_a_pod_network(node: Host) -> str:
    """Wait for the Node to be Ready when the cluster has a pod network, else only for it to
    be registered. A Node turns Ready only once a CNI plugin is configured on it (the kubelet
    reports NetworkReady=false until then), and a cluster kube-ha just created has none: the
    user applies one after this `up`. Some Node already Ready means there is one."""
    name = quote(node.name)
    return "\n".join([
        f"if {KUBECTL} get nodes --no-headers 2>/dev/null"
        " | awk '$2 ~ /^Ready(,|$)/ { found = 1 } END { exit !found }'; then",
        f"  {KUBECTL_LONG} wait --for=condition=Ready {quote('node/' + node.name)}"
        " --timeout=600s >&2",
        "else",
        f"  {KUBECTL} get node {name} >/dev/null",
        f'  log "no Node is Ready (no pod network yet): not waiting for {node.name} to turn'
        ' Ready; apply a pod network (README, Prerequisites)"',
        "fi",
    ])


def control_plane_join_script(cluster: Cluster, node: Host, cert: str, key: str,
                              creds: dict[str, str], etcd: EtcdAccess = EtcdAccess()) -> str:
    """Join one control-plane node (our serving cert pre-placed, kubeadm keeps it), then wait
    until the node is Ready (once the cluster has a pod network) and its etcd member healthy —
    the next join waits for this one.

    On a node that is already a member (joined earlier, or by hand as in the seed), re-point
    its kubeconfigs. Its re-issued serving cert is normally in place already (the
    serving-certificate steps run first, one node at a time); installing it here again is a
    no-op then, and covers a step run on its own (`pulumi up --target`)."""
    return script(
        f"join-control-plane {node.name}",
        *_endpoint_name(cluster),
        etcd.function(),
        f"if [ -f {STATIC_PODS}/kube-apiserver.yaml ] && [ -f {KUBELET_CONF} ]; then",
        '  log "already a control-plane node"',
        install_serving_cert(cluster, node, cert, key),
        "  changed=0",
        repoint_kubeconfig(ADMIN_CONF, cluster.endpoint.url),
        repoint_kubeconfig(f"{KUBELET_CONF}", cluster.endpoint.url),
        '  if [ "$changed" = 1 ]; then systemctl restart kubelet; log "kubelet restarted"; fi',
        "else",
        *_place_serving_pair(cert, key),
        *_kubeadm_join(cluster, node, creds, control_plane=True),
        f"  {MARK_MANAGED}",
        "fi",
        keep_annotated(node.name),
        _wait_ready_with_a_pod_network(node),
        f'etcdctl_ endpoint health >&2 || {{ log "etcd on {node.name} unhealthy"; exit 1; }}',
        f'log "{node.name} is a control-plane node with a healthy etcd member"',
    )


def worker_join_script(cluster: Cluster, node: Host, creds: dict[str, str],
                       local_proxy: tuple[str, str] | None = None) -> str:
    """Join a new worker (discovery through the endpoint), then point its kubelet at what
    workers dial: the endpoint, or its node-local proxy.

    With `local_proxy` (the node-local haproxy's install and configure scripts, each run whole
    by its own bash) the proxy is installed and answering on 127.0.0.1 before anything on the
    node is pointed at it: one step per worker, not three."""
    proxy: list[str] = []
    after: list[str] = []
    if local_proxy is not None:
        install, configure = local_proxy
        proxy = [heredoc("bash", install), heredoc("bash", configure),
                 _wait_local_proxy(cluster.apiserver_port)]
    else:
        after = [_remove_local_proxy()]
    return script(
        f"worker {node.name}",
        *_endpoint_name(cluster),
        *proxy,
        f"if [ -f {KUBELET_CONF} ]; then",
        f'  log "{node.name} already joined"',
        "else",
        *_kubeadm_join(cluster, node, creds, control_plane=False),
        f"  {MARK_MANAGED}",
        f'  log "{node.name} joined"',
        "fi",
        "changed=0",
        repoint_kubeconfig(f"{KUBELET_CONF}", cluster.node_url),
        'if [ "$changed" = 1 ]; then systemctl restart kubelet; log "kubelet restarted"; fi',
        *after,
    )


def _remove_local_proxy() -> str:
    """`nodeLocalProxy` switched off: once the kubelet dials the endpoint (and kube-proxy's
    kubeconfig names it: that step runs before the workers' when there are no node-local
    proxies), the proxy kube-ha put on this worker is stopped and its config set aside. The
    package stays installed. A haproxy that is not kube-ha's node-local proxy is not touched."""
    return "\n".join([
        f"first=$(head -n 1 {HAPROXY_CFG} 2>/dev/null || true)",
        f'case "$first" in {quote(NODE_LOCAL_MARK)}*)',
        "  systemctl disable --now haproxy >&2",
        f'  mv {HAPROXY_CFG} "{HAPROXY_CFG}.kube-ha-off-$(date +%Y%m%d%H%M%S)"',
        '  log "nodeLocalProxy is off: the node-local proxy is stopped, its config set aside";;',
        "esac",
    ])


def _wait_local_proxy(port: int) -> str:
    """The node-local proxy accepts on 127.0.0.1 (haproxy listens once started or reloaded)."""
    return f"""\
for _ in $(seq 30); do
  if {tcp_probe(port)}; then break; fi
  sleep 1
done
{tcp_probe(port)} || {{
  log "the node-local proxy does not answer on 127.0.0.1:{port}"; exit 1; }}"""


def kube_proxy_script(cluster: Cluster) -> str:
    """On the bootstrap node, after every worker's step: point kube-proxy's kubeconfig (one
    ConfigMap for every node) at what nodes dial, and restart it only when that changed. It
    runs last because with node-local proxies that is 127.0.0.1, which answers on a worker only
    once its proxy is up. kube-proxy is an optional add-on (absent under e.g. Cilium)."""
    return script(
        "kube-proxy",
        _patch_configmap("kube-system", "kube-proxy", "kubeconfig.conf",
                         _sed(cluster.node_url), f"server: {cluster.node_url}",
                         flag="restart_proxy", optional=True),
        'if [ -n "${restart_proxy:-}" ]; then',
        f"  {KUBECTL} -n kube-system rollout restart daemonset/kube-proxy",
        "fi",
    )


def workers_reconcile_script(cluster: Cluster, departing: tuple[Host, ...] = ()) -> str:
    """On the bootstrap node: drain and delete the Node of every worker in `departing` (the
    last `up` deployed it, the config no longer lists it: kube_ha.membership.departed); its
    retire step resets it afterwards. Only those: a Node the stack never listed is left
    alone. Until this step and the retire steps are done the stack keeps its last record, so
    the next `up` runs it again."""
    leaving = " ".join(w.name for w in departing)
    listed = " ".join(n.name for n in cluster.nodes)  # a name still listed is never removed
    return script(
        "workers",
        f"departing={quote(leaving)}",
        f"listed={quote(listed)}",
        "set -f  # the list is split on blanks, never globbed",
        "for node in $departing; do",
        '  case " $listed " in *" $node "*) continue ;; esac',
        f'  if {KUBECTL} get node "$node" >/dev/null 2>&1; then',
        '    log "worker $node left the config: draining it and deleting its Node"',
        *indent([drain_or_cordon('"$node"')], "    "),
        # kubectl delete waits until the object is gone, by default up to 168 h (kubectl
        # delete.go): a finalizer would hang the step. The request is enough.
        f'    {KUBECTL} delete node "$node" --ignore-not-found --wait=false >&2',
        "  fi",
        "done",
        '[ -n "$departing" ] || log "no worker left the list"',
    )


def _nothing_to_reset() -> str:
    # kubeadm reset empties the manifests directory but keeps it (cleanupnode.go CleanDir):
    # an empty one means reset already ran.
    return f'if [ ! -f {KUBELET_CONF} ] && [ -z "$(ls -A {STATIC_PODS} 2>/dev/null)" ]; then'


def retire_script() -> str:
    """What a node removed from the config runs last (its retire step, over SSH from where
    `pulumi up` runs, after its etcd member and Node were taken out from a surviving member):
    `kubeadm reset`, whoever joined it. Listing a node and then removing it from the list is
    the request; nothing else runs this."""
    return script(
        "retire",
        _nothing_to_reset(),
        '  log "nothing to reset"',
        "else",
        # Its member is already gone: reset's etcd phase counts that as done (phases/etcd/
        # local.go, kubernetes#117724) and only warns on any other etcd error, then cleans
        # up all the same (cmd/phases/reset/removeetcdmember.go; kubernetes#133437's log).
        "  kubeadm reset --force >&2",
        f"  rm -f {MANAGED_MARKER}",
        '  log "kubeadm state wiped: this host may be reused or joined again"',
        "fi",
        retire_lines(),
    )


def reset_script() -> str:
    """The delete recorded on every join step (kept verbatim: existing stacks' steps carry it,
    and a changed `delete` re-runs the step). The steps are retained on delete, so the engine
    never runs it; a removed node's reset is its retire step."""
    return script(
        "reset",
        _nothing_to_reset(),
        '  log "nothing to reset"',
        f"elif [ ! -f {MANAGED_MARKER} ]; then",
        '  log "this node was not joined by kube-ha (no '
        f'{MANAGED_MARKER}): leaving it as it is; kubeadm reset by hand if you mean to"',
        "else",
        "  kubeadm reset --force >&2",
        f"  rm -f {MANAGED_MARKER}",
        "fi",
    )



def endpoint_check_script(cluster: Cluster, attempts: int = 15) -> str:
    """With your own load balancer (`endpoint.type: external`), on the bootstrap node before
    anything is re-pointed at the endpoint: it answers /readyz with a certificate the cluster
    CA verifies (kubectl with the node's admin.conf; the serving certificates naming the
    endpoint are installed by then). A new cluster has nothing to check yet: `kubeadm init`
    dials the endpoint itself and fails when it does not answer."""
    url = cluster.endpoint.url
    port = cluster.apiserver_port
    return script(
        "endpoint check",
        f"if [ ! -f {ADMIN_CONF} ]; then",
        f'  log "no cluster here yet: kubeadm init dials {url} itself"; exit 0',
        "fi",
        f"for _ in $(seq {attempts}); do",
        f"  if out=$({KUBECTL} --server={quote(url)} get --raw=/readyz 2>&1); then",
        f'    log "{url} answers /readyz with a certificate the cluster CA verifies"; exit 0',
        "  fi",
        "  sleep 2",
        "done",
        f'log "endpoint.address: {url} does not answer /readyz with a certificate the cluster CA'
        f' verifies (${{out##*$\'\\n\'}}). Fix: register every control-plane node on port {port}'
        " (stack output loadBalancerBackends) on your load balancer, as TCP passthrough, then run"
        ' pulumi up again"',
        "exit 1",
    )
