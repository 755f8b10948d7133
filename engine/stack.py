"""Provisions the real parts for development and tests: the Asterisk 22 root file system, one
Asterisk instance per media node started from the project's own asterisk-config/, Kamailio in
front of several nodes (kamailio-config/), and a private PostgreSQL."""

from __future__ import annotations

import contextlib
import filecmp
import hashlib
import hmac
import logging
import os
import pwd
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from engine.config import NodeSpec, Settings

if TYPE_CHECKING:
    from engine.adapters.mail_sink import MailSink
from engine.domain import dialin as dialin_rules
from engine.domain.errors import ConfigError
from engine.domain.nodes import HANDOVER_EXTENSION
from engine.domain.numberplan import DialoutRules, NumberPlan, dialout_rules

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASTERISK_CONFIG_DIR = PROJECT_ROOT / "asterisk-config"
KAMAILIO_CONFIG_DIR = PROJECT_ROOT / "kamailio-config"
KAMAILIO_FILES = ("kamailio.cfg", "dispatcher.list")
KAMAILIO_PING_SECONDS = 1  # how often Kamailio probes each node with OPTIONS
PG_BIN = Path(os.environ.get("VECHE_PG_BIN", "/usr/lib/postgresql/15/bin"))
ROOTFS_PACKAGES = ("asterisk,asterisk-modules,asterisk-core-sounds-en-gsm,asterisk-core-sounds-en,"
                   "asterisk-core-sounds-ru-gsm,asterisk-core-sounds-ru")
# The voice languages' prompts, by the directory the Debian packages put them in (the
# asterisk-core-sounds-<lang> package links sounds/<lang> to it).
ROOTFS_SOUNDS = {"ru": ("asterisk-core-sounds-ru-gsm", "asterisk-core-sounds-ru")}
HOST_PACKAGES = {"debootstrap": "debootstrap", "sipp": "sip-tester", "kamailio": "kamailio"}
DIALOUT_FILE = "veche-dialout.conf"  # the number plan's context, re-rendered when a group changes
CONFIG_FILES = (
    "asterisk.conf", "modules.conf", "logger.conf", "manager.conf", "rtp.conf",
    "pjsip.conf", "confbridge.conf", "extensions.conf", "cdr.conf", "cel.conf", "features.conf",
    "indications.conf", "acl.conf", "udptl.conf", "pjproject.conf", "ccss.conf", DIALOUT_FILE,
)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that nothing listens on right now (TCP or UDP)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_udp_port_pair() -> int:
    """An even UDP port whose successor is free too (RTP + RTCP)."""
    for _ in range(100):
        port = free_port(socket.SOCK_DGRAM)
        if port % 2 == 0 and port < 65000:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
    raise ConfigError("no free UDP port pair on 127.0.0.1")


def free_port_on_hosts(kind: int, hosts: tuple[str, ...]) -> int:
    """A port free on every one of ``hosts`` (and its successor for UDP: RTCP), so each media
    node binds the same SIP or AMI port on its own address."""
    for _ in range(200):
        port = free_udp_port_pair() if kind == socket.SOCK_DGRAM else free_port(kind)
        try:
            for host in hosts:
                for offset in ((0, 1) if kind == socket.SOCK_DGRAM else (0,)):
                    with socket.socket(socket.AF_INET, kind) as sock:
                        sock.bind((host, port + offset))
        except OSError:
            continue
        return port
    raise RuntimeError("no port free on every node address")


def process_cmdline(pid: int) -> list[str]:
    """The arguments process ``pid`` runs with, or [] when it is gone (or a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def read_pid(path: Path) -> int | None:
    """The process id on the first line of a pid file, or None when there is none."""
    try:
        first = path.read_text().split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(first) if first.isdigit() else None


def wait_gone(pid: int, timeout: float) -> bool:
    """True once process ``pid`` (which need not be our child) has exited; False at the deadline."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))
    finally:
        os.close(pidfd)


