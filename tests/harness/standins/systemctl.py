"""systemctl stand-in for the host scripts: the kubelet, the node-local haproxy and the endpoint
switcher's units (kube-ha-endpoint-switch.service and .timer). Any other verb or unit is
refused (UnsupportedError), so no script depends on behaviour modelled nowhere.

Unit names without a suffix are services ("haproxy" is haproxy.service: unit_name_mangle); a
unit's state is kept per node in the cluster state, under "units" (by name, ".service"
dropped), with haproxy's main PID under "haproxy". A unit's file is looked up as systemd does
(systemd.unit(5), "Unit File Load Path": /etc/systemd/system, /run/systemd/system,
/usr/local/lib/systemd/system, /usr/lib/systemd/system); haproxy's is the package's
(haproxy.service, which Debian's postinst enables: enabled until a script disables it).

- `restart kubelet`: silent, exit 0 (systemctl(1): output only on failure); the kubelet is
  then active and the restart counted, so tests can tell whether a script restarted it, and
  how often; an active kubelet starts the static pods it finds (standins/apiserver.py).
- `daemon-reload`: silent, exit 0; the node's manager re-reads the unit files (counted under
  "daemonReloads"). `start` of a unit whose file changed on disk since the manager last read
  it warns on stderr, "Warning: The unit file, source configuration file or drop-ins of X
  changed on disk. Run 'systemctl daemon-reload' to reload units." (systemctl-util.c
  warn_unit_file_changed), and starts it as loaded.
- `enable [--quiet] [--now] UNIT...`: for each unit not yet enabled, the [Install] section's
  WantedBy= link, reported on stderr as "Created symlink /etc/systemd/system/T.wants/U ->
  SOURCE." unless --quiet (src/shared/install.c install_changes_dump); nothing for one enabled
  already. Then the implicit daemon-reload (systemctl(1) --no-reload: "When used with enable
  and disable, do not implicitly reload daemon configuration"); --now starts the units too. A
  unit without a file: "Failed to enable unit: Unit file U does not exist.", exit 1.
- `disable [--quiet] [--now] UNIT...`: removes the wants links, "Removed \"LINK\"." on stderr
  (install_changes_dump, as above) unless --quiet; --now stops the units.
- `is-active [--quiet] UNIT...`: exit 0 if at least one is active, else 3 ("According to LSB:
  3, program is not running": src/systemctl/systemctl-is-active.c verb_is_active); without
  --quiet one state per unit on stdout, "active" or "inactive".
- `start UNIT...`: a unit without a file fails, "Failed to start U: Unit U not found.", exit 5
  (BUS_ERROR_NO_SUCH_UNIT -> EXIT_NOTINSTALLED: systemctl-util.c
  translate_bus_error_to_exit_status); an active unit is left as it is. haproxy is started as
  its unit does (Debian's haproxy.service: `ExecStart=/usr/sbin/haproxy -Ws -f $CONFIG -p
  $PIDFILE $EXTRAOPTS`, EXTRAOPTS=-S /run/haproxy-master.sock, Type=notify): the real haproxy,
  on the node's own /etc/haproxy/haproxy.cfg, in the node's network namespace, its /run/haproxy
  made first (the package's tmpfiles.d/haproxy.conf: `d /run/haproxy 2775 haproxy haproxy`);
  the call returns once haproxy reports READY=1 on $NOTIFY_SOCKET (systemd.service(5),
  Type=notify), and fails, "Job for haproxy.service failed because the control process exited
  with error code.", exit 1, when it exits first. The switcher's timer is only marked active:
  its elapses are not modelled (a step runs the switcher itself right after).
- `reload haproxy` (active): ExecReload, `haproxy -Ws -f $CONFIG -c -q $EXTRAOPTS`, then
  `kill -USR2 $MAINPID` (the master re-executes with the new config); a config the check
  rejects fails the job, exit 1, and leaves the running haproxy as it was.
- `restart haproxy`: stop (SIGTERM to the main PID, KillMode=mixed), then start as above.
- stop (of `disable --now`): haproxy's process ends; the others turn inactive.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.harness.standins import apiserver, common
from tests.harness.standins.common import Invocation, State, ToolError, UnsupportedError, alive

UNIT_PATH = (Path("/etc/systemd/system"), Path("/run/systemd/system"),
             Path("/usr/local/lib/systemd/system"), Path("/usr/lib/systemd/system"))
HAPROXY = "/usr/sbin/haproxy"
CONFIG, PIDFILE, MASTER = "/etc/haproxy/haproxy.cfg", "/run/haproxy.pid", "/run/haproxy-master.sock"
SWITCHER = ("kube-ha-endpoint-switch.service", "kube-ha-endpoint-switch.timer")
MODELLED = ("haproxy.service", *SWITCHER)
READY_S = 10.0
_CHANGED: list[str] = []


def main(argv: list[str]) -> int:
    return common.run("systemctl", argv, _dispatch)


def _dispatch(inv: Invocation) -> int:
    """Records in the call's `extra` the units it changed ("changed"; "daemon-reload" for the
    manager): a rerun that changes nothing makes only calls with none."""
    inv.extra["changed"] = _CHANGED
    pos, flags = common.parse_flags(inv.argv, {"--now": False, "--quiet": False, "-q": False})
    quiet, now = "quiet" in flags or "q" in flags, "now" in flags
    verb, names = (pos[0], pos[1:]) if pos else ("", [])
    if verb == "restart" and names in (["kubelet"], ["kubelet.service"]) and not flags:
        inv.set_verb("systemctl restart")
        _restart_kubelet()
        return 0
    if verb == "daemon-reload" and not names and not flags:
        inv.set_verb("systemctl daemon-reload")
        _daemon_reload()
        return 0
    units = [_mangle(n) for n in names]
    if verb not in ("enable", "disable", "is-active", "start", "reload", "restart") or not units:
        raise UnsupportedError("only restart kubelet, daemon-reload, and enable, disable, is-active, "
                               f"start, reload, restart of {', '.join(MODELLED)}")
    if now and verb not in ("enable", "disable"):
        raise UnsupportedError(f"--now with {verb}")
    modelled: tuple[str, ...] = MODELLED
    if verb == "is-active":
        modelled = ("kubelet.service", *MODELLED)
    elif verb in ("reload", "restart"):
        modelled = ("haproxy.service",)
    for unit in units:
        if unit not in modelled:
            raise UnsupportedError(f"{verb} {unit}: not modelled")
    inv.set_verb(f"systemctl {verb}")
    if verb == "is-active":
        return _is_active(units, quiet)
    if verb == "enable":
        _enable(units, quiet)
        if now:
            _start(units)
    elif verb == "disable":
        _disable(units, quiet, now)
    elif verb == "start":
        _start(units)
    elif verb == "reload":
        _reload_haproxy()
    else:
        _stop("haproxy.service")
        _start(units)
    return 0


def _mangle(name: str) -> str:
    """A name without a unit suffix is a service (unit_name_mangle)."""
    return name if "." in name else f"{name}.service"


def _key(unit: str) -> str:
    return unit.removesuffix(".service")


def _unit_file(unit: str) -> Path | None:
    return next((d / unit for d in UNIT_PATH if (d / unit).is_file()), None)


def _units(st: State) -> dict[str, Any]:
    return st.setdefault("units", {}).setdefault(common.node(), {})  # type: ignore[no-any-return]


def _unit(st: State, unit: str) -> dict[str, Any]:
    """The unit's state on this node; haproxy.service is enabled by its package, not started."""
    default = {"active": False, "enabled": unit == "haproxy.service"}
    return _units(st).setdefault(_key(unit), default)  # type: ignore[no-any-return]


