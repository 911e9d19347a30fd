"""Each rule of the stack config reader, one broken value at a time: the exact lines `pulumi up`
prints for it (the key, what is wrong, the fix), and nothing else; and each accepted spelling
(a number or boolean given as a string, an address or name in another case or form) as the model
then holds it.

test_bad_input checks that a broken stack names its key through the whole program; test_config_edges
holds the numeric ranges and the defaults. Here the reader is called directly, so each case is
cheap, and the whole problem list is compared: a key name left unread, a message that lost its
fix, or a rule that fires on a neighbour's value each change it.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
import yaml

from kube_ha.config import OBJECT_KEYS, SCALAR_KEYS, ConfigError, Verbatim, misplaced_config_keys, parse_cluster
from kube_ha.model import Cluster
from tests.harness.hosts import host, host_key
from tests.program import ROOT, example_stack
from tests.test_config_edges import EDGES, Edge, edited

DROP = object()  # an edit's value that deletes the key
STACKS = {name: example_stack(name) for name in ("dev", "vip", "service", "external")}
Problems = list[tuple[str, str]]


def build(base: str, edits: dict[str, Any]) -> dict[str, Any]:
    """An example stack with `edits` applied: dotted paths, list indexes as numbers (the index
    one past the end appends)."""
    raw = copy.deepcopy(STACKS[base])
    for path, value in edits.items():
        *parents, last = path.split(".")
        node: Any = raw
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        if value is DROP:
            node.pop(int(last) if last.isdigit() else last)
        elif last.isdigit() and int(last) == len(node):
            node.append(value)
        else:
            node[int(last) if last.isdigit() else last] = value
    return raw


def problems(raw: dict[str, Any], unreadable: dict[str, str] | None = None) -> Problems:
    try:
        parse_cluster(raw, unreadable)
    except ConfigError as err:
        return err.problems
    return []


def accepted(base: str, edits: dict[str, Any]) -> Cluster:
    return parse_cluster(build(base, edits))


# Messages several cases share.
NOT_IP = "is not an IP address. Fix: give an IPv4 or IPv6 address, without a zone id or spaces."
NOT_USER = ("is not a user name. Fix: lower-case letters, digits, '_' or '-', starting with a letter, "
            "e.g. root or kube-admin.")
PORT_RANGE = "is out of range. Fix: use 1-65535."
EVEN = ("2 nodes is an even etcd member count: it tolerates no more failures than one fewer. Fix: use an "
        "odd count, or set allowEvenControlPlane: true while growing.")
NOT_HOST_KEY = ("is not an SSH public key. Fix: paste one line of /etc/ssh/ssh_host_ed25519_key.pub, "
                "e.g. 'ssh-ed25519 AAAAC3Nza... root@node'.")
NOT_HOST = "is not a host address. Fix: give the address it is reached at."
NOT_MAPPING = "must be a mapping. Fix: give key: value pairs."
NOT_CIDR = "is not a network CIDR"
ENDPOINT_FIELDS = "Fix: use one of address, dnsName, manageHostsEntry, port, type, virtualIp."
EXTERNAL_LBS = ("lists hosts, but endpoint.type is external: your load balancer is yours, and the program "
                "configures none. Fix: remove loadBalancers, or set endpoint.type to loadBalancer or "
                "virtualIp.")
IN_USE = "both listen on the same nodes (hostNetwork). Fix: give each its own port."
ON_KUBEADM = "on every node (hostNetwork). Fix: use a free port, e.g. 7443, 10357 or 10359."
NOT_STATS = "is not ADDRESS:PORT. Fix: e.g. 127.0.0.1:8404 or [::1]:8404."
EMPTY_POOL = [("elasticApiserver.poolNodes", "is empty. Fix: name the nodes that may run extra apiservers."),
              ("elasticApiserver.maxReplicas", "2 exceeds the pool of 0 nodes (one pod per node). Fix: "
               "lower it or grow poolNodes.")]
NOT_A_NODE = "is not a node in controlPlane or workers. Fix: name a listed node."
SVC_TAKEN = "Fix: another address in serviceSubnet 10.96.0.0/12."

_KEY = host_key("x").split()[1]
# The right key type in the blob, behind a length field of 12 instead of 11 (RFC 4253 6.6).
_WRONG_LENGTH = base64.b64encode(b"\x00\x00\x00\x0c" + base64.b64decode(_KEY)[4:]).decode()

CASES: list[tuple[str, str, dict[str, Any], Problems]] = [
    # Top-level scalars: type, syntax, the string forms YAML may hand over.
    ("cluster name not a string", "dev", {"clusterName": 5},
     [("clusterName", "5 is not a string. Fix: give a string.")]),
    ("cluster name not DNS-1123", "dev", {"clusterName": "My_Cluster"},
     [("clusterName", "'My_Cluster' is not a DNS-1123 name. Fix: lower-case, digits, '-'.")]),
    ("version not a version", "dev", {"kubernetesVersion": "latest"},
     [("kubernetesVersion", "'latest' is not a version. Fix: e.g. v1.32.3.")]),
    ("ssh user refused for every host that inherits it", "dev", {"sshUser": "Root"},
     [("sshUser", f"'Root' {NOT_USER}")] + [(f"{k}.user", f"'Root' {NOT_USER}") for k in (
         "controlPlane[0]", "controlPlane[1]", "controlPlane[2]", "workers[0]", "workers[1]",
         "loadBalancers[0]")]),
    ("ssh port as a negative digit string", "dev", {"sshPort": "-1"},
     [("sshPort", f"port -1 {PORT_RANGE}")] + [(f"{k}.port", f"port -1 {PORT_RANGE}") for k in (
         "controlPlane[0]", "controlPlane[1]", "controlPlane[2]", "workers[0]", "workers[1]",
         "loadBalancers[0]")]),
    ("a boolean is no port", "dev", {"sshPort": True},
     [("sshPort", "True is not an integer. Fix: give an integer.")]),
    ("port with letters", "dev", {"apiserverPort": "64x"},
     [("apiserverPort", "'64x' is not an integer. Fix: give an integer.")]),
    ("apiserver on kube-proxy's port", "dev", {"apiserverPort": 10256},
     [("apiserverPort", "10256 is kube-proxy's health-check port. Fix: use 6443.")]),
    ("empty SSH key", "dev", {"sshPrivateKey": ""},
     [("sshPrivateKey", "is not set. Fix: pulumi config set --secret sshPrivateKey < ~/.ssh/id_ed25519")]),
    ("unknown key near a known one", "dev", {"workerz": []},
     [("workerz", "unknown key. Did you mean 'workers'? Fix: remove it or correct its spelling.")]),
    ("unknown key like nothing", "dev", {"zzzzzz": 1},
     [("zzzzzz", "unknown key. Fix: remove it or correct its spelling.")]),
    ("boolean as maybe", "dev", {"allowEvenControlPlane": "maybe"},
     [("allowEvenControlPlane", "'maybe' is not a boolean. Fix: give a boolean.")]),
    ("'False' is false", "dev", {"allowEvenControlPlane": "False", "controlPlane.2": DROP},
     [("controlPlane", EVEN)]),
    ("cluster domain in capitals", "dev", {"clusterDomain": "Cluster.local"},
     [("clusterDomain", "'Cluster.local' is not a DNS domain. Fix: e.g. cluster.local.")]),
    ("registry path with an empty segment", "dev", {"imageRepository": "registry.k8s.io//x"},
     [("imageRepository", "'registry.k8s.io//x' is not a registry path. Fix: e.g. registry.k8s.io or "
       "registry.example.com/k8s.")]),
    ("image digests as a list", "dev", {"imageDigests": ["sha256:x"]}, [("imageDigests", NOT_MAPPING)]),
    ("digest for an image not deployed: said once", "dev", {"imageDigests": {"etcd": "x"}},
     [("imageDigests.etcd", "unknown key. Fix: use one of kube-apiserver, kube-controller-manager, "
       "kube-scheduler.")]),
    ("image digest not a string", "dev", {"imageDigests": {"kube-apiserver": 5}},
     [("imageDigests.kube-apiserver", "5 is not an image digest. Fix: give the sha256 digest of the image "
       "at kubernetesVersion, e.g. 'sha256:<64 hex>' (crane digest or skopeo inspect prints it).")]),
    ("static pods revision negative", "dev", {"staticPodsRevision": -1},
     [("staticPodsRevision", "-1 is too small. Fix: use at least 0.")]),
    ("static pods revision a word", "dev", {"staticPodsRevision": "one"},
     [("staticPodsRevision", "'one' is not an integer. Fix: give an integer.")]),
    # Networks.
    ("service subnet not a string", "dev", {"serviceSubnet": 5},
     [("serviceSubnet", "5 is not a string. Fix: give a string.")]),
    ("service subnet with a leading space", "dev", {"serviceSubnet": " 10.96.0.0/12"},
     [("serviceSubnet", f"' 10.96.0.0/12' {NOT_CIDR} (not a plain ASCII string). Fix: e.g. 10.96.0.0/12.")]),
    ("pod subnet with a full-width digit", "dev", {"podSubnet": "10.244.0.0/1\uff16"},
     [("podSubnet", f"'10.244.0.0/1\uff16' {NOT_CIDR} (not a plain ASCII string). Fix: e.g. 10.96.0.0/12.")]),
    ("pod subnet with a zone id", "dev", {"podSubnet": "fe80::/64%eth0"},
     [("podSubnet", f"'fe80::/64%eth0' {NOT_CIDR} (zone ids are not allowed). Fix: e.g. 10.96.0.0/12.")]),
    ("pod subnet with host bits", "dev", {"podSubnet": "10.244.0.1/16"},
     [("podSubnet", f"'10.244.0.1/16' {NOT_CIDR} (10.244.0.1/16 has host bits set). Fix: e.g. 10.96.0.0/12.")]),
    ("pod subnet inside the service subnet", "dev", {"podSubnet": "10.96.0.0/16"},
     [("podSubnet", "10.96.0.0/16 overlaps serviceSubnet 10.96.0.0/12. Fix: use disjoint CIDRs.")]),
    # Host lists and their entries.
    ("no control plane", "dev", {"controlPlane": []},
     [("controlPlane", "no control-plane nodes. Fix: list at least one (1, 3 or 5)."),
      ("controllerManager.replicas", "2 replicas, one per control-plane node, but there are 0. Fix: at most 0.")]),
    ("control plane as a mapping", "dev", {"controlPlane": {"name": "x"}},
     [("controlPlane", "must be a list of hosts. Fix: give - name: ..., address: ... entries."),
      ("controlPlane", "no control-plane nodes. Fix: list at least one (1, 3 or 5)."),
      ("controllerManager.replicas", "2 replicas, one per control-plane node, but there are 0. Fix: at most 0.")]),
    ("a null entry", "dev", {"controlPlane.1": None},
     [("controlPlane[1]", "is empty (null). Fix: give name and address, or remove the line."),
      ("controlPlane", EVEN)]),
    ("an empty entry", "dev", {"controlPlane.1": {}},
     [("controlPlane[1]", "is empty. Fix: give name and address."), ("controlPlane", EVEN)]),
    ("an entry that is a bare name", "dev", {"controlPlane.1": "ubuntu-70"},
     [("controlPlane[1]", NOT_MAPPING), ("controlPlane", EVEN)]),
    ("two bootstrap nodes", "dev", {"controlPlane.1.bootstrap": True},
     [("controlPlane", "more than one node has bootstrap: true. Fix: mark exactly one.")]),
    ("bootstrap as yes", "dev", {"controlPlane.1.bootstrap": "yes"},
     [("controlPlane[1].bootstrap", "'yes' is not a boolean. Fix: give a boolean.")]),
    ("a worker takes no bootstrap", "dev", {"workers.0.bootstrap": True},
     [("workers[0].bootstrap", "unknown key. Fix: use one of address, hostKey, name, port, user.")]),
    ("an LB host takes no bootstrap", "dev", {"loadBalancers.0.bootstrap": True},
     [("loadBalancers[0].bootstrap", "unknown key. Fix: use one of address, hostKey, name, port, user.")]),
    ("two bad names are not also duplicates", "dev", {"controlPlane.1.name": "A", "controlPlane.2.name": "B"},
     [("controlPlane[1].name", "'A' is not a valid node name. Fix: lower-case DNS name."),
      ("controlPlane[2].name", "'B' is not a valid node name. Fix: lower-case DNS name.")]),
    ("no address", "dev", {"workers.1.address": DROP}, [("workers[1].address", f"None {NOT_IP}")]),
    ("address 0.0.0.0", "dev", {"workers.1.address": "0.0.0.0"}, [("workers[1].address", f"0.0.0.0 {NOT_HOST}")]),
    ("address ::", "dev", {"workers.1.address": "::"}, [("workers[1].address", f":: {NOT_HOST}")]),
    ("multicast address", "dev", {"workers.1.address": "ff02::1"},
     [("workers[1].address", f"ff02::1 {NOT_HOST}")]),
    ("broadcast address", "dev", {"workers.1.address": "255.255.255.255"},
     [("workers[1].address", f"255.255.255.255 {NOT_HOST}")]),
    ("user starting with a digit", "dev", {"workers.1.user": "1abc"}, [("workers[1].user", f"'1abc' {NOT_USER}")]),
    ("user of 33 characters", "dev", {"workers.1.user": "a" * 33},
     [("workers[1].user", f"'{'a' * 33}' {NOT_USER}")]),
    ("port '0'", "dev", {"workers.1.port": "0"}, [("workers[1].port", f"port 0 {PORT_RANGE}")]),
    ("no host key", "dev", {"workers.1.hostKey": DROP},
     [("workers[1].hostKey", "is not set: without it the SSH client trusts whoever answers on the address "
       "with root scripts, the CA key and join tokens. Fix: give the host's /etc/ssh/ssh_host_ed25519_key.pub "
       "line, collected out of band (see README, 'SSH host keys'), or set insecureSkipHostKeyCheck: true for "
       "a throwaway lab.")]),
    ("host key a number", "dev", {"workers.1.hostKey": 5}, [("workers[1].hostKey", f"5 {NOT_HOST_KEY}")]),
    ("ed25519 blob labelled ssh-rsa", "dev", {"workers.1.hostKey": f"ssh-rsa {_KEY}"},
     [("workers[1].hostKey", f"'ssh-rsa {_KEY}' {NOT_HOST_KEY}")]),
    ("blob with a wrong length field", "dev", {"workers.1.hostKey": f"ssh-ed25519 {_WRONG_LENGTH}"},
     [("workers[1].hostKey", f"'ssh-ed25519 {_WRONG_LENGTH}' {NOT_HOST_KEY}")]),
    ("blob not base64", "dev", {"workers.1.hostKey": "ssh-ed25519 AAAAC"},
     [("workers[1].hostKey", f"'ssh-ed25519 AAAAC' {NOT_HOST_KEY}")]),
    ("a name thrice: each repeat names the first", "dev",
     {"workers.0.name": "ubuntu-73", "workers.1.name": "ubuntu-73",
      "elasticApiserver.poolNodes": ["ubuntu-70", "ubuntu-72"]},
     [("workers[0].name", "'ubuntu-73' is also controlPlane[0]. Fix: give every host its own name."),
      ("workers[1].name", "'ubuntu-73' is also controlPlane[0]. Fix: give every host its own name.")]),
    ("an address thrice", "dev", {"workers.0.address": "10.21.22.73", "workers.1.address": "10.21.22.73"},
     [("workers[0].address", "10.21.22.73 is also controlPlane[0]. Fix: give every host its own address."),
      ("workers[1].address", "10.21.22.73 is also controlPlane[0]. Fix: give every host its own address.")]),
    ("two LBs at one address", "vip", {"loadBalancers.1.address": "10.21.22.101"},
     [("loadBalancers[1].address", "10.21.22.101 is also loadBalancers[0]. Fix: give every host its own "
       "address.")]),
    # The endpoint.
    ("no endpoint", "dev", {"endpoint": DROP},
     [("endpoint", "is not set. Fix: give endpoint.address (the LB or VIP address).")]),
    ("endpoint as a list", "dev", {"endpoint": ["x"]},
     [("endpoint", NOT_MAPPING), ("endpoint", "is not set. Fix: give endpoint.address (the LB or VIP address).")]),
    ("a stack key indented into the endpoint", "dev", {"endpoint.kube-ha:workers": []},
     [("endpoint.kube-ha:workers", "is a stack key, indented into kube-ha:endpoint. Fix: dedent it to the "
       "level of kube-ha:endpoint.")]),
    ("a stack key indented into a host entry", "dev", {"controlPlane.0.kube-ha:sshPort": 22},
     [("controlPlane[0].kube-ha:sshPort", "is a stack key, indented into kube-ha:controlPlane[0]. Fix: dedent "
       "it to the level of kube-ha:controlPlane.")]),
    ("endpoint field misspelt", "dev", {"endpoint.adress": "1.2.3.4"},
     [("endpoint.adress", f"unknown key. Did you mean 'address'? {ENDPOINT_FIELDS}")]),
    ("endpoint field like nothing", "dev", {"endpoint.qqqq": "1"},
     [("endpoint.qqqq", f"unknown key. {ENDPOINT_FIELDS}")]),
    ("bad DNS name leaves no name to map", "dev", {"endpoint.dnsName": "A_B", "endpoint.manageHostsEntry": True},
     [("endpoint.dnsName", "'A_B' is not a DNS name. Fix: e.g. api.k8s.example."),
      ("endpoint.manageHostsEntry", "is true, but endpoint.dnsName is not set: there is no name to map. "
       "Fix: set endpoint.dnsName, or leave this false.")]),
    ("hosts entry without a name", "dev", {"endpoint.dnsName": DROP, "endpoint.manageHostsEntry": "true"},
     [("endpoint.manageHostsEntry", "is true, but endpoint.dnsName is not set: there is no name to map. "
       "Fix: set endpoint.dnsName, or leave this false.")]),
    ("endpoint type not a string", "dev", {"endpoint.type": 5},
     [("endpoint.type", "5 is not a string. Fix: give a string.")]),
    ("virtualIp as maybe", "dev", {"endpoint.virtualIp": "maybe"},
     [("endpoint.virtualIp", "'maybe' is not a boolean. Fix: give a boolean.")]),
    ("manageHostsEntry as yes", "dev", {"endpoint.manageHostsEntry": "yes"},
     [("endpoint.manageHostsEntry", "'yes' is not a boolean. Fix: give a boolean.")]),
    ("unknown endpoint type", "dev", {"endpoint.type": "haproxy"},
     [("endpoint.type", "'haproxy' is not one of loadBalancer, virtualIp, external, service. Fix: loadBalancer "
       "(haproxy on the LB host), virtualIp (keepalived moves the address between the LB hosts) or external "
       "(your own load balancer).")]),
    ("virtualIp true with another type", "dev", {"endpoint.virtualIp": True, "endpoint.type": "external"},
     [("endpoint.virtualIp", "is true, but endpoint.type is external. Fix: keep one: endpoint.type: virtualIp "
       "(virtualIp: true says the same)."), ("loadBalancers", EXTERNAL_LBS)]),
    ("endpoint on a worker", "dev", {"endpoint.address": "10.21.22.74"},
     [("endpoint.address", "10.21.22.74 is a workers node: the endpoint must survive that node. Fix: use the "
       "LB's address or a VIP.")]),
    ("endpoint 0.0.0.0", "dev", {"endpoint.address": "0.0.0.0"}, [("endpoint.address", f"0.0.0.0 {NOT_HOST}")]),
    ("endpoint not an address", "dev", {"endpoint.address": "x"}, [("endpoint.address", f"'x' {NOT_IP}")]),
    ("endpoint none of the LBs", "dev", {"endpoint.address": "10.21.22.99"},
     [("endpoint.address", "10.21.22.99 is none of the load balancers' addresses. Fix: give the LB's own "
       "address, or set endpoint.virtualIp: true to have keepalived move 10.21.22.99 between the LB hosts.")]),
    ("endpoint one of two LBs", "vip", {"endpoint.type": DROP, "endpoint.address": "10.21.22.101"},
     [("endpoint.address", "10.21.22.101 belongs to one of 2 load balancers, so the others would never serve "
       "it. Fix: use a free address in their subnet as a virtual IP (endpoint.virtualIp: true); keepalived "
       "then moves it to a healthy LB.")]),
    ("no LB hosts", "dev", {"loadBalancers": DROP},
     [("loadBalancers", "no load-balancer hosts. Fix: list the LB VM(s) running haproxy, or set endpoint.type: "
       "external for a load balancer of your own.")]),
    ("VIP without LB hosts", "vip", {"loadBalancers": DROP},
     [("endpoint.virtualIp", "needs loadBalancers: keepalived runs on them. Fix: list the LB hosts, or set "
       "endpoint.type: external for a load balancer of your own.")]),
    ("VIP an LB owns", "vip", {"endpoint.address": "10.21.22.101"},
     [("endpoint.virtualIp", "10.21.22.101 is loadBalancers[0]'s own address; a virtual IP is one no host "
       "owns. Fix: a free address in the LBs' subnet.")]),
    ("VIP with haproxy on one address", "vip", {"loadBalancer.bindAddress": "10.21.22.101"},
     [("loadBalancer.bindAddress", "with a virtual IP endpoint haproxy must listen on every address (a backup "
       "host does not own the VIP yet). Fix: leave it '*'.")]),
    ("IPv6 VIP over IPv4 LBs", "vip", {"endpoint.address": "fd00::100"},
     [("endpoint.address", "virtual IP fd00::100 is not of the load balancers' address family. Fix: a free "
       "address in their subnet.")]),
    ("loopback VIP", "vip", {"endpoint.address": "127.0.0.5"},
     [("endpoint.address", "127.0.0.5 is a loopback address: no client on another host can reach it. Fix: a "
       "free address in the LBs' subnet.")]),
    ("external with LB hosts", "external", {"loadBalancers": [host("haproxy-101", "10.21.22.101")]},
     [("loadBalancers", EXTERNAL_LBS)]),
    ("service with LB hosts", "service", {"loadBalancers": [host("haproxy-101", "10.21.22.101")]},
     [("loadBalancers", "lists hosts, but endpoint.type is service: nodes reach the apiservers through the "
       "Service. Fix: remove loadBalancers.")]),
    ("service without a name", "service", {"endpoint.dnsName": DROP},
     [("endpoint.dnsName", "is needed with endpoint.type service: nodes dial it, and each keeps it in "
       "/etc/hosts. Fix: e.g. apiserver.kube-system.svc.cluster.local.")]),
    ("service address outside the range", "service", {"endpoint.address": "10.21.22.200"},
     [("endpoint.address", "10.21.22.200 is outside serviceSubnet 10.96.0.0/12: with endpoint.type service it "
       "is the Service's ClusterIP. Fix: a free address in it.")]),
    ("service address of the other family", "service", {"endpoint.address": "fd00::50"},
     [("endpoint.address", "fd00::50 is outside serviceSubnet 10.96.0.0/12: with endpoint.type service it "
       "is the Service's ClusterIP. Fix: a free address in it.")]),
    ("service address the network's", "service", {"endpoint.address": "10.96.0.0"},
     [("endpoint.address", f"10.96.0.0 is the network's own address. {SVC_TAKEN}")]),
    ("service address the kubernetes Service's", "service", {"endpoint.address": "10.96.0.1"},
     [("endpoint.address", f"10.96.0.1 is the kubernetes Service's ClusterIP. {SVC_TAKEN}")]),
    ("service address cluster DNS's", "service", {"endpoint.address": "10.96.0.10"},
     [("endpoint.address", f"10.96.0.10 is cluster DNS's ClusterIP (kubeadm: the tenth). {SVC_TAKEN}")]),
    ("service address the broadcast", "service", {"endpoint.address": "10.111.255.255"},
     [("endpoint.address", f"10.111.255.255 is the broadcast address. {SVC_TAKEN}")]),
    ("service range unreadable: said once", "service", {"serviceSubnet": "nope"},
     [("serviceSubnet", f"'nope' {NOT_CIDR} ('nope' does not appear to be an IPv4 or IPv6 network). Fix: "
       "e.g. 10.96.0.0/12.")]),
    # A range written with host bits is refused, and still read as its network for the address.
    ("service range with host bits, address its first", "service",
     {"serviceSubnet": "10.96.0.1/12", "endpoint.address": "10.96.0.1"},
     [("serviceSubnet", f"'10.96.0.1/12' {NOT_CIDR} (10.96.0.1/12 has host bits set). Fix: e.g. 10.96.0.0/12."),
      ("endpoint.address", f"10.96.0.1 is the kubernetes Service's ClusterIP. {SVC_TAKEN}")]),
    ("service with elastic apiservers", "service", {"elasticApiserver.enabled": True},
     [("elasticApiserver.enabled", "with endpoint.type service, nodes reach the static apiservers through the "
       "Service, which cannot select the elastic pods (another port). Fix: switch them off, or use a load "
       "balancer topology.")]),
    # Listeners that would collide.
    ("LB on a worker with a node-local proxy", "vip",
     {"loadBalancers.2": host("ubuntu-74", "10.21.22.74"), "nodeLocalProxy": True},
     [("loadBalancers[2].address", "10.21.22.74 is also workers[0], whose node-local proxy is haproxy with its "
       "own haproxy.cfg: one would overwrite the other. Fix: a separate LB host.")]),
    ("LB on a control-plane node, stats on the kubelet's port", "vip",
     {"loadBalancers.2": host("ubuntu-73", "10.21.22.73"), "endpoint.port": 8443,
      "loadBalancer.statsBind": "*:10250"},
     [("loadBalancers[2].address", "10.21.22.73 is also controlPlane[0], where loadBalancer.statsBind 10250 is "
       "the kubelet's port. Fix: a separate LB host, or another loadBalancer.statsBind.")]),
    ("LB on a control-plane node, endpoint on the controller-manager's port", "vip",
     {"loadBalancers.2": host("ubuntu-73", "10.21.22.73"), "endpoint.port": 10357},
     [("loadBalancers[2].address", "10.21.22.73 is also controlPlane[0], where endpoint.port 10357 is "
       "controllerManager.port. Fix: a separate LB host, or another endpoint.port.")]),
    ("stats on the endpoint's port", "dev", {"loadBalancer.statsBind": "*:6443"},
     [("loadBalancer.statsBind", "port 6443 is the endpoint's. Fix: e.g. 127.0.0.1:8404.")]),
    ("LB on a control-plane node, endpoint on the apiserver's port", "vip",
     {"loadBalancers.2": host("ubuntu-73", "10.21.22.73"), "apiserverPort": 6444, "endpoint.port": 6444},
     [("loadBalancers[2].address", "10.21.22.73 is also controlPlane[0], where endpoint.port 6444 is the "
       "apiserver's port. Fix: a separate LB host, or another endpoint.port.")]),
    ("LB on a control-plane node, endpoint on the elastic apiservers' port", "vip",
     {"loadBalancers.2": host("ubuntu-73", "10.21.22.73"), "endpoint.port": 7443},
     [("loadBalancers[2].address", "10.21.22.73 is also controlPlane[0], where endpoint.port 7443 is "
       "elasticApiserver.port. Fix: a separate LB host, or another endpoint.port.")]),
    ("LB on a control-plane node, endpoint on a lone controller-manager's port", "vip",
     {"loadBalancers.2": host("ubuntu-73", "10.21.22.73"), "endpoint.port": 10357,
      "controllerManager.replicas": 1},
     [("loadBalancers[2].address", "10.21.22.73 is also controlPlane[0], where endpoint.port 10357 is "
       "controllerManager.port. Fix: a separate LB host, or another endpoint.port.")]),
    ("LB on a control-plane node, endpoint on the scheduler's port", "vip",
     {"loadBalancers.2": host("ubuntu-73", "10.21.22.73"), "endpoint.port": 10361,
      "kubeScheduler": {"replicas": 1, "port": 10361}},
     [("loadBalancers[2].address", "10.21.22.73 is also controlPlane[0], where endpoint.port 10361 is "
       "kubeScheduler.port. Fix: a separate LB host, or another endpoint.port.")]),
    ("controller-manager as a number", "dev", {"controllerManager": 3}, [("controllerManager", NOT_MAPPING)]),
    ("controller-manager field misspelt", "dev", {"controllerManager.replica": 3},
     [("controllerManager.replica", "unknown key. Did you mean 'replicas'? Fix: use one of port, replicas.")]),
    ("controller-manager replicas -1", "dev", {"controllerManager.replicas": -1},
     [("controllerManager.replicas", "-1 is too small. Fix: use at least 0.")]),
    ("four controller-managers on three nodes", "dev", {"controllerManager.replicas": 4},
     [("controllerManager.replicas", "4 replicas, one per control-plane node, but there are 3. Fix: at most 3.")]),
    ("four schedulers on three nodes", "dev", {"kubeScheduler": {"replicas": 4}},
     [("kubeScheduler.replicas", "4 replicas, one per control-plane node, but there are 3. Fix: at most 3.")]),
    ("scheduler replicas as a digit string", "dev", {"kubeScheduler": {"replicas": "4"}},
     [("kubeScheduler.replicas", "4 replicas, one per control-plane node, but there are 3. Fix: at most 3.")]),
    ("scheduler on etcd's peer port", "dev", {"kubeScheduler": {"replicas": 1, "port": 2380}},
     [("kubeScheduler.port", f"2380 is etcd's peer port {ON_KUBEADM}")]),
    ("scheduler on the elastic apiservers' port", "dev", {"kubeScheduler": {"replicas": 1, "port": 7443}},
     [("kubeScheduler.port", f"7443 is also elasticApiserver.port: {IN_USE}")]),
    ("controller-manager on the elastic apiservers' port", "dev", {"controllerManager.port": 7443},
     [("controllerManager.port", f"7443 is also elasticApiserver.port: {IN_USE}")]),
    ("elastic apiservers on the kubelet's port", "dev", {"elasticApiserver.port": 10250},
     [("elasticApiserver.port", f"10250 is the kubelet's port {ON_KUBEADM}")]),
    ("elastic apiservers on the apiserver's port", "dev", {"elasticApiserver.port": 6443},
     [("elasticApiserver.port", "6443 is the static apiserver's port; pods use hostNetwork. Fix: use another "
       "port, e.g. 7443."), ("elasticApiserver.port", f"6443 is also apiserverPort: {IN_USE}")]),
    # haproxy, keepalived and health-check settings.
    ("stats port 0", "dev", {"loadBalancer.statsBind": "127.0.0.1:0"},
     [("loadBalancer.statsBind", f"'127.0.0.1:0' {NOT_STATS}")]),
    ("stats port 65536", "dev", {"loadBalancer.statsBind": "127.0.0.1:65536"},
     [("loadBalancer.statsBind", f"'127.0.0.1:65536' {NOT_STATS}")]),
    ("stats address not an IP", "dev", {"loadBalancer.statsBind": "300.1.1.1:8404"},
     [("loadBalancer.statsBind", f"'300.1.1.1' {NOT_IP}")]),
    ("stats IPv6 address not an IP", "dev", {"loadBalancer.statsBind": "[1::2::3]:8404"},
     [("loadBalancer.statsBind", f"'1::2::3' {NOT_IP}")]),
    ("stats bind as a number", "dev", {"loadBalancer.statsBind": 8404},
     [("loadBalancer.statsBind", "8404 is not a string. Fix: give a string."),
      ("loadBalancer.statsBind", f"'' {NOT_STATS}")]),
    ("bind address not an IP", "dev", {"loadBalancer.bindAddress": "10.21.22.300"},
     [("loadBalancer.bindAddress", f"'10.21.22.300' {NOT_IP}")]),
    ("interface name of 16 characters", "dev", {"loadBalancer.vrrpInterface": "a" * 16},
     [("loadBalancer.vrrpInterface", f"'{'a' * 16}' is not an interface name. Fix: e.g. eth0 or ens192.")]),
    ("interface name a number", "dev", {"loadBalancer.vrrpInterface": 5},
     [("loadBalancer.vrrpInterface", "5 is not a string. Fix: give a string."),
      ("loadBalancer.vrrpInterface", "'' is not an interface name. Fix: e.g. eth0 or ens192.")]),
    ("router id 0", "dev", {"loadBalancer.virtualRouterId": 0},
     [("loadBalancer.virtualRouterId", "0 is too small. Fix: use at least 1."),
      ("loadBalancer.virtualRouterId", "0 is out of range. Fix: 1-255, unique on the LBs' network.")]),
    ("haproxy field misspelt", "dev", {"loadBalancer.maxconn": 5},
     [("loadBalancer.maxconn", "unknown key. Did you mean 'maxConn'? Fix: use one of bindAddress, "
       "clientTimeoutSeconds, connectTimeoutMs, maxConn, prometheusMetrics, retries, statsBind, "
       "tunnelTimeoutSeconds, virtualRouterId, vrrpInterface.")]),
    ("prometheus metrics as 1", "dev", {"loadBalancer.prometheusMetrics": 1},
     [("loadBalancer.prometheusMetrics", "1 is not a boolean. Fix: give a boolean.")]),
    ("health check as a list", "dev", {"healthCheck": [1]}, [("healthCheck", NOT_MAPPING)]),
    ("shutdown sessions as nope", "dev", {"healthCheck.shutdownSessionsOnDown": "nope"},
     [("healthCheck.shutdownSessionsOnDown", "'nope' is not a boolean. Fix: give a boolean.")]),
    # Its own range's top lies above any interval: past it, both lines.
    ("check timeout over a minute", "dev", {"healthCheck.timeoutMs": 60_001, "healthCheck.interMs": 60_000},
     [("healthCheck.timeoutMs", "60001 is too large. Fix: use at most 60000."),
      ("healthCheck.timeoutMs", "60001 >= interMs 60000: checks would overlap. Fix: keep the check timeout "
       "below the interval.")]),
    ("check timeout at the interval", "dev", {"healthCheck.timeoutMs": "800"},
     [("healthCheck.timeoutMs", "800 >= interMs 800: checks would overlap. Fix: keep the check timeout below "
       "the interval.")]),
    # Certificates.
    ("CA source a number", "dev", {"certificates.caSource": 3},
     [("certificates.caSource", "3 is not a string. Fix: give a string.")]),
    ("CA source vault", "dev", {"certificates.caSource": "vault"},
     [("certificates.caSource", "'vault' is not a CA source. Fix: 'import' (read it from the bootstrap node) "
       "or 'generate' (new cluster).")]),
    ("extra SANs as one string", "dev", {"certificates.extraSans": "api.example.com"},
     [("certificates.extraSans", "must be a list of DNS names or IP addresses. Fix: e.g. [api.example.com].")]),
    ("extra SANs: each bad entry named", "dev",
     {"certificates.extraSans": [5, "fe80::1%eth0", "bad name", "\u212aube.example", "ok.example"]},
     [("certificates.extraSans[0]", "5 is not a string. Fix: a DNS name or an IP address.")] + [
         (f"certificates.extraSans[{i}]", f"{s!r} is neither an IP address (no zone id) nor a DNS name. "
          "Fix: correct it.") for i, s in ((1, "fe80::1%eth0"), (2, "bad name"), (3, "\u212aube.example"))]),
    # The elastic apiservers' pool.
    ("pool as one string", "dev", {"elasticApiserver.poolNodes": "ubuntu-74"},
     [("elasticApiserver.poolNodes", "must be a list of node names. Fix: e.g. [worker-1, worker-2]."),
      *EMPTY_POOL]),
    ("pool with a number in it", "dev", {"elasticApiserver.poolNodes": ["ubuntu-74", 5]},
     [("elasticApiserver.poolNodes", "must be a list of node names. Fix: e.g. [worker-1, worker-2]."),
      *EMPTY_POOL]),
    ("pool lists a node twice", "dev", {"elasticApiserver.poolNodes": ["ubuntu-74", "ubuntu-74"]},
     [("elasticApiserver.poolNodes", "lists a node twice. Fix: list each node once.")]),
    ("pool names an unknown node", "dev", {"elasticApiserver.poolNodes": ["ubuntu-74", "nope"]},
     [("elasticApiserver.poolNodes[1]", f"'nope' {NOT_A_NODE}")]),
    ("pool names an LB host", "dev", {"elasticApiserver.poolNodes": ["haproxy-101", "ubuntu-74"]},
     [("elasticApiserver.poolNodes[0]", f"'haproxy-101' {NOT_A_NODE}")]),
    ("empty pool", "dev", {"elasticApiserver.poolNodes": []}, EMPTY_POOL),
    ("three replicas on a pool of two", "dev", {"elasticApiserver.maxReplicas": 3},
     [("elasticApiserver.maxReplicas", "3 exceeds the pool of 2 nodes (one pod per node). Fix: lower it or grow "
       "poolNodes.")]),
    ("min above max", "dev", {"elasticApiserver.minReplicas": 2, "elasticApiserver.maxReplicas": 1},
     [("elasticApiserver.minReplicas", "2 > maxReplicas 1. Fix: keep min <= max.")]),
    ("enabled as on", "dev", {"elasticApiserver.enabled": "on"},
     [("elasticApiserver.enabled", "'on' is not a boolean. Fix: give a boolean.")]),
    ("requests not quantities", "dev",
     {"elasticApiserver.cpuRequest": "1cpu", "elasticApiserver.memoryRequest": 512},
     [("elasticApiserver.cpuRequest", "'1cpu' is not a Kubernetes quantity. Fix: e.g. 250m or 512Mi."),
      ("elasticApiserver.memoryRequest", "512 is not a string. Fix: give a string.")]),
    ("memory target a word", "dev", {"elasticApiserver.memoryTargetPercent": "x"},
     [("elasticApiserver.memoryTargetPercent", "'x' is not an integer. Fix: give an integer.")]),
    ("metrics-server for a Kubernetes too old", "dev",
     {"kubernetesVersion": "v1.26.0", "elasticApiserver.installMetricsServer": True},
     [("elasticApiserver.installMetricsServer", "no metrics-server release supports Kubernetes v1.26.0 (the "
       "oldest pinned, v0.7.2, needs 1.27). Fix: install one yourself and leave this false.")]),
    ("metrics-server flag not a boolean", "dev", {"elasticApiserver.installMetricsServer": "sure"},
     [("elasticApiserver.installMetricsServer", "'sure' is not a boolean. Fix: give a boolean.")]),
    ("apiserver on etcd's client port", "dev", {"apiserverPort": 2379},
     [("apiserverPort", "2379 is etcd's client port. Fix: use 6443.")]),
    ("scheduler on the static scheduler's port", "dev", {"kubeScheduler": {"replicas": 1, "port": 10259}},
     [("kubeScheduler.port", "10259 is the static kube-scheduler's port on every node (hostNetwork). Fix: use a "
       "free port, e.g. 7443, 10357 or 10359.")]),
    # The kubelet listens on workers too: an LB there cannot take its port.
    ("LB on a worker with stats on the kubelet's port", "vip",
     {"loadBalancers.2": host("ubuntu-75", "10.21.22.75"), "loadBalancer.statsBind": "*:10250"},
     [("loadBalancers[2].address", "10.21.22.75 is also workers[1], where loadBalancer.statsBind 10250 is the "
       "kubelet's port. Fix: a separate LB host, or another loadBalancer.statsBind.")]),
    # kubeadm's own limits (constants.go MinimumAddressesInServiceSubnet = 10,
    # MaximumBitsForServiceSubnet = 20, PodSubnetNodeMaskMaxDiff = 16; validation.go
    # ValidatePodSubnetNodeMask against the default node masks /24 and /64).
    ("service subnet of 8 addresses", "dev", {"serviceSubnet": "10.96.0.0/29"},
     [("serviceSubnet", "10.96.0.0/29 has 8 address(es); kubeadm needs at least 10 (CoreDNS's Service "
       "takes the tenth). Fix: e.g. 10.96.0.0/12.")]),
    ("service subnet of one address", "dev", {"serviceSubnet": "::/128"},
     [("serviceSubnet", "::/128 has 1 address(es); kubeadm needs at least 10 (CoreDNS's Service "
       "takes the tenth). Fix: e.g. 10.96.0.0/12.")]),
    ("service subnet of 21 host bits", "dev", {"serviceSubnet": "10.96.0.0/11"},
     [("serviceSubnet", "10.96.0.0/11 is larger than kubeadm allows: the mask must be at least /12. "
       "Fix: e.g. 10.96.0.0/12.")]),
    ("IPv6 service subnet of 21 host bits", "dev", {"serviceSubnet": "fd00:96::/107"},
     [("serviceSubnet", "fd00:96::/107 is larger than kubeadm allows: the mask must be at least /108. "
       "Fix: e.g. 10.96.0.0/12.")]),
    ("pod subnet smaller than a node's range", "dev", {"podSubnet": "10.244.0.0/25"},
     [("podSubnet", "10.244.0.0/25 is smaller than one node's pod range (/24): kubeadm refuses it. "
       "Fix: use a mask of /24 or less, e.g. 10.244.0.0/16.")]),
    ("IPv6 pod subnet smaller than a node's range", "dev", {"podSubnet": "fd00:244::/65"},
     [("podSubnet", "fd00:244::/65 is smaller than one node's pod range (/64): kubeadm refuses it. "
       "Fix: use a mask of /64 or less, e.g. 10.244.0.0/16.")]),
    ("pod subnet of more than 2^16 node ranges", "dev", {"podSubnet": "172.0.0.0/7"},
     [("podSubnet", "172.0.0.0/7 is larger than kubeadm allows: the mask must be at least /8. "
       "Fix: e.g. 10.244.0.0/16.")]),
    ("IPv6 pod subnet of more than 2^16 node ranges", "dev", {"podSubnet": "fd00::/47"},
     [("podSubnet", "fd00::/47 is larger than kubeadm allows: the mask must be at least /48. "
       "Fix: e.g. 10.244.0.0/16.")]),
]


def test_the_cases_are_distinct() -> None:
    assert len({name for name, *_ in CASES}) == len(CASES)


@pytest.mark.parametrize("base, edits, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_mistake_gives_exactly_its_lines(base: str, edits: dict[str, Any], expected: Problems) -> None:
    """The user reads these lines to fix the stack: the key, the value, the fix, each once, and no
    line about a key that is fine."""
    assert problems(build(base, edits)) == expected


ACCEPTED: list[tuple[str, str, dict[str, Any]]] = [
    *[(f"the {name} stack as committed", name, {}) for name in sorted(STACKS)],
    ("a user name of 32 characters", "dev", {"workers.1.user": "a" * 32}),
    ("router id 1", "dev", {"loadBalancer.virtualRouterId": 1}),
    ("ports 1 and 65535", "dev", {"workers.0.port": 1, "workers.1.port": 65535}),
    # Only a worker's LB collides with its node-local proxy: a control-plane node runs none.
    ("LB on a control-plane node with node-local proxies on", "vip",
     {"loadBalancers.2": host("ubuntu-73", "10.21.22.73"), "endpoint.port": 8443, "nodeLocalProxy": True}),
    ("an IPv6 pod range beside an IPv4 service range", "dev", {"podSubnet": "fd00:244::/64"}),
    ("a service subnet of 16 addresses", "dev", {"serviceSubnet": "10.96.0.0/28"}),
    ("an IPv6 service subnet of 16 addresses", "dev", {"serviceSubnet": "fd00:96::/124"}),
    ("an IPv6 service subnet of 20 host bits", "dev", {"serviceSubnet": "fd00:96::/108"}),
    ("a pod subnet of one node's range", "dev", {"podSubnet": "10.244.0.0/24"}),
    ("LB on a worker with stats next to the kubelet's port", "vip",
     {"loadBalancers.2": host("ubuntu-75", "10.21.22.75"), "loadBalancer.statsBind": "*:10251"}),
    ("a pod subnet of 2^16 node ranges", "dev", {"podSubnet": "172.0.0.0/8"}),
    ("an IPv6 pod subnet of 2^16 node ranges", "dev", {"podSubnet": "fd00::/48"}),
    ("the Service's ClusterIP next to the kubernetes Service's", "service", {"endpoint.address": "10.96.0.2"}),
    ("the Service's ClusterIP next below cluster DNS's", "service", {"endpoint.address": "10.96.0.9"}),
    ("the Service's ClusterIP next above cluster DNS's", "service", {"endpoint.address": "10.96.0.11"}),
    # IPv6 has no broadcast address: the range's last address is a ClusterIP like any other.
    ("the last address of an IPv6 service range", "service",
     {"serviceSubnet": "fd00:96::/112", "endpoint.address": "fd00:96::ffff"}),
    ("LB on a control-plane node, endpoint on a free port", "vip",
     {"loadBalancers.2": host("ubuntu-73", "10.21.22.73"), "endpoint.port": 8443}),
    ("LB on a control-plane node, endpoint on a switched-off controller-manager's port", "vip",
     {"loadBalancers.2": host("ubuntu-73", "10.21.22.73"), "endpoint.port": 10357,
      "controllerManager.replicas": 0}),
    ("LB on a control-plane node, endpoint on switched-off elastic apiservers' port", "vip",
     {"loadBalancers.2": host("ubuntu-73", "10.21.22.73"), "endpoint.port": 7443,
      "elasticApiserver.enabled": False}),
    ("LB on a control-plane node, endpoint on a switched-off scheduler's port", "vip",
     {"loadBalancers.2": host("ubuntu-73", "10.21.22.73"), "endpoint.port": 10361,
      "kubeScheduler": {"replicas": 0, "port": 10361}}),
    ("LB on a worker without a node-local proxy, endpoint on a free port", "vip",
     {"loadBalancers.2": host("ubuntu-75", "10.21.22.75"), "endpoint.port": 8443}),
]


@pytest.mark.parametrize("base, edits", [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_values_just_inside_a_rule_are_accepted(base: str, edits: dict[str, Any]) -> None:
    """The other side of each rule: what it must not refuse (and the stacks the cases start from
    have no problem of their own)."""
    assert problems(build(base, edits)) == []


def test_numbers_and_booleans_given_as_strings_are_read_as_such() -> None:
    """YAML and JSON config may carry `"2222"` or `"TRUE"`: the value the user meant is used, not the
    default it would otherwise fall back to."""
    c = accepted("dev", {"sshPort": "2222", "workers.0.port": "2200", "nodeLocalProxy": "TRUE",
                         "allowEvenControlPlane": "true", "controlPlane.2": DROP, "endpoint.port": "8443",
                         "certificates.rotation": "3", "healthCheck.shutdownSessionsOnDown": "True",
                         "insecureSkipHostKeyCheck": "false"})
    assert [h.port for h in c.nodes] == [2222, 2222, 2200, 2222]
    assert [h.port for h in c.load_balancers] == [2222]
    assert (c.node_local_proxy, c.endpoint.port, c.certificates.rotation) == (True, 8443, 3)
    assert c.health_check.shutdown_sessions_on_down is True
    assert c.insecure_skip_host_key_check is False


def test_every_settable_key_reaches_the_model() -> None:
    """A key whose name the reader misspells reads as unset and silently gives the default: set
    each to a non-default value and find it in the model."""
    c = accepted("dev", {
        "clusterName": "lab", "kubernetesVersion": "1.31.2", "sshUser": "kube", "apiserverPort": 6444,
        "serviceSubnet": "10.97.0.0/16", "podSubnet": "10.245.0.0/16", "clusterDomain": "lab.local",
        "imageRepository": "registry.example.com/k8s/", "staticPodsRevision": 4,
        "imageDigests": {"kube-apiserver": "sha256:" + "a" * 64},
        "controlPlane.1.user": "ops", "controlPlane.1.port": 2022,
        "endpoint.manageHostsEntry": True,
        "healthCheck": {"interMs": 900, "fastInterMs": 300, "downInterMs": 2000, "rise": 3, "fall": 4,
                        "timeoutMs": 600, "shutdownSessionsOnDown": True},
        "loadBalancer": {"bindAddress": "FD00::0001", "statsBind": "[::1]:9000", "prometheusMetrics": False,
                         "maxConn": 3000, "connectTimeoutMs": 400, "clientTimeoutSeconds": 700,
                         "tunnelTimeoutSeconds": 800, "retries": 5, "vrrpInterface": "ens192",
                         "virtualRouterId": 52},
        "certificates": {"caSource": "generate", "rotation": 2, "validityHours": 48,
                         "extraSans": ["API.Example.com", "FD00::0002", "10.9.9.9"]},
        "elasticApiserver": {"enabled": True, "poolNodes": ["ubuntu-75", "ubuntu-74"], "port": 7444,
                             "minReplicas": 2, "maxReplicas": 2, "cpuTargetPercent": 60,
                             "memoryTargetPercent": 80, "scaleDownStabilizationSeconds": 30,
                             "cpuRequest": "0.5", "memoryRequest": "1Gi", "installMetricsServer": True},
        "controllerManager": {"replicas": 3, "port": 10360},
        "kubeScheduler": {"replicas": 1, "port": 10361},
    })
    assert (c.name, c.kubernetes_version, c.apiserver_port) == ("lab", "v1.31.2", 6444)
    assert (str(c.networking.service_subnet), str(c.networking.pod_subnet), c.networking.cluster_domain) == (
        "10.97.0.0/16", "10.245.0.0/16", "lab.local")
    assert (c.image_repository, dict(c.image_digests), c.static_pods_revision) == (
        "registry.example.com/k8s", {"kube-apiserver": "sha256:" + "a" * 64}, 4)
    assert [(h.name, h.user, h.port) for h in c.control_plane[:2]] == [("ubuntu-73", "kube", 22),
                                                                      ("ubuntu-70", "ops", 2022)]
    assert c.endpoint.manage_hosts_entry is True
    hc = c.health_check
    assert (hc.inter_ms, hc.fast_inter_ms, hc.down_inter_ms, hc.rise, hc.fall, hc.timeout_ms,
            hc.shutdown_sessions_on_down) == (900, 300, 2000, 3, 4, 600, True)
    lb = c.load_balancer
    assert (lb.bind_address, lb.stats_bind, lb.prometheus_metrics, lb.max_conn, lb.connect_timeout_ms,
            lb.client_timeout_s, lb.tunnel_timeout_s, lb.retries, lb.vrrp_interface, lb.virtual_router_id) == (
        "fd00::1", "[::1]:9000", False, 3000, 400, 700, 800, 5, "ens192", 52)
    ce = c.certificates
    assert (ce.ca_source, ce.rotation, ce.validity_hours, ce.extra_sans) == (
        "generate", 2, 48, ("api.example.com", "fd00::2", "10.9.9.9"))
    e = c.elastic_apiserver
    assert (e.enabled, e.pool_nodes, e.port, e.min_replicas, e.max_replicas, e.cpu_target_percent,
            e.memory_target_percent, e.scale_down_stabilization_s, e.cpu_request, e.memory_request,
            e.install_metrics_server) == (
        True, ("ubuntu-75", "ubuntu-74"), 7444, 2, 2, 60, 80, 30, "0.5", "1Gi", True)
    assert (c.controller_manager.replicas, c.controller_manager.port) == (3, 10360)
    assert (c.scheduler.replicas, c.scheduler.port) == (1, 10361)


def test_switched_off_parts_keep_their_ports_unchecked() -> None:
    """A port only matters where something listens on it: elastic apiservers switched off, or no
    controller-manager Deployment, leave their ports free for anything."""
    c = accepted("dev", {"elasticApiserver": {"enabled": False, "port": 6443, "maxReplicas": 5},
                         "controllerManager": {"replicas": 0, "port": 10250},
                         "kubeScheduler": {"replicas": 0, "port": 10257}})
    assert not c.elastic_apiserver.enabled and c.controller_manager.replicas == 0


def test_the_widest_accepted_forms() -> None:
    """The edges of the syntax rules: a 15-character interface, router id 255, a stats bind on
    every address, the top of each address range that is still a host."""
    c = accepted("dev", {"loadBalancer": {"vrrpInterface": "a" * 15, "virtualRouterId": 255,
                                          "statsBind": "*:65535"},
                         "workers.1.address": "255.255.255.254",
                         "endpoint.dnsName": "a" * 63 + ".example"})
    assert (c.load_balancer.vrrp_interface, c.load_balancer.virtual_router_id) == ("a" * 15, 255)
    assert c.load_balancer.stats_bind == "*:65535"
    assert str(c.workers[1].address) == "255.255.255.254"
    c = accepted("dev", {"loadBalancer.statsBind": "10.0.0.1:1", "certificates.rotation": 0})
    assert c.load_balancer.stats_bind == "10.0.0.1:1"


def test_metrics_server_is_not_installed_unless_asked() -> None:
    """Installing it is applying upstream's release into the user's cluster: never by default."""
    assert accepted("dev", {}).elastic_apiserver.install_metrics_server is False


def test_left_out_user_and_revision_read_as_their_defaults() -> None:
    """A stack without sshUser logs in as root; without staticPodsRevision it is revision 0, so
    adding the key later at 0 changes nothing."""
    c = accepted("dev", {"sshUser": DROP})  # the dev stack sets no staticPodsRevision
    assert ({h.user for h in (*c.nodes, *c.load_balancers)}, c.static_pods_revision) == ({"root"}, 0)


def test_host_keys_are_kept_without_their_comment() -> None:
    """The SSH client pins `type blob`: the comment is the user's note, not part of the key."""
    key = host_key("ubuntu-74")
    c = accepted("dev", {"workers.0.hostKey": f"{key} root@ubuntu-74 (collected 2025-01-01)"})
    assert c.workers[0].host_key == key