def terminate(pid: int, what: str, timeout: float = 15.0) -> None:
    """SIGTERM, and SIGKILL if ``pid`` is still there after ``timeout`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if wait_gone(pid, timeout):
        return
    log.warning("%s (pid %d) ignored SIGTERM for %.0f s: killing it", what, pid, timeout)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    wait_gone(pid, 5.0)


def ensure_host_tools(*commands: str) -> None:
    """Install the Debian packages that provide ``commands`` when they are missing."""
    missing = [HOST_PACKAGES[c] for c in commands if shutil.which(c) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise ConfigError(f"missing tools {missing}: install them with apt-get (needs root)")
    log.info("installing %s with apt-get", " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env,
                   stdout=subprocess.DEVNULL)


# --------------------------------------------------------------------------- Asterisk


def ensure_rootfs(settings: Settings) -> Path:
    """Build (once, cached) the Debian sid root file system that carries Asterisk 22."""
    rootfs = settings.rootfs
    if (rootfs / "usr/sbin/asterisk").exists():
        _ensure_sounds(rootfs)
        return rootfs
    if os.geteuid() != 0:
        raise ConfigError(f"{rootfs} has no Asterisk and building it needs root (debootstrap)")
    ensure_host_tools("debootstrap")
    partial = rootfs.with_name(rootfs.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["debootstrap", "--variant=minbase", f"--include={ROOTFS_PACKAGES}", "sid", str(partial)]
    mirror = os.environ.get("VECHE_DEBIAN_MIRROR")
    if mirror:
        cmd.append(mirror)
    log.info("building the Asterisk root file system in %s (about a minute, once)", rootfs)
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
        raise ConfigError(f"debootstrap of {partial} failed: {' | '.join(tail)}")
    partial.rename(rootfs)
    return rootfs


def _ensure_sounds(rootfs: Path) -> None:
    """Give a root file system cached before a voice language was added that language's
    prompts, in place (apt-get inside it; the cache is shared and never rebuilt)."""
    missing = [pkg for lang, pkgs in ROOTFS_SOUNDS.items()
               if not os.path.lexists(rootfs / "usr/share/asterisk/sounds" / lang) for pkg in pkgs]
    if not missing:
        return
    if os.geteuid() != 0:
        raise ConfigError(f"{rootfs} lacks {', '.join(missing)} and installing them needs root")
    log.info("adding %s to the Asterisk root file system %s", " ".join(missing), rootfs)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for args in (["apt-get", "update", "-qq"],
                 ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]):
        result = subprocess.run(["chroot", str(rootfs), *args], capture_output=True, text=True, env=env)
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
            raise ConfigError(f"{' '.join(args[:2])} in {rootfs} failed: {' | '.join(tail)}")


def _rootfs_user(rootfs: Path, name: str) -> tuple[int, int]:
    for line in (rootfs / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2]), int(fields[3])
    raise ConfigError(f"no user {name!r} in {rootfs}/etc/passwd")


def _prepare_rootfs(rootfs: Path) -> None:
    """Mount proc and give the chroot a hosts file naming this machine (no DNS stalls)."""
    proc = rootfs / "proc"
    if not os.path.ismount(proc):
        subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True)
    hostname = socket.gethostname()
    (rootfs / "etc/hosts").write_text(
        f"127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    )
    (rootfs / "var/run/asterisk").mkdir(parents=True, exist_ok=True)


def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ASTERISK_CONFIG_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render_dialout(rules: DialoutRules) -> str:
    """The ``veche-dialout`` context of these number-plan rules (asterisk-config/veche-dialout.conf)."""
    return _templates().get_template(DIALOUT_FILE).render(dialout=rules)


def _config_path(value: str, name: str) -> str:
    """A directory as it may stand in a rendered configuration line (no spaces, commas or ${})."""
    if not re.fullmatch(r"/[A-Za-z0-9_./-]{1,300}", value):
        raise ConfigError(f"{name} must be an absolute path of letters, digits, '_', '.', '-' and '/', got {value!r}")
    return value.rstrip("/")


def render_asterisk_config(settings: Settings, dest: Path, dirs: dict[str, str] | None = None,
                           trunk_sources: tuple[str, ...] | None = None,
                           dialout: DialoutRules | None = None) -> Path:
    """Render the templates of asterisk-config/ for these settings into ``dest``. Calls from
    ``trunk_sources`` (default: the trunk target's host) are dial-ins. ``dialout`` (default: the
    settings' plan without operator groups) is the number plan of the ``veche-dialout`` context;
    the engine renders it again with the groups at start and when they change."""
    trunk_sources = trunk_sources or (settings.trunk_target.rsplit(":", 1)[0],)
    if not settings.agi_secret:
        raise ConfigError("VECHE_AGI_SECRET is empty: the dialplan must pass the engine's FastAGI secret")
    dest.mkdir(parents=True, exist_ok=True)
    env = _templates()
    dirs = dirs or {k: f"/var/lib/asterisk/{k}" for k in ("etc", "db", "spool", "run", "log")}
    dirs.setdefault("etc", str(dest))
    dialout = dialout or dialout_rules(NumberPlan.from_settings(settings), [])
    values = {
        "node_id": settings.node_id,
        "dirs": dirs,
        "ami_bind": settings.ami.host,
        "ami_port": settings.ami.port,
        "ami_user": settings.ami.username,
        "ami_secret": settings.ami.secret,
        "ami_permit": settings.ami_permit,
        "sip_host": settings.sip_host,
        "sip_port": settings.sip_port,
        "bind_media": settings.several_nodes,
        "trunk_target": settings.trunk_target,
        "trunk_sources": trunk_sources,
        "agi_targets": settings.agi_targets,  # every engine of a pair, tried in turn
        "agi_secret": settings.agi_secret,
        # the dialplan's Read() asks for the conference number like the IVR's first GET DATA
        "first_prompt": dialin_rules.PROMPT_CONFERENCE_NUMBER,
        "first_max_digits": dialin_rules.DialinPolicy().max_digits,
        "first_timeout": max(1, dialin_rules.DialinPolicy().digits_timeout_ms // 1000),
        "prompts_dir": _config_path(settings.prompts_on_node, "VECHE_PROMPTS_NODE_DIR"),
        "access_number": settings.access_number,
        "dialout": dialout,
        "access_language": settings.access_language,
        "ring_timeout": settings.ring_timeout,
        "rtp_start": settings.rtp_start,
        "rtp_end": settings.rtp_end,
        # several nodes: the others, reached over the digest-authenticated inter-node trunk
        "peers": [n for n in settings.media_nodes if n.node_id != settings.node_id] if settings.several_nodes else [],
        "internode_secret": internode_secret(settings),
        "handover_extension": HANDOVER_EXTENSION,
    }
    for name in CONFIG_FILES:
        (dest / name).write_text(env.get_template(name).render(**values))
    return dest


@dataclass
class AsteriskProcess:
    """One Asterisk 22 running in the cached sid root file system with rendered configs.

    ``start`` first looks for an Asterisk of the same instance left running by an engine that
    died (its pid file, else its command line): one that answers on its control socket and runs
    exactly the configuration these settings render is adopted, so the calls in its rooms go on
    (the engine's recovery service takes them over through AMI); any other is stopped and a
    fresh one started. ``stop`` ends the instance whether it was started or adopted."""

    settings: Settings
    name: str = "main"
    process: subprocess.Popen | None = None
    adopted_pid: int | None = None

    @property
    def base_in_root(self) -> str:
        return f"/var/lib/veche/{self.name}"

    @property
    def base(self) -> Path:
        return self.settings.rootfs / self.base_in_root.lstrip("/")

    @property
    def conf_in_root(self) -> str:
        return f"{self.base_in_root}/etc/asterisk.conf"

    @property
    def pid_file(self) -> Path:
        return self.base / "run" / "asterisk.pid"

    @property
    def pid(self) -> int | None:
        """The process id of the running instance (started or adopted), None when none runs."""
        if self.process is not None:
            return self.process.pid if self.process.poll() is None else None
        if self.adopted_pid is not None and self._is_instance(self.adopted_pid):
            return self.adopted_pid
        return None

    def _dirs(self) -> dict[str, str]:
        return {sub: f"{self.base_in_root}/{sub}" for sub in ("etc", "db", "spool", "run", "log")}

    def _is_instance(self, pid: int) -> bool:
        """``pid`` is an Asterisk daemon (not a ``-rx`` client) of this instance's configuration."""
        argv = process_cmdline(pid)
        return (bool(argv) and argv[0].endswith("asterisk") and self.conf_in_root in argv
                and not any(arg.startswith("-r") or arg.startswith("-R") for arg in argv))

    def find_running(self) -> int | None:
        """The pid of an Asterisk of this instance that runs already: from its pid file, or (pid
        file lost) from the command lines of the running processes."""
        pid = read_pid(self.pid_file)
        if pid is not None and self._is_instance(pid):
            return pid
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and self._is_instance(int(entry.name)):
                return int(entry.name)
        return None

    def _same_config(self) -> bool:
        """The configuration on disk is what these settings render now."""
        with tempfile.TemporaryDirectory(prefix="veche-ast-") as scratch:
            fresh = render_asterisk_config(self.settings, Path(scratch), self._dirs())
            names = sorted(p.name for p in fresh.iterdir())
            _, mismatch, errors = filecmp.cmpfiles(fresh, self.base / "etc", names, shallow=False)
            return not mismatch and not errors

    def _answers(self, timeout: float = 10.0) -> bool:
        try:
            return "fully booted" in self.cli("core waitfullybooted", timeout=timeout).lower()
        except subprocess.TimeoutExpired:
            return False

    def start(self, timeout: float = 30.0) -> None:
        rootfs = ensure_rootfs(self.settings)
        _prepare_rootfs(rootfs)
        running = self.find_running()
        if running is not None:
            if self._same_config() and self._answers():
                log.warning("Asterisk %s (pid %d) still runs from an earlier engine: adopted with its calls",
                            self.name, running)
                self.process, self.adopted_pid = None, running
                return
            log.warning("Asterisk %s (pid %d) from an earlier engine has another configuration or does not "
                        "answer: stopping it", self.name, running)
            terminate(running, f"Asterisk {self.name}")
        self.adopted_pid = None
        uid, gid = _rootfs_user(rootfs, "asterisk")
        shutil.rmtree(self.base, ignore_errors=True)  # stale pid file, control socket, old config
        dirs = self._dirs()
        for sub in dirs:
            path = self.base / sub
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, uid, gid)
        render_asterisk_config(self.settings, self.base / "etc", dirs)
        log_path = self.base / "log" / "stdout.log"
        self._stdout = open(log_path, "wb")  # noqa: SIM115 - kept open for the process's life
        self.process = subprocess.Popen(
            ["chroot", str(rootfs), "/usr/sbin/asterisk", "-f", "-n", "-U", "asterisk",
             "-G", "asterisk", "-C", self.conf_in_root],
            stdin=subprocess.DEVNULL, stdout=self._stdout, stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the engine's terminal reaches the engine only
        )
        self.wait_fully_booted(timeout)

    def cli(self, command: str, timeout: float = 10.0) -> str:
        """Run an Asterisk CLI command through the instance's control socket."""
        result = subprocess.run(
            ["chroot", str(self.settings.rootfs), "/usr/sbin/asterisk", "-C", self.conf_in_root,
             "-rx", command],
            capture_output=True, text=True, timeout=timeout,
        )
        return result.stdout

    def install_dialout(self, text: str) -> None:
        """Replace this instance's ``veche-dialout`` context and reload the dialplan, through the
        control socket (no AMI class needed: the AMI user cannot reload anything)."""
        path = self.base / "etc" / DIALOUT_FILE
        temporary = path.with_suffix(".new")
        temporary.write_text(text)
        temporary.replace(path)
        output = self.cli("dialplan reload")
        if "reloaded" not in output.lower():
            raise ConfigError(f"Asterisk did not reload the dialplan: {output.strip()[:200]!r}")

    def wait_fully_booted(self, timeout: float) -> None:
        ctl = self.base / "run" / "asterisk.ctl"
        deadline = time.monotonic() + timeout
        delay = 0.01
        while not ctl.exists():
            if self.process and self.process.poll() is not None:
                raise ConfigError(f"Asterisk exited at start (code {self.process.returncode}); "
                                  f"see {self.base / 'log'}")
            if time.monotonic() > deadline:
                raise ConfigError(f"Asterisk did not open its control socket within {timeout:.0f} s")
            time.sleep(delay)  # the socket appears once; nothing to await before it exists
            delay = min(delay * 2, 0.2)
        self.cli("core waitfullybooted", timeout=max(1.0, deadline - time.monotonic()))

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None:
            if self.adopted_pid is not None and self._is_instance(self.adopted_pid):
                terminate(self.adopted_pid, f"Asterisk {self.name}", timeout)
            self.adopted_pid = None
            return
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._stdout.close()

    def remove(self) -> None:
        """Delete this instance's directory in the root file system once it is stopped: for the
        instance of one test or benchmark run (a service keeps its own, for the next start to adopt)."""
        shutil.rmtree(self.base, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL, as a crash would (tests of recovery)."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


# --------------------------------------------------------------------------- several nodes


def internode_secret(settings: Settings) -> str:
    """The password of the inter-node trunk: derived from the FastAGI secret every node already
    holds, so no further secret needs to be configured or kept in step."""
    return hmac.new(settings.agi_secret.encode(), b"veche internode trunk", hashlib.sha256).hexdigest()[:32]


def node_settings(settings: Settings, node: NodeSpec) -> Settings:
    """The settings one media node's Asterisk is rendered from. With several nodes the node binds
    its own host (SIP, RTP and AMI), and its trunk leads to Kamailio at the front door's address,
    which is also the only source its dial-ins may come from."""
    if not settings.several_nodes:
        return settings
    return settings.with_(node_id=node.node_id, ami=node.ami, sip_host=node.sip_host, sip_port=node.sip_port,
                          trunk_target=f"{settings.sip_host}:{settings.sip_port}")


def render_kamailio_config(settings: Settings, dest: Path) -> Path:
    """Render kamailio-config/ into ``dest``: Kamailio listens at the front door (sip_host:sip_port),
    dispatches to the media nodes and relays their outbound calls to the carrier (trunk_target)."""
    dest.mkdir(parents=True, exist_ok=True)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(KAMAILIO_CONFIG_DIR)),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    values = {
        "nodes": settings.media_nodes,
        "listen_host": settings.sip_host,
        "listen_port": settings.sip_port,
        "carrier": settings.trunk_target,
        "dispatcher_list": str(dest / "dispatcher.list"),
        "ping_interval": KAMAILIO_PING_SECONDS,
        "ring_timeout_ms": (settings.ring_timeout + 5) * 1000,
    }
    for name in KAMAILIO_FILES:
        (dest / name).write_text(env.get_template(name).render(**values))
    return dest


def sip_options(host: str, port: int, timeout: float = 2.0) -> int | None:
    """Send one SIP OPTIONS to host:port over UDP; the status code of the answer, None without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1" if host.startswith("127.") else "0.0.0.0", 0))
        sock.settimeout(timeout)
        local = sock.getsockname()
        branch = f"z9hG4bK{os.urandom(6).hex()}"
        request = (f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch={branch};rport\r\n"
                   "Max-Forwards: 70\r\n"
                   f"From: <sip:probe@{local[0]}>;tag={os.urandom(4).hex()}\r\n"
                   f"To: <sip:{host}:{port}>\r\n"
                   f"Call-ID: {os.urandom(8).hex()}@veche\r\n"
                   "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        sock.sendto(request.encode(), (host, port))
        try:
            answer = sock.recv(65535).decode(errors="replace")
        except OSError:
            return None
    match = re.match(r"SIP/2\.0 (\d{3})", answer)
    return int(match.group(1)) if match else None


@dataclass
class KamailioProcess:
    """Kamailio, the SIP front door of several media nodes, started from kamailio-config/ rendered
    into ``run_dir/kamailio/<name>``. A Kamailio of the same directory that an engine which died
    left running is stopped first (it holds the front door's port)."""

    settings: Settings
    name: str = "front"
    process: subprocess.Popen | None = None

    @property
    def base(self) -> Path:
        return self.settings.run_dir / "kamailio" / self.name

    @property
    def pid_file(self) -> Path:
        return self.base / "run" / "kamailio.pid"

    def start(self, timeout: float = 30.0) -> None:
        ensure_host_tools("kamailio")
        stale = read_pid(self.pid_file)
        if stale is not None and str(self.base / "etc") in " ".join(process_cmdline(stale)):
            log.warning("Kamailio (pid %d) from an earlier engine still runs: stopping it", stale)
            terminate(stale, "Kamailio")
        shutil.rmtree(self.base, ignore_errors=True)
        (self.base / "run").mkdir(parents=True)
        config = render_kamailio_config(self.settings, self.base / "etc")
        self._log = open(self.base / "kamailio.log", "wb")  # noqa: SIM115 - kept open for the process's life
        self.process = subprocess.Popen(
            ["kamailio", "-f", str(config / "kamailio.cfg"), "-DD", "-E", "-m", "64", "-M", "8",
             "-Y", str(self.base / "run"), "-P", str(self.pid_file), "-w", str(self.base)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while sip_options(self.settings.sip_host, self.settings.sip_port, timeout=0.5) != 200:
            time.sleep(0.05)  # refused at once while Kamailio binds its socket: poll, no busy loop
            if self.process.poll() is not None:
                raise ConfigError(f"Kamailio exited at start (code {self.process.returncode}); "
                                  f"see {self.base / 'kamailio.log'}")
            if time.monotonic() > deadline:
                raise ConfigError(f"Kamailio did not answer OPTIONS within {timeout:.0f} s")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        terminate(self.process.pid, "Kamailio", timeout)
        self.process.wait()
        self._log.close()


def local_nodes(settings: Settings) -> list[AsteriskProcess]:
    """The Asterisk instance of each media node that ``local_stack`` runs for these settings."""
    return [AsteriskProcess(node_settings(settings, node), name=local_asterisk_name(node_settings(settings, node)))
            for node in settings.media_nodes]


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class PostgresCluster:
    """A private PostgreSQL 15 cluster on 127.0.0.1, for when no DATABASE_URL is given.

    Durable by default (fsync, synchronous_commit and full_page_writes on); only the test
    harness and the benchmarks pass ``durable=False`` for speed. ``start`` adopts a postmaster
    of this data directory that an engine which died left running, when it answers and was
    started with exactly these options; any other one is stopped first, and a pid file whose
    process is gone is removed."""

    data_dir: Path
    port: int = 0
    database: str = "veche"
    durable: bool = True

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).absolute()  # found again by this path in the process list

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "postmaster.pid"

    def server_options(self, port: int) -> str:
        """The options ``pg_ctl start -o`` passes to the postmaster."""
        options = f"-p {port} -c listen_addresses=127.0.0.1 -k {self.data_dir} -c max_connections=200"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        return options

    def _as_postgres(self, argv: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *argv]
        return argv

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def running_pid(self) -> int | None:
        """The pid of the postmaster of this data directory, None when none runs."""
        pid = read_pid(self.pid_file)
        if pid is None:
            return None
        argv = process_cmdline(pid)
        if argv and argv[0].endswith("postgres") and str(self.data_dir) in argv:
            return pid
        return None

    def _running_port(self) -> int | None:
        try:
            lines = self.pid_file.read_text().splitlines()
            return int(lines[3])  # postmaster.pid: pid, data dir, start time, port, ...
        except (OSError, IndexError, ValueError):
            return None

    def _started_as(self, port: int) -> bool:
        """The running postmaster was started with the options we would give it on ``port``."""
        try:
            recorded = shlex.split((self.data_dir / "postmaster.opts").read_text())
        except (OSError, ValueError):
            return False
        return recorded[1:] == ["-D", str(self.data_dir), *shlex.split(self.server_options(port))]

    def _answers(self, port: int) -> bool:
        result = subprocess.run([str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port),
                                 "-t", "10"], capture_output=True)
        return result.returncode == 0

    def _take_over_or_clear(self) -> bool:
        """Deal with what an earlier engine left in the data directory; True when its still
        running postmaster is adopted (``self.port`` is then its port)."""
        pid = self.running_pid()
        if pid is None:
            if self.pid_file.exists():
                log.warning("removing the stale %s (its process is gone)", self.pid_file)
                self.pid_file.unlink(missing_ok=True)
            return False
        port = self._running_port()
        if port is not None and (not self.port or self.port == port) and self._started_as(port) \
                and self._answers(port):
            log.warning("PostgreSQL (pid %d, port %d) still runs from an earlier engine: adopted", pid, port)
            self.port = port
            return True
        log.warning("PostgreSQL (pid %d) from an earlier engine runs with other options or does not "
                    "answer: restarting it", pid)
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60", "stop"],
                  "pg_ctl stop", ok_if="not running")
        return False

    def start(self) -> str:
        if not (PG_BIN / "initdb").exists():
            raise ConfigError(f"PostgreSQL binaries not found in {PG_BIN} (set DATABASE_URL or VECHE_PG_BIN)")
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        for parent in [self.data_dir.parent, *self.data_dir.parent.parents]:
            if os.geteuid() == 0 and parent != Path("/"):
                os.chmod(parent, os.stat(parent).st_mode | 0o011)  # let postgres traverse
        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._chown(self.data_dir)
            self._run([str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                       "-A", "trust", "-E", "UTF8", *([] if self.durable else ["--no-sync"])], "initdb")
        if not self._take_over_or_clear():
            self.port = self.port or free_port()
            self._run([
                str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-w", "-t", "60",
                "-l", str(self.data_dir / "server.log"), "-o", self.server_options(self.port), "start",
            ], "pg_ctl start")
        self._run([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                   self.database], "createdb", ok_if="already exists")
        return self.url

    def stop(self) -> None:
        if self.running_pid() is not None:
            self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60", "stop"],
                      "pg_ctl stop", ok_if="not running")

    def _run(self, argv: list[str], what: str, ok_if: str | None = None) -> None:
        # a session of its own: a Ctrl-C in the engine's terminal must not reach the postmaster
        # (it would shut down under the engine while the engine still closes its work)
        result = subprocess.run(self._as_postgres(argv), capture_output=True, text=True,
                                start_new_session=True)
        if result.returncode != 0:
            text = (result.stdout + result.stderr).strip()
            if ok_if and ok_if in text:
                return
            raise ConfigError(f"{what} failed for {self.data_dir}: {text.splitlines()[-1] if text else '?'}")


