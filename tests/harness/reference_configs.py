"""The two haproxy configs our rendered one is measured against, as their authors wrote them.

Only the addresses are the lab's, and each gets an admin socket so the lab can read server
states and save them on reload (observation only: no `expose-fd`, which neither config has).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.harness.lab import Lab


def _servers(lab: Lab, suffix: str) -> str:
    return "\n".join(f"    server {s.name} {s.address}:{s.port} {suffix}" for s in lab.servers)


def seed(lab: Lab) -> str:
    """The seed write-up's config (seeds/004): TCP connect checks every 10 s, no redispatch."""
    return f"""global
    log stdout format raw local0
    maxconn 4096
    stats socket {lab.paths.admin_socket} level admin
defaults
    log global
    option httplog
    timeout connect 5s
    timeout client 50s
    timeout server 50s
    retries 3
frontend kubernetes-api
    bind {lab.endpoint}:{lab.port}
    mode tcp
    option tcplog
    default_backend k8s-control-plane
backend k8s-control-plane
    mode tcp
    balance roundrobin
    option tcp-check
    default-server inter 10s downinter 5s rise 3 fall 2 maxconn 256
{_servers(lab, "check")}
"""


def kubeadm_guide(lab: Lab) -> str:
    """kubeadm's HA guide (ha-considerations.md): HTTPS /healthz checks, verify none, defaults."""
    return f"""global
    log stdout format raw local0
    stats socket {lab.paths.admin_socket} level admin
defaults
    mode                    http
    log                     global
    option                  httplog
    option                  dontlognull
    option http-server-close
    option forwardfor       except 127.0.0.0/8
    option                  redispatch
    retries                 1
    timeout http-request    10s
    timeout queue           20s
    timeout connect         5s
    timeout client          35s
    timeout server          35s
    timeout http-keep-alive 10s
    timeout check           10s
frontend apiserver
    bind {lab.endpoint}:{lab.port}
    mode tcp
    option tcplog
    default_backend apiserverbackend
backend apiserverbackend
    option httpchk
    http-check connect ssl
    http-check send meth GET uri /healthz
    http-check expect status 200
    mode tcp
    balance     roundrobin
{_servers(lab, "check verify none")}
"""


def tutorial_ssl_hello(lab: Lab, check_ssl: bool = False) -> str:
    """The config tutorials copy around: httpchk /healthz *and* ssl-hello-chk. The latter wins,
    so /healthz is never requested; adding check-ssl makes every check a broken HTTP/TLS mix."""
    suffix = "check check-ssl verify none" if check_ssl else "check"
    return f"""global
    stats socket {lab.paths.admin_socket} level admin
defaults
    mode tcp
    timeout connect 5s
    timeout client 50s
    timeout server 50s
frontend kube-apiserver
    bind {lab.endpoint}:{lab.port}
    default_backend kube-apiserver
backend kube-apiserver
    option httpchk GET /healthz
    option ssl-hello-chk
    balance roundrobin
    default-server inter 1s fall 2 rise 2
{_servers(lab, suffix)}
"""
