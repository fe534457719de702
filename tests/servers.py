"""Real servers for the tests, on 127.0.0.1 only, always stopped afterwards:
a throwaway PostgreSQL cluster, the ophyd-pvcam catalog server, Redis and the
bluesky queue manager."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

API_KEY = "ophydpvcamtestkey"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Path | None:
    """Debian keeps initdb and pg_ctl off PATH, under /usr/lib/postgresql/N/bin."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _as_postgres(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if result.returncode:
        raise RuntimeError(f"{command[0]} failed: {result.stdout}{result.stderr}")


def _wait(check, what: str, timeout: float, process: subprocess.Popen, log: Path) -> None:
    """Poll ``check`` every 0.1 s until it is true; fail with the log on exit or deadline."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        with contextlib.suppress(Exception):
            if check():
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def _start(command: list[str], log: Path, env: dict, cwd: Path | None = None) -> subprocess.Popen:
    # its own session, so stopping reaches every child; nothing on stdin
    with open(log, "ab") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=env, cwd=cwd,
        )  # fmt: skip


@dataclass
class Postgres:
    root: Path
    port: int

    def uri(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


@contextlib.contextmanager
def postgres(bindir: Path) -> Iterator[Postgres]:
    """A throwaway cluster with databases "catalog" and "tables" (trust auth, loopback)."""
    root = Path(tempfile.mkdtemp(prefix="ophyd-pvcam-pg-")).resolve()
    os.chmod(root, 0o755)  # pytest's tmp folders are 0700: postgres could not enter them
    data, sockets, port = root / "data", root / "sock", free_port()
    sockets.mkdir()
    if os.geteuid() == 0:
        for path in (root, sockets):
            shutil.chown(path, "postgres", "postgres")
    started = False
    try:
        _run(
            _as_postgres(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            )
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={sockets} "
            "-c fsync=off"
        )
        _run(
            _as_postgres(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(root / "log"),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "30",
                    "start",
                ]
            )
        )
        started = True
        for database in ("catalog", "tables"):
            _run(
                _as_postgres(
                    [
                        str(bindir / "createdb"),
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(port),
                        "-U",
                        "postgres",
                        database,
                    ]
                )
            )
        yield Postgres(root, port)
    finally:
        if started:
            subprocess.run(
                _as_postgres(
                    [
                        str(bindir / "pg_ctl"),
                        "-D",
                        str(data),
                        "-m",
                        "fast",
                        "-w",
                        "-t",
                        "20",
                        "stop",
                    ]
                ),
                capture_output=True,
            )
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class CatalogServer:
    uri: str
    frames: Path
    process: subprocess.Popen


@contextlib.contextmanager
def catalog_server(database: Postgres, frames: Path, work: Path) -> Iterator[CatalogServer]:
    """``ophyd-pvcam catalog-server`` on the cluster, ready to serve (key in the environment)."""
    port = free_port()
    log = work / "catalog-server.log"
    env = dict(os.environ, TILED_API_KEY=API_KEY)
    command = [sys.executable, "-m", "ophyd_pvcam.cli", "catalog-server",
               "--database", database.uri("catalog"), "--tables", database.uri("tables"),
               "--storage", str(work / "storage"), "--frames", str(frames),
               "--port", str(port)]  # fmt: skip
    process = _start(command, log, env)
    uri = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def ready() -> bool:
        request = urllib.request.Request(
            f"{uri}/api/v1/", headers={"Authorization": f"Apikey {API_KEY}"}
        )
        with opener.open(request, timeout=2) as response:
            return response.status == 200

    try:
        _wait(ready, "catalog server", 90, process, log)
        yield CatalogServer(uri, frames, process)
    finally:
        _stop(process)


@contextlib.contextmanager
def redis(work: Path) -> Iterator[str]:
    import redis as redis_client

    port = free_port()
    log = work / "redis.log"
    process = _start(
        [
            shutil.which("redis-server"),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(work),
        ],
        log,
        dict(os.environ),
    )
    try:
        _wait(
            lambda: redis_client.Redis(port=port, socket_timeout=0.5).ping(),
            "redis",
            20,
            process,
            log,
        )
        yield f"127.0.0.1:{port}"
    finally:
        _stop(process)


@contextlib.contextmanager
def queue_manager(startup: Path, redis_address: str, work: Path, env: dict):
    """start-re-manager on the profile, ZMQ on 127.0.0.1; yields a REManagerAPI client."""
    from bluesky_queueserver_api.zmq import REManagerAPI

    control, info = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    log = work / "re-manager.log"
    command = [shutil.which("start-re-manager"), "--startup-dir", str(startup),
               "--existing-plans-devices", str(work / "existing_plans_and_devices.yaml"),
               "--zmq-control-addr", control, "--zmq-info-addr", info,
               "--redis-addr", redis_address, "--redis-name-prefix", "ophyd_pvcam_test",
               "--console-output", "ON"]  # fmt: skip
    process = _start(command, log, dict(os.environ, **env), cwd=work)
    manager = REManagerAPI(
        zmq_control_addr=control, zmq_info_addr=info, status_polling_period=0.05, timeout_recv=5.0
    )
    try:
        _wait(
            lambda: manager.status()["manager_state"] == "idle", "queue manager", 60, process, log
        )
        manager.log, manager.process = log, process
        yield manager
    finally:
        with contextlib.suppress(Exception):
            if manager.status()["worker_environment_exists"]:
                manager.environment_close()
                manager.wait_for_idle(timeout=30)
            manager.send_request(method="manager_stop", params={"option": "safe_on"})
            process.wait(20)
        _stop(process)
        with contextlib.suppress(Exception):
            manager.close()


def listening_addresses(pids: set[int]) -> set[str]:
    """Local addresses on which these processes (or their children) listen, per ``ss``."""
    family = set(pids)
    for pid in list(pids):
        family |= {int(p) for p in _descendants(pid)}
    output = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    addresses = set()
    for line in output.splitlines():
        if any(f"pid={pid}," in line for pid in family):
            addresses.add(line.split()[3].rsplit(":", 1)[0])
    return addresses


def _descendants(pid: int) -> list[str]:
    result = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    children = result.stdout.split()
    return children + [g for c in children for g in _descendants(int(c))]