def test_skipping_host_key_checks_needs_no_keys() -> None:
    """The throwaway-lab switch: hosts without hostKey are accepted and hold none."""
    raw = build("dev", {"insecureSkipHostKeyCheck": True})
    for group in ("controlPlane", "workers", "loadBalancers"):
        for entry in raw[group]:
            del entry["hostKey"]
    c = parse_cluster(raw)
    assert c.insecure_skip_host_key_check is True
    assert {h.host_key for h in (*c.nodes, *c.load_balancers)} == {None}


def test_without_a_bootstrap_mark_the_first_node_bootstraps_alone() -> None:
    """`bootstrap: false` on the first node is no mark: one node must run kubeadm init."""
    c = accepted("dev", {"controlPlane.0.bootstrap": False})
    assert [h.bootstrap for h in c.control_plane] == [True, False, False]


@pytest.mark.parametrize("type_, virtual_ip", [("virtualIp", True), (DROP, True), ("virtualIp", "true")])
def test_a_virtual_ip_said_either_way(type_: Any, virtual_ip: Any) -> None:
    """`type: virtualIp` and the older `virtualIp: true` (or both) mean keepalived's topology."""
    c = accepted("vip", {"endpoint.type": type_, "endpoint.virtualIp": virtual_ip})
    assert (c.endpoint.type, c.endpoint.virtual_ip) == ("virtualIp", True)


