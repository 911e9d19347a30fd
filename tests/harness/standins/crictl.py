"""crictl stand-in: version, and ps, stop and exec on the containers of the node's static pods.

- version asks the runtime and prints "Version:  0.1.0", "RuntimeName:  containerd",
  "RuntimeVersion:  ...", "RuntimeApiVersion:  v1" (cri-tools cmd/crictl/version.go); a
  runtime that does not answer is fatal, exit 1 ('validate service connection: ...',
  main.go). The node's runtime is up unless its "installed" entry says "runtime": "down".

The kubelet runs one container per manifest in /etc/kubernetes/manifests while it is active;
its name is the pod spec's container name (kubeadm's etcd, kube-apiserver, ...). From
kubernetes-sigs/cri-tools cmd/crictl:
- ps lists running containers only unless -a/--state (container.go ListContainers);
  --name is a regular expression matched anywhere in the name (util.go matchesRegex, Go
  regexp.MatchString); -q prints each full container ID on its own line, newest first.
- stop [--timeout N] prints the ID (container.go StopContainer); --timeout defaults to 0, which
  the runtime takes as "kill at once" (SIGKILL, containerd/cri#75). The kubelet then starts a
  new container with a new ID.
- exec ID CMD... streams the command's stdout and stderr, passes no stdin without -i, and on a
  non-zero exit logs 'level=fatal msg="execing command in container <id>: command terminated
  with exit code N"' and exits 1 (exec.go Exec; main.go logrus.Fatal). The command runs in the
  container's filesystem with the image's PATH. A name not found on that PATH fails with
  runc's 'exec: "<name>": executable file not found in $PATH' (containerd/containerd#3597).

The etcd image (kubernetes/kubernetes cluster/images/etcd: Dockerfile, Makefile) is
gcr.io/distroless/static plus /bin/sh (a copy of bash-static) and /usr/local/bin/etcd*,
etcdctl*, migrate: no coreutils, so no `env`. distroless/static's PATH is
/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin (GoogleContainerTools/distroless
base/base.bzl). The harness builds that root (KUBE_HA_ETCD_IMAGE) with the real etcd and
etcdctl; exec chroots into it, with the pod's /etc/kubernetes/pki/etcd hostPath mounted, in the
node's network namespace (the etcd pod uses the host network). The chroot also holds this
machine's /usr/lib, only because its etcdctl and bash are dynamically linked (the image's are
static); nothing there is on the image's PATH.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.harness.standins import apiserver, common, etcd
from tests.harness.standins.common import K8S, Invocation, State, ToolError, UnsupportedError

IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def main(argv: list[str]) -> int:
    return common.run("crictl", argv, _dispatch)


def _dispatch(inv: Invocation) -> int:
    if not inv.argv or inv.argv[0] not in ("ps", "stop", "exec", "version"):
        raise UnsupportedError("verb")
    inv.set_verb(f"crictl {inv.argv[0]}")
    return {"ps": _ps, "stop": _stop, "exec": _exec, "version": _version}[inv.argv[0]](
        inv, inv.argv[1:])


def _version(inv: Invocation, args: list[str]) -> int:
    common.parse_flags(args, {})
    if common.installed("runtime") == "down":
        raise ToolError('level=fatal msg="validate service connection: validate CRI v1 runtime '
                        'API for endpoint \\"unix:///run/containerd/containerd.sock\\": rpc error: '
                        'code = Unavailable desc = connection error"')
    print("Version:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  v1.7.22\n"
          "RuntimeApiVersion:  v1")
    return 0


def _containers(st: State) -> list[tuple[str, str]]:
    """(id, name) of this node's running containers (one per static pod here)."""
    me = common.node()
    if not common.kubelet_active(st, me):
        return []
    out = []
    for manifest in sorted((K8S / "manifests").glob("*.yaml")):
        pod = yaml.safe_load(manifest.read_text()) or {}
        for c in pod.get("spec", {}).get("containers", []):
            name = c["name"]
            if name == "etcd" and st["real_etcd"] and not etcd.running(st, me):
                continue  # the member's process is gone: the container exited
            if name == "kube-apiserver" and not apiserver.running(st, me):
                continue
            attempt = st["containers"].get(me, {}).get(name, 0)
            out.append((hashlib.sha256(f"{me}/{name}/{attempt}".encode()).hexdigest(), name))
    return out