def _stamp(path: Path) -> int:
    return path.stat().st_mtime_ns


def _daemon_reload(implicit: bool = False) -> None:
    """The manager re-reads the unit files: their stamps as it read them, per node. An implicit
    one (after enable) counts as no change of its own."""
    stamps = {u: _stamp(f) for u in MODELLED if (f := _unit_file(u)) is not None}
    with common.mutate() as st:
        systemd = st.setdefault("systemd", {}).setdefault(common.node(), {})
        systemd["loaded"] = stamps
        systemd["daemonReloads"] = systemd.get("daemonReloads", 0) + 1
    if not implicit:
        _CHANGED.append("daemon-reload")


def _restart_kubelet() -> None:
    with common.mutate() as st:
        kubelet = st["kubelet"].setdefault(common.node(), {})
        kubelet["active"] = True
        kubelet["restarts"] = kubelet.get("restarts", 0) + 1
    _CHANGED.append("kubelet.service")
    apiserver.start(common.node())  # an active kubelet runs the static pods it finds


def _wanted_by(path: Path) -> list[str]:
    """[Install] WantedBy= of a unit file (systemd.unit(5))."""
    section, targets = "", []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Install]" and line.startswith("WantedBy="):
            targets += line.partition("=")[2].split()
    return targets


def _enable(units: list[str], quiet: bool) -> None:
    files = {}
    for unit in units:
        path = _unit_file(unit)
        if path is None:
            raise ToolError(f"Failed to enable unit: Unit file {unit} does not exist.")
        files[unit] = path
    with common.mutate() as st:
        for unit in units:
            state = _unit(st, unit)
            if state["enabled"]:
                continue
            state["enabled"] = True
            _CHANGED.append(unit)
            if not quiet:
                for target in _wanted_by(files[unit]):
                    print(f"Created symlink /etc/systemd/system/{target}.wants/{unit} \u2192 "
                          f"{files[unit]}.", file=sys.stderr)
    _daemon_reload(implicit=True)