def test_misplaced_keys_each_say_why() -> None:
    """The CLI hands this program only `kube-ha:` keys: the others a user meant for it are named,
    and keys of other namespaces are left alone."""
    found = misplaced_config_keys(["kube-ha:clusterName", "aws:region", "dnsName", "kube-ha:a:b",
                                   "kube_ha:workers", "kubernetes:context"])
    assert found == {
        "dnsName": "has no namespace, which the Pulumi CLI refuses. Fix: write kube-ha:dnsName.",
        "kube-ha:a:b": "is not a key the Pulumi CLI reads (config/key.go ParseKey: `<namespace>:<name>`). Fix: "
                       "one colon, after the namespace.",
        "kube_ha:workers": "is in namespace 'kube_ha', which nothing reads. Did you mean 'kube-ha:workers'?",
    }
    assert [type(k) for k in found] == [Verbatim, str, str]


@pytest.mark.parametrize("written, message", [
    ("dnsName", "has no namespace, and is a field of kube-ha:endpoint: indented too little? Fix: indent it "
                "under that key."),
    ("hostKey", "has no namespace, and is a field of each entry of kube-ha:controlPlane or each entry of "
                "kube-ha:loadBalancers or each entry of kube-ha:workers: indented too little? Fix: indent it "
                "under the one it belongs to."),
    ("replicas", "has no namespace, and is a field of kube-ha:controllerManager or kube-ha:kubeScheduler: "
                 "indented too little? Fix: indent it under the one it belongs to."),
    ("port", "has no namespace, and is a field of kube-ha:controllerManager or kube-ha:elasticApiserver or "
             "kube-ha:endpoint or kube-ha:kubeScheduler or each entry of kube-ha:controlPlane or each entry of "
             "kube-ha:loadBalancers or each entry of kube-ha:workers: indented too little? Fix: indent it under "
             "the one it belongs to."),
    ("clustrName", "has no namespace, and no stack key has this name. Did you mean kube-ha:clusterName? Fix: "
                   "remove it or correct its spelling."),
    ("zzzz", "has no namespace, and no stack key has this name. Fix: remove it or correct its spelling."),
    ("clusterDomain", "has no namespace, which the Pulumi CLI refuses. Fix: write kube-ha:clusterDomain."),
])
def test_a_key_without_namespace_is_told_where_it_belongs(written: str, message: str) -> None:
    """A field dedented out of its object lands at the top level without a namespace: the message
    names the object(s) it is a field of, so the user fixes the indentation, not the name."""
    with pytest.raises(ConfigError) as err:
        parse_cluster(STACKS["dev"], misplaced_config_keys([written]))
    assert err.value.problems == [(written, message)]
    assert str(err.value) == f"invalid stack config:\n  {written}: {message}"