def local_dialplan_sink(settings: Settings) -> Callable[[str], None] | None:
    """Where the engine installs a re-rendered ``veche-dialout`` context: every node's Asterisk
    that ``local_stack`` runs for these settings; None for an operator's own PBX (they reload it)."""
    if settings.ami_external:
        return None
    processes = [p for p in local_nodes(settings) if (p.base / "etc" / "extensions.conf").exists()]
    if not processes:
        return None

    def install(text: str) -> None:
        for process in processes:
            process.install_dialout(text)

    return install


def local_asterisk_name(settings: Settings) -> str:
    """The Asterisk instance directory of a run dir: two checkouts (or test runs) never share one."""
    run_key = hashlib.sha1(str(settings.run_dir.resolve()).encode()).hexdigest()[:10]
    return f"node-{settings.node_id}-{run_key}"


def with_instance_prompts(settings: Settings, name: str) -> Settings:
    """These settings with the prompts directory inside Asterisk instance ``name`` of the root file
    system (``/var/lib/veche/<name>/sounds`` as the node sees it), unless VECHE_PROMPTS_DIR is set."""
    if settings.prompts_dir is not None:
        return settings
    in_root = f"/var/lib/veche/{name}/sounds"
    return settings.with_(prompts_dir=settings.rootfs / in_root.lstrip("/"), prompts_node_dir=in_root)