def _ps(inv: Invocation, args: list[str]) -> int:
    _, f = common.parse_flags(args, {"-q": False, "--quiet": False, "--name": True})
    pattern = re.compile(f.get("name", ""))
    found = [(cid, name) for cid, name in _containers(common.load()) if pattern.search(name)]
    if "q" not in f and "quiet" not in f:
        raise UnsupportedError("ps without -q")
    for cid, _ in found:
        print(cid)
    return 0


def _find(cid: str) -> str:
    for full, name in _containers(common.load()):
        if full.startswith(cid) and cid:
            return name
    raise ToolError(f'time="-" level=fatal msg="rpc error: code = NotFound desc = an error occurred '
                    f'when try to find container \\"{cid}\\": not found"')


def _stop(inv: Invocation, args: list[str]) -> int:
    pos, f = common.parse_flags(args, {"--timeout": True, "-t": True})
    if len(pos) != 1:
        raise UnsupportedError("stop of more than one container")
    inv.extra["timeout"] = int(f.get("timeout", f.get("t", "0")))
    name = _find(pos[0])
    if name == "etcd":
        raise UnsupportedError("stopping the etcd container")
    if name == "kube-apiserver":
        apiserver.stop(common.node())
    with common.mutate() as st:
        attempts = st["containers"].setdefault(common.node(), {})
        attempts[name] = attempts.get(name, 0) + 1
    apiserver.start(common.node())  # the kubelet starts a new container (a new ID)
    print(pos[0])
    return 0


def _lookpath(root: Path, command: str) -> bool:
    if "/" in command:
        return (root / command.lstrip("/")).is_file()
    return any((root / d.lstrip("/") / command).is_file() for d in IMAGE_PATH.split(":"))


def _exec(inv: Invocation, args: list[str]) -> int:
    if not args or args[0].startswith("-"):
        raise UnsupportedError("exec flags")
    cid, command = args[0], args[1:]
    if not command:
        raise UnsupportedError("exec without a command")
    if _find(cid) != "etcd":
        raise UnsupportedError("exec into a container other than etcd")
    image = Path(common.env(common.IMAGE))
    if not _lookpath(image, command[0]):
        # Go's exec.LookPath, as runc calls it: a bare name is searched on PATH, a path stat'ed.
        why = (f"stat {command[0]}: no such file or directory" if "/" in command[0]
               else "executable file not found in $PATH")
        raise ToolError(f'time="-" level=fatal msg="execing command in container: rpc error: code = '
                        f'Unknown desc = failed to exec in container: failed to start exec '
                        f'\\"{cid}\\": OCI runtime exec failed: exec failed: unable to start '
                        f'container process: exec: \\"{command[0]}\\": {why}: unknown"')
    mount = f"{image}/etc/kubernetes/pki/etcd"
    argv = ["unshare", "--mount", "--propagation", "private", "/bin/bash", "-c",
            'mount --bind "$1" "$2" && shift 2 && exec /usr/bin/env -i "PATH=$PATH" '
            '"HOSTNAME=$HOSTNAME" /usr/sbin/chroot "$@"', "_",
            str(K8S / "pki/etcd"), mount, str(image), *command]
    rc = subprocess.run(argv, stdin=subprocess.DEVNULL, check=False,
                        env={"PATH": IMAGE_PATH, "HOSTNAME": common.node()}).returncode
    if rc != 0:
        raise ToolError(f'time="-" level=fatal msg="execing command in container {cid}: command '
                        f'terminated with exit code {rc}"')
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