@pytest.mark.parametrize("stack", ["external", "service"])
def test_a_host_field_is_placed_even_when_a_host_list_is_empty(stack: str) -> None:
    """Without load balancers (external LB, in-cluster Service) a dedented `hostKey` still
    belongs to each entry of all three host lists: what a field belongs to is the schema's,
    not what this stack happens to list."""
    with pytest.raises(ConfigError) as err:
        parse_cluster(STACKS[stack], misplaced_config_keys(["hostKey"]))
    assert err.value.problems == [("hostKey", "has no namespace, and is a field of each entry of"
                                   " kube-ha:controlPlane or each entry of kube-ha:loadBalancers or each entry"
                                   " of kube-ha:workers: indented too little? Fix: indent it under the one it"
                                   " belongs to.")]


def test_an_unreadable_key_hides_its_own_problems_only() -> None:
    """A value that did not decode reaches the reader as its raw text: the decode error is the
    one line about it (none of its fields' lines), and every other key is still checked."""
    raw = build("dev", {"workers": "[- name", "healthCheck": "{x", "clusterName": "X"})
    unreadable = {"workers": "is not valid YAML/JSON (x). Fix: correct its syntax."}
    assert problems(raw, unreadable) == [
        ("workers", "is not valid YAML/JSON (x). Fix: correct its syntax."),
        ("clusterName", "'X' is not a DNS-1123 name. Fix: lower-case, digits, '-'."),
        ("healthCheck", NOT_MAPPING),
        ("elasticApiserver.poolNodes[0]", f"'ubuntu-74' {NOT_A_NODE}"),
        ("elasticApiserver.poolNodes[1]", f"'ubuntu-75' {NOT_A_NODE}"),
    ]