def _disable(units: list[str], quiet: bool, now: bool) -> None:
    for unit in units:
        path = _unit_file(unit)
        if path is None:
            raise ToolError(f"Failed to disable unit: Unit file {unit} does not exist.")
        with common.mutate() as st:
            state = _unit(st, unit)
            was = state["enabled"]
            state["enabled"] = False
        if was:
            _CHANGED.append(unit)
        if was and not quiet:
            for target in _wanted_by(path):
                print(f'Removed "/etc/systemd/system/{target}.wants/{unit}".', file=sys.stderr)
    if now:
        for unit in units:
            _stop(unit)


def _active(st: State, unit: str) -> bool:
    if unit == "kubelet.service":
        return common.kubelet_active(st, common.node())
    state = _units(st).get(_key(unit), {})
    if unit == "haproxy.service":
        return bool(state.get("active")) and alive(st.get("haproxy", {}).get(common.node()))
    return bool(state.get("active"))


def _is_active(units: list[str], quiet: bool) -> int:
    st = common.load()
    states = [_active(st, u) for u in units]
    if not quiet:
        print("\n".join("active" if a else "inactive" for a in states))
    return 0 if any(states) else 3


def _start(units: list[str]) -> None:
    for unit in units:
        path = _unit_file(unit)
        if path is None:
            raise ToolError(f"Failed to start {unit}: Unit {unit} not found.", code=5)
        st = common.load()
        loaded = st.get("systemd", {}).get(common.node(), {}).get("loaded", {}).get(unit)
        if loaded is not None and loaded != _stamp(path):
            print(f"Warning: The unit file, source configuration file or drop-ins of {unit} changed "
                  "on disk. Run 'systemctl daemon-reload' to reload units.", file=sys.stderr)
        if _active(st, unit):
            continue
        if unit == "haproxy.service":
            pid = _launch_haproxy()
            with common.mutate() as live:
                live.setdefault("haproxy", {})[common.node()] = pid
                _unit(live, unit)["active"] = True
        else:
            with common.mutate() as live:
                _unit(live, unit)["active"] = True
        _CHANGED.append(unit)


def _haproxy_failed() -> ToolError:
    return ToolError("Job for haproxy.service failed because the control process exited with error "
                     'code.\nSee "systemctl status haproxy.service" and "journalctl -xeu '
                     'haproxy.service" for details.')


def _launch_haproxy() -> int:
    """ExecStart of haproxy.service under Type=notify: returns the main PID once it is ready."""
    run = Path("/run/haproxy")
    run.mkdir(exist_ok=True)
    subprocess.run(["chown", "haproxy:haproxy", str(run)], check=False, capture_output=True)
    run.chmod(0o2775)
    notify = common.state_dir() / f"notify-{common.node()}-{os.getpid()}.sock"
    notify.unlink(missing_ok=True)
    log = open(common.state_dir() / f"haproxy-{common.node()}.log", "a")  # noqa: SIM115 - the child keeps it
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(notify))
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "NOTIFY_SOCKET": str(notify)}
        proc = subprocess.Popen([HAPROXY, "-Ws", "-f", CONFIG, "-p", PIDFILE, "-S", MASTER],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
        deadline = time.monotonic() + READY_S
        try:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise _haproxy_failed()
                sock.settimeout(0.1)
                try:
                    message = sock.recv(4096).decode(errors="replace")
                except TimeoutError:
                    continue
                if "READY=1" in message.split("\n"):
                    return proc.pid
            proc.kill()
            raise _haproxy_failed()
        finally:
            notify.unlink(missing_ok=True)


def _reload_haproxy() -> None:
    st = common.load()
    pid = st.get("haproxy", {}).get(common.node())
    if not _active(st, "haproxy.service"):
        raise UnsupportedError("reload of an inactive haproxy")
    assert pid is not None
    check = subprocess.run([HAPROXY, "-Ws", "-f", CONFIG, "-c", "-q", "-S", MASTER],
                           capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise _haproxy_failed()
    os.kill(int(pid), signal.SIGUSR2)
    _CHANGED.append("haproxy.service")


def _stop(unit: str) -> None:
    with common.mutate() as st:
        if _active(st, unit):
            _CHANGED.append(unit)
        _unit(st, unit)["active"] = False
        pid = st.get("haproxy", {}).pop(common.node(), None) if unit == "haproxy.service" else None
    if pid is not None and alive(pid):
        os.kill(int(pid), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if alive(pid):
            os.kill(int(pid), signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