def local_postgres(settings: Settings) -> PostgresCluster:
    """The private, durable PostgreSQL that ``run`` starts in the run dir when no DATABASE_URL is set."""
    return PostgresCluster(settings.run_dir / "postgres")


@contextmanager
def local_stack(settings: Settings) -> Iterator[Settings]:
    """Bring up what the settings do not point at (Postgres, Asterisk: one per media node, with
    Kamailio in front of several); yield the final settings. Parts that an engine which died left
    running are adopted or restarted (see their ``start``); leaving the block stops them, adopted
    or not."""
    pg: PostgresCluster | None = None
    nodes: list[AsteriskProcess] = []
    front: KamailioProcess | None = None
    sink: MailSink | None = None
    try:
        if settings.mail_sink:  # no SMTP server configured: mail is kept in run/mail/ for the Outbox page
            # imported here: the Asterisk image renders its config with engine.stack and carries no
            # mail packages
            from engine.adapters.mail_sink import MailSink

            sink = MailSink(settings.run_dir / "mail")
            settings = settings.with_(smtp_host=sink.host, smtp_port=sink.start(), smtp_user=None,
                                      smtp_password=None, smtp_starttls=False, smtp_tls=False)
        if not settings.database_url:
            pg = local_postgres(settings)
            settings = settings.with_(database_url=pg.start())
        if not settings.ami_external:
            # every node plays the prompts the engine writes into the first node's directory
            settings = with_instance_prompts(settings, local_nodes(settings)[0].name)
            for process in local_nodes(settings):
                nodes.append(process)
                process.start()
            if settings.several_nodes:
                front = KamailioProcess(settings)
                front.start()
        yield settings
    finally:
        if front:
            front.stop()
        for process in reversed(nodes):
            process.stop()
        if pg:
            pg.stop()
        if sink:
            sink.stop()