def test_keys_are_shown_with_the_namespace_unless_written_otherwise() -> None:
    err = ConfigError([("sshPort", "a"), (Verbatim("dnsName"), "b"), ("kube_ha:workers", "c"),
                       ("endpoint.kube-ha:workers", "d")])
    assert str(err) == ("invalid stack config:\n  kube-ha:sshPort: a\n  dnsName: b\n  kube_ha:workers: c\n"
                        "  kube-ha:endpoint.kube-ha:workers: d")
    assert err.keys == ["sshPort", "dnsName", "kube_ha:workers", "endpoint.kube-ha:workers"]


def test_an_unreadable_key_hides_the_problems_of_its_fields() -> None:
    """Whatever the reader made of an unreadable value, nothing about its fields or entries is said:
    the user fixes the syntax first."""
    raw = build("dev", {"workers.1.name": "B", "healthCheck.rise": 0, "sshPort": 0})
    unreadable = {"workers": "w. Fix: w.", "healthCheck": "h. Fix: h."}
    assert [key for key, _ in problems(raw, unreadable)] == [
        "workers", "healthCheck", "sshPort", "controlPlane[0].port", "controlPlane[1].port",
        "controlPlane[2].port", "loadBalancers[0].port", "elasticApiserver.poolNodes[1]"]


def test_pulumi_yaml_describes_each_key_as_the_table_does() -> None:
    """The table says Pulumi.yaml declares exactly its keys: `pulumi config` shows the same
    description the table gives (test_config holds the types and defaults)."""
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    assert {k: spec["description"] for k, spec in declared.items()} == {
        k: description for k, (_, _, description) in {**SCALAR_KEYS, **OBJECT_KEYS}.items()}


def _bound_lines(edge: Edge, value: int) -> list[str]:
    """The lines `edge.key` gets for `value` (the key spelt as the reader does: `controlPlane[0].port`)."""
    key = ".".join(f"[{p}]" if p.isdigit() else p for p in edge.key.split(".")).replace(".[", "[")
    return [message for k, message in problems(edited(edge, value)) if k == key]


@pytest.mark.parametrize("edge", EDGES, ids=[e.key for e in EDGES])
def test_a_value_past_a_bound_is_told_the_bound(edge: Edge) -> None:
    """test_config_edges finds each bound; the line must also give it, so the user can fix the
    value in one go: `at least 50`, `at most 60000`, or the port range."""
    port = edge.key.endswith(("port", "Port"))
    if edge.low is not None:
        below = edge.low - 1
        assert _bound_lines(edge, below)[0] == (f"port {below} is out of range. Fix: use 1-65535." if port else
                                                f"{below} is too small. Fix: use at least {edge.low}.")
    if edge.high is not None:
        above = edge.high + 1
        assert _bound_lines(edge, above)[0] == (
            f"port {above} is out of range. Fix: use 1-65535." if port else
            f"{above} is out of range. Fix: 1-255, unique on the LBs' network." if edge.key.endswith("RouterId")
            else f"{above} is too large. Fix: use at most {edge.high}.")


def test_an_lb_on_a_worker_may_take_ports_only_control_plane_nodes_hold() -> None:
    """A worker runs no static pod: haproxy on it may listen on 6443 or etcd's ports; only the
    kubelet's and kube-proxy's ports, which every node holds, are refused there."""
    worker_lb = {"nodeLocalProxy": False, "loadBalancers.1.address": "10.21.22.75"}
    accepted("vip", worker_lb)
    assert [k for k, _ in problems(build("vip", {**worker_lb, "loadBalancer.statsBind": "*:2379"}))] == []
    refused = problems(build("vip", {**worker_lb, "loadBalancer.statsBind": "*:10256"}))
    assert refused == [("loadBalancers[1].address", "10.21.22.75 is also workers[1], where loadBalancer.statsBind "
                        "10256 is kube-proxy's health-check port. Fix: a separate LB host, or another "
                        "loadBalancer.statsBind.")]
