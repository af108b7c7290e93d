"""`make bench` (`python -m tools.bench`): the CSMS under load on one machine, with PostgreSQL and
Redis, against a bare Channels echo measured in the same run.

Phases, each bounded in time:
1. echo      C simulated chargers send back-to-back CALLs to a bare Channels echo consumer
             (tools/echo.py) on the same ASGI server, settings and channel layer: the ceiling.
2. closed    the same C chargers, the same message mix, against the CSMS: CALLs answered after
             their data is committed (persisted messages/s), as a share of the echo's.
3. ramp      more chargers connect (HTTP Basic auth, BootNotification, StatusNotification) at
             --ramp per second up to --chargers, then hold with realistic traffic (heartbeats,
             sessions with meter values); memory per connection = server RSS growth / chargers.
4. rated     while holding them: --rate CALLs/s offered (open loop) by sessions' meter values,
             status and heartbeats; p50/p99 round trip and persisted messages/s.
5. remote    --remote-starts API remote starts while holding them: API call → frame received
             by the charger.
The message mix is 60 % meter values inside a transaction (1.6 MeterValues, 2.0.1
TransactionEvent Updated; five sampled values each), 20 % StatusNotification, 20 % Heartbeat;
chargers alternate 1.6 and 2.0.1. CPU is the server processes' CPU time per wall second (100 % =
one core), and the client's own (one thread: at 100 % it cannot offer more); "machine busy" is
all cores from /proc/stat, other users of the machine included.

It creates its own database (BENCH_DATABASE_URL, default csms_bench on 127.0.0.1) and drops it
at the end, raises the open-files limit of its own processes only, and listens on 127.0.0.1.
"""

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.simulator import ChargerConfig, VirtualCharger

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "bench-charger-password-0001"
MIX = ["meter"] * 3 + ["status", "heartbeat"]


# --- processes --------------------------------------------------------------------------------

def raise_open_files() -> None:
    """Up to the hard limit, in this process (and the children it starts) only."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def procfile_web(port: int, app: str = "csms.asgi:application") -> list[str]:
    """The Procfile's web process (the documented production command) on `port`, serving
    `app`, with this Python's virtualenv."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web1:"):
            words = line.split(":", 1)[1].split()
            break
    else:
        raise RuntimeError("Procfile has no web1 process")
    words[0] = str(Path(sys.executable).parent / Path(words[0]).name)
    words[words.index("--port") + 1] = str(port)
    return [app if word == "csms.asgi:application" else word for word in words]


def server_command(kind: str, app: str, port: int) -> list[str]:
    if kind == "uvicorn":
        return [*procfile_web(port, app), "--log-level", "warning", "--backlog", "4096"]
    return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
            "--access-log", os.devnull, app]


@contextmanager
def servers(kind: str, app: str, count: int, env: dict, name: str):
    """`count` server processes on free ports; yields [(port, pid)], stopped whatever happens."""
    started = []
    try:
        for _ in range(count):
            port = free_port()
            log = open(ARTIFACTS / f"bench-{name}-{port}.log", "w")  # noqa: SIM115
            process = subprocess.Popen(server_command(kind, app, port), cwd=ROOT, env=env,
                                       stdout=log, stderr=subprocess.STDOUT,
                                       preexec_fn=raise_open_files, start_new_session=True)
            started.append((port, process, log))
        for port, process, _ in started:
            wait_for_port(port, process, 60)
        yield [(port, process.pid) for port, process, _ in started]
    finally:
        for _, process, log in started:
            stop_process_group(process, grace=15)
            log.close()


def stop_process_group(process: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM a process started in its own session (and its children); SIGKILL after `grace`."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 20) -> None:
    import socket

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"server on port {port} did not start in {seconds} s")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    return _stat_cpu(Path(f"/proc/{pid}/stat").read_text())


def _stat_cpu(stat: str) -> float:
    """User and system CPU seconds from a /proc/<pid>/stat line."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_of(command: str) -> dict[int, float]:
    """CPU seconds of each process of this machine named `command` (PostgreSQL's backends,
    Redis), by pid."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, ValueError):
            text = stat.read_text()
            if text[text.index("(") + 1:text.rindex(")")] == command:
                found[int(stat.parent.name)] = _stat_cpu(text)
    return found


def cpu_since(command: str, before: dict[int, float]) -> float:
    """CPU seconds the processes named `command` used since `before` (cpu_of), each counted
    while it lives: one that exits meanwhile takes its share with it (the phase's figure is a
    floor)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in cpu_of(command).items())


def machine_busy() -> tuple[float, float]:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


@dataclass
class Meter:
    """CPU of the server processes, of this client, of PostgreSQL and Redis and of the whole
    machine over one phase. The client is one Python thread: near 100 % it is what limits the
    rate it can offer."""

    pids: list[int]
    started: float = field(default_factory=time.monotonic)
    cpu: float = 0.0
    client_cpu: float = 0.0
    services: dict[str, dict[int, float]] = field(default_factory=dict)
    busy: tuple[float, float] = (0.0, 0.0)

    SERVICES = {"postgres_cpu_percent": "postgres", "redis_cpu_percent": "redis-server"}

    def __post_init__(self) -> None:
        self.cpu = sum(cpu_seconds(pid) for pid in self.pids)
        self.client_cpu = cpu_seconds(os.getpid())
        self.services = {key: cpu_of(command) for key, command in self.SERVICES.items()}
        self.busy = machine_busy()

    def read(self) -> dict:
        wall = time.monotonic() - self.started
        busy, total = machine_busy()
        return {
            "server_cpu_percent": round(100 * (sum(cpu_seconds(p) for p in self.pids)
                                               - self.cpu) / wall, 1),
            "client_cpu_percent": round(100 * (cpu_seconds(os.getpid()) - self.client_cpu)
                                        / wall, 1),
            **{key: round(100 * cpu_since(self.SERVICES[key], before) / wall, 1)
               for key, before in self.services.items()},
            "machine_busy_percent": round(100 * (busy - self.busy[0])
                                          / max(1, total - self.busy[1]), 1),
        }


# --- the database -----------------------------------------------------------------------------

def prepare_database(url: str, chargers: int) -> None:
    """A fresh bench database: migrated, with the chargers' stations, cards and an API user."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT,
                   env=os.environ, check=True)

    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    from accounts.models import IdToken
    from stations.models import Station

    template = Station(id="template")
    template.set_password(PASSWORD)  # one hash for all: the server still checks each login
    Station.objects.bulk_create([Station(id=station_id(n), password_hash=template.password_hash)
                                 for n in range(chargers)], batch_size=2000)
    IdToken.objects.bulk_create([IdToken(value=card(n)) for n in range(chargers)],
                                batch_size=2000)
    user = User.objects.create_superuser("bench", password=PASSWORD)
    Token.objects.create(user=user, key="b" * 40)


def drop_database(url: str) -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def forget_redis_keys(run_id: str) -> None:
    """Groups, process keys and queues of this run (its run id is in each of their names)."""
    import redis

    client = redis.from_url(os.environ["REDIS_URL"])
    keys = list(client.scan_iter(f"*{run_id}*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start:start + 1000])


def station_id(n: int) -> str:
    return f"BENCH-{n:05d}"


def card(n: int) -> str:
    return f"BENCH-CARD-{n:05d}"


# --- load -------------------------------------------------------------------------------------

def make_chargers(ports: list[int], numbers: range, **config: Any) -> list[VirtualCharger]:
    return [VirtualCharger(ChargerConfig(
        station_id=station_id(n), version="1.6" if n % 2 == 0 else "2.0.1",
        url=f"ws://127.0.0.1:{ports[n % len(ports)]}/ocpp/", password=PASSWORD,
        id_tokens=[card(n)], call_timeout=30, connect_timeout=30, reconnect_min=2,
        reconnect_max=30, tx_attempts=1, **config)) for n in numbers]


async def send_one(charger: VirtualCharger, kind: str, echo: bool) -> None:
    if echo:  # the same frames, answered by the echo
        payload = {"connectorId": 1, "meterValue": [charger._sample(1, "Sample.Periodic")]}
        action = {"meter": "MeterValues", "status": "StatusNotification",
                  "heartbeat": "Heartbeat"}[kind]
        await charger.call(action, payload if kind == "meter" else {})
    elif kind == "meter":
        await charger.send_meter_values(1)
    elif kind == "status":
        await charger.status(1, "Occupied" if not charger.v16 else "Charging")
    else:
        await charger.heartbeat()


def summary(latencies: list[float], errors: int, seconds: float) -> dict:
    latencies.sort()

    def pct(q: float) -> float | None:
        if not latencies:
            return None
        return round(1000 * latencies[min(len(latencies) - 1, int(len(latencies) * q))], 2)

    return {"answered": len(latencies), "errors": errors,
            "msgs_per_s": round(len(latencies) / seconds, 1), "p50_ms": pct(0.5),
            "p99_ms": pct(0.99), "max_ms": pct(1.0)}


async def closed_loop(chargers: list[VirtualCharger], seconds: float, echo: bool) -> dict:
    """Every charger sends its next CALL as soon as the last one is answered."""
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def drive(charger: VirtualCharger, offset: int) -> None:
        nonlocal errors
        step = offset
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                await send_one(charger, MIX[step % len(MIX)], echo)
                latencies.append(time.monotonic() - started)
            except Exception:
                errors += 1
                await asyncio.sleep(0.1)
            step += 1

    started = time.monotonic()
    await asyncio.gather(*(drive(c, i) for i, c in enumerate(chargers)))
    return summary(latencies, errors, time.monotonic() - started)


async def open_loop(chargers: list[VirtualCharger], rate: float, seconds: float) -> dict:
    """`rate` CALLs per second offered, spread over the chargers; a charger whose last CALL is
    still unanswered skips its turn (counted: the server is not keeping up)."""
    latencies: list[float] = []
    errors = skipped = 0
    busy: set[int] = set()
    tasks: set[asyncio.Task] = set()

    async def one(index: int, kind: str) -> None:
        nonlocal errors
        started = time.monotonic()
        try:
            await send_one(chargers[index], kind, echo=False)
            latencies.append(time.monotonic() - started)
        except Exception:
            errors += 1
        finally:
            busy.discard(index)

    begun = time.monotonic()
    sent = 0
    while (elapsed := time.monotonic() - begun) < seconds:
        for _ in range(int(elapsed * rate) - sent):
            index = sent % len(chargers)
            sent += 1
            if index in busy:
                skipped += 1
                continue
            busy.add(index)
            task = asyncio.create_task(one(index, MIX[sent % len(MIX)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.sleep(0.005)
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    result = summary(latencies, errors, time.monotonic() - begun)
    result.update(offered_per_s=rate, skipped=skipped)
    return result


async def connect_all(chargers: list[VirtualCharger], ramp: float, stop: asyncio.Event,
                      seconds: float) -> list[asyncio.Task[None]]:
    """Run each charger's own life (connect, boot, status, heartbeats, sessions) from now on,
    starting `ramp` per second; returns the tasks once all are online or `seconds` passed."""
    tasks = []
    begun = time.monotonic()
    for index, charger in enumerate(chargers):
        delay = begun + index / ramp - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(charger.run(stop)))
    deadline = begun + seconds
    while time.monotonic() < deadline and not all(c.online for c in chargers):  # noqa: ASYNC110
        await asyncio.sleep(0.5)
    return tasks


async def start_sessions(chargers: list[VirtualCharger]) -> int:
    started = 0
    for batch in range(0, len(chargers), 200):
        outcomes = await asyncio.gather(
            *(c.start_session(1, c.config.id_tokens[0]) for c in chargers[batch:batch + 200]
              if c.online and 1 not in c.sessions), return_exceptions=True)
        started += sum(1 for outcome in outcomes if not isinstance(outcome, BaseException))
    return started


async def remote_starts(chargers: list[VirtualCharger], ports: list[int], count: int) -> dict:
    """API call → the charger receives RemoteStartTransaction / RequestStartTransaction."""
    received: dict[str, float] = {}
    idle = [c for c in chargers if c.online and not c.sessions][:count]

    def hook(charger):
        def seen(payload: dict) -> None:
            received.setdefault(charger.config.station_id, time.monotonic())

        return seen

    for charger in idle:
        for action in ("RemoteStartTransaction", "RequestStartTransaction"):
            charger.on_call[action] = hook(charger)

    def post(port: int, charger) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/stations/{charger.config.station_id}/remote-start/",
            data=json.dumps({"evse": 1, "id_token": charger.config.id_tokens[0]}).encode(),
            headers={"Authorization": "Token " + "b" * 40, "Content-Type": "application/json"},
            method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    latencies, outcomes = [], Counter()
    for index, charger in enumerate(idle):
        sent = time.monotonic()
        try:
            # The API asks one process; the charger may be held by another (through Redis).
            body = await asyncio.to_thread(post, ports[(index + 1) % len(ports)], charger)
            outcomes[body.get("status", "?")] += 1
        except Exception as error:
            outcomes[type(error).__name__] += 1
        if charger.config.station_id in received:
            latencies.append(received[charger.config.station_id] - sent)
        await asyncio.sleep(random.uniform(0.05, 0.15))
    result = summary(latencies, count - len(latencies), 1)
    result.pop("msgs_per_s")
    result["outcomes"] = dict(outcomes)
    return result


# --- the servers' own view ----------------------------------------------------------------------

def server_counters(ports: list[int]) -> Counter:
    """From every server's /metrics, summed: csms_ocpp_message_seconds, all actions (upper
    bound → count), and the writer's batches ("batch messages", "batches").

    The servers' own measure (frame received → answer sent, commit included), free of the
    client's delays: on one 2-core machine the client holding 10,000 chargers competes with the
    servers for CPU and adds its own queueing to the round trips it times."""
    counters: Counter = Counter()
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
            text = response.read().decode()
        for line in text.splitlines():
            value = line.rsplit(" ", 1)[-1]
            if line.startswith("csms_ocpp_message_seconds_bucket{"):
                counters[float(line.split('le="', 1)[1].split('"', 1)[0])] += float(value)
            elif line.startswith("csms_ocpp_batch_messages_sum "):
                counters["batch messages"] += float(value)
            elif line.startswith("csms_ocpp_batch_messages_count "):
                counters["batches"] += float(value)
            elif line.startswith("csms_gc_pause_seconds_sum{"):
                counters["gc seconds"] += float(value)
            elif line.startswith('csms_gc_pause_seconds_bucket{generation="2",le="+Inf"}'):
                counters["full collections"] += float(value)
            elif line.startswith('csms_gc_pause_seconds_bucket{generation="2",le="0.1"}'):
                counters["full collections under 100 ms"] += float(value)
    return counters


def client_gc_seconds() -> float:
    """The bench client's own collector pauses so far: time it counts against the servers."""
    from csms import metrics

    return sum(sample.value for metric in metrics.GC_PAUSES.collect()
               for sample in metric.samples if sample.name.endswith("_sum"))


def server_latency(before: Counter, after: Counter) -> dict:
    """p50/p99 (the bucket bound they fall under) of the messages answered in between, the mean
    number of messages per batch the writers stored meanwhile, and the servers' garbage
    collections meanwhile (all pauses summed; full collections, and those over 100 ms)."""
    bounds = sorted(key for key in after if isinstance(key, float))
    counts = {bound: after[bound] - before[bound] for bound in bounds}  # cumulative buckets
    total = counts[bounds[-1]] if bounds else 0

    def under(q: float) -> float | None:
        for bound in bounds:
            if total and counts[bound] >= q * total:
                return round(1000 * bound, 1)
        return None

    batches = after["batches"] - before["batches"]
    full = after["full collections"] - before["full collections"]
    return {"server_p50_ms_under": under(0.5), "server_p99_ms_under": under(0.99),
            "gc_pause_ms": round(1000 * (after["gc seconds"] - before["gc seconds"])),
            "full_collections": full,
            "full_collections_over_100_ms": full - (after["full collections under 100 ms"]
                                                    - before["full collections under 100 ms"]),
            "messages_per_batch": round((after["batch messages"] - before["batch messages"])
                                        / batches, 1) if batches else None}


def remote_starts_server_side(station_ids: list[str]) -> dict:
    """API call stored → frame sent by the process holding the charger (the Call row's own
    times): the remote start as the servers did it, without the client's delays."""
    from stations.models import Call

    times = sorted(
        (sent - created).total_seconds() for created, sent in Call.objects.filter(
            station_id__in=station_ids, sent_at__isnull=False,
            action__in=["RemoteStartTransaction", "RequestStartTransaction"],
        ).values_list("created_at", "sent_at"))
    if not times:
        return {}
    return {"server_p50_ms": round(1000 * times[len(times) // 2], 1),
            "server_p99_ms": round(1000 * times[min(len(times) - 1, int(len(times) * 0.99))],
                                   1)}


# --- profile ----------------------------------------------------------------------------------

def profile(pid: int, seconds: float) -> subprocess.Popen | None:
    """py-spy (a dev dependency) sampling one server process, collapsed stacks to a file."""
    out = ARTIFACTS / f"bench-profile-{pid}.txt"
    try:
        return subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record",
                                 "--pid", str(pid), "--duration", str(int(seconds)),
                                 "--format", "raw", "--rate", "200", "--nonblocking", "--gil",
                                 "-o", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except FileNotFoundError:
        return None


def profile_summary(pid: int, top: int = 25) -> list[tuple[str, float, float]]:
    """(function, % of samples in it or below it, % of samples in it itself)."""
    path = ARTIFACTS / f"bench-profile-{pid}.txt"
    if not path.exists():
        return []
    inclusive: Counter = Counter()
    own: Counter = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [frame.split(" (")[0] + " (" + frame.split(" (")[-1].split(":")[0].split(
            "/")[-1] + ")" for frame in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += samples
        own[frames[-1]] += samples
    return [(frame, round(100 * n / total, 1), round(100 * own[frame] / total, 1))
            for frame, n in inclusive.most_common(top)] if total else []


# --- the run ----------------------------------------------------------------------------------

async def bench(args: argparse.Namespace, env: dict) -> dict:
    from stations.models import MessageLog, Station

    results: dict = {"args": vars(args)}
    with servers(args.server, "tools.echo:application", args.servers, env, "echo") as echo:
        ports = [port for port, _ in echo]
        closed = make_chargers(ports, range(args.closed_chargers))
        await asyncio.gather(*(c.connect() for c in closed))
        meter = Meter([pid for _, pid in echo])
        results["echo"] = await closed_loop(closed, args.seconds, echo=True)
        results["echo"].update(meter.read())
        await asyncio.gather(*(c.close() for c in closed))
    print("echo", results["echo"], flush=True)

    with servers(args.server, "csms.asgi:application", args.servers, env, "csms") as csms:
        ports, pids = [port for port, _ in csms], [pid for _, pid in csms]
        stop = asyncio.Event()
        closed = make_chargers(ports, range(args.closed_chargers), meter_interval=0)
        running = await connect_all(closed, args.ramp, stop, 120)
        results["sessions_started"] = await start_sessions(closed)
        meter = Meter(pids)
        logged = await asyncio.to_thread(MessageLog.objects.filter(direction="in").count)
        counters = await asyncio.to_thread(server_counters, ports)
        results["closed"] = await closed_loop(closed, args.seconds, echo=False)
        results["closed"].update(meter.read())
        results["closed"]["messages_per_batch"] = server_latency(
            counters, await asyncio.to_thread(server_counters, ports))["messages_per_batch"]
        results["closed"]["logged_in_db"] = await asyncio.to_thread(
            MessageLog.objects.filter(direction="in").count) - logged
        results["closed"]["share_of_echo"] = round(
            results["closed"]["msgs_per_s"] / max(1, results["echo"]["msgs_per_s"]), 3)
        print("closed", results["closed"], flush=True)

        rss_before = sum(rss_bytes(pid) for pid in pids)
        more = make_chargers(ports, range(args.closed_chargers, args.chargers),
                             meter_interval=60, session_every=args.session_every,
                             session_length=args.session_length)
        meter = Meter(pids)
        begun = time.monotonic()
        running += await connect_all(more, args.ramp, stop, args.chargers / args.ramp + 120)
        everyone = closed + more
        # The client's own full collections over 10,000 chargers' objects paused it for
        # hundreds of milliseconds: time it would count against the server.
        gc.freeze()
        online = sum(c.online for c in everyone)
        await asyncio.sleep(args.hold)
        rss_after = sum(rss_bytes(pid) for pid in pids)
        results["ramp"] = {
            "chargers": args.chargers, "online": online,
            "connected_in_db": await asyncio.to_thread(
                Station.objects.filter(connected=True).count),
            "seconds": round(time.monotonic() - begun, 1),
            "server_rss_mb": round(rss_after / 2**20, 1),
            "kb_per_connection": round((rss_after - rss_before) / 1024
                                       / max(1, online - len(closed)), 1),
            "client_rss_mb": round(rss_bytes(os.getpid()) / 2**20, 1),
            "connect_failures": sum(c.metrics.connect_failures for c in everyone),
        }
        background = [v for c in more for vs in c.metrics.latencies.values() for v in vs]
        results["ramp"]["traffic"] = summary(background, sum(c.metrics.call_errors
                                                             for c in more), 1)
        results["ramp"]["traffic"].pop("msgs_per_s")
        results["ramp"].update(meter.read())
        print("ramp", results["ramp"], flush=True)

        profiler = profile(pids[0], args.seconds) if args.profile else None
        meter = Meter(pids)
        logged = await asyncio.to_thread(MessageLog.objects.filter(direction="in").count)
        counters = await asyncio.to_thread(server_counters, ports)
        client_gc = client_gc_seconds()
        results["rated"] = await open_loop(closed, args.rate, args.seconds)
        results["rated"]["client_gc_pause_ms"] = round(1000 * (client_gc_seconds() - client_gc))
        results["rated"].update(meter.read())
        results["rated"].update(server_latency(
            counters, await asyncio.to_thread(server_counters, ports)))
        results["rated"]["logged_in_db"] = await asyncio.to_thread(
            MessageLog.objects.filter(direction="in").count) - logged
        results["rated"]["held_meanwhile"] = sum(c.online for c in everyone)
        print("rated", results["rated"], flush=True)
        if profiler is not None:
            profiler.wait(timeout=args.seconds + 60)
            results["profile"] = profile_summary(pids[0])

        results["remote_start"] = await remote_starts(more, ports, args.remote_starts)
        results["remote_start"].update(await asyncio.to_thread(
            remote_starts_server_side, [c.config.station_id for c in more]))
        results["remote_start"]["held_meanwhile"] = sum(c.online for c in everyone)
        print("remote_start", results["remote_start"], flush=True)

        results["retention"] = await asyncio.to_thread(retention_cost)
        print("retention", results["retention"], flush=True)

        stop.set()
        await asyncio.wait(running, timeout=120)
    return results


def retention_cost() -> dict:
    """The hourly prune, timed on the whole log made 100 days old, while the servers run."""
    from datetime import timedelta

    from django.db import connection
    from django.db.models import F

    from stations.models import MessageLog
    from stations.services import retention

    try:
        MessageLog.objects.update(created_at=F("created_at") - timedelta(days=100))
        begun = time.monotonic()
        deleted = retention.message_log_prune(90)
        seconds = time.monotonic() - begun
    finally:
        connection.close()
    return {"deleted": deleted, "seconds": round(seconds, 2),
            "rows_per_s": round(deleted / max(seconds, 1e-6))}


def report(results: dict) -> str:
    e, c, r, t = results["echo"], results["closed"], results["ramp"], results["rated"]
    s = results["remote_start"]
    a = results["args"]
    lines = [
        f"`make bench` — {a['server']}, {a['servers']} server process(es), PostgreSQL + Redis, "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
        "",
        "| measure | result |",
        "|---|---|",
        f"| connections held | {r['online']} of {r['chargers']} "
        f"({r['connected_in_db']} marked connected in the database), ramp {r['seconds']} s, "
        f"{r['connect_failures']} failed attempts (retried) |",
        f"| memory per connection | {r['kb_per_connection']} KB (server RSS "
        f"{r['server_rss_mb']} MB) |",
        f"| traffic during the ramp (boot, status, heartbeats, sessions of "
        f"{a['session_length']:.0f} s every {a['session_every']:.0f} s a charger) | p50 "
        f"{r['traffic']['p50_ms']} ms, p99 {r['traffic']['p99_ms']} ms, server CPU "
        f"{r['server_cpu_percent']} % |",
        f"| bare Channels echo, {a['closed_chargers']} chargers back to back | "
        f"{e['msgs_per_s']} msgs/s, p50 {e['p50_ms']} ms, p99 {e['p99_ms']} ms, server CPU "
        f"{e['server_cpu_percent']} %, machine {e['machine_busy_percent']} % busy |",
        f"| CSMS, same chargers and mix | {c['msgs_per_s']} persisted msgs/s "
        f"({c['share_of_echo']:.0%} of the echo), p50 {c['p50_ms']} ms, p99 {c['p99_ms']} ms, "
        f"server CPU {c['server_cpu_percent']} %, client CPU {c.get('client_cpu_percent')} %, "
        f"PostgreSQL CPU {c.get('postgres_cpu_percent')} %, "
        f"machine {c['machine_busy_percent']} % busy, "
        f"{c.get('messages_per_batch')} messages per database transaction |",
        f"| CSMS at {t['offered_per_s']:.0f} msgs/s offered, {t['held_meanwhile']} held | "
        f"{t['msgs_per_s']} persisted msgs/s ({t['logged_in_db']} CALLs logged in the "
        f"database), p50 {t['p50_ms']} ms, p99 {t['p99_ms']} ms, {t['skipped']} turns skipped, "
        f"{t['errors']} errors, server CPU {t['server_cpu_percent']} %, client CPU "
        f"{t.get('client_cpu_percent')} %, PostgreSQL CPU {t.get('postgres_cpu_percent')} %, "
        f"machine {t['machine_busy_percent']} % busy; "
        f"the servers' own measure (received → answered): "
        f"p50 under {t.get('server_p50_ms_under')} ms, p99 under {t.get('server_p99_ms_under')} "
        f"ms; {t.get('messages_per_batch')} messages per database transaction; collector "
        f"pauses {t.get('gc_pause_ms')} ms in all, {t.get('full_collections')} full "
        f"collections ({t.get('full_collections_over_100_ms')} over 100 ms); the client's "
        f"own pauses {t.get('client_gc_pause_ms')} ms |",
        f"| remote start, API call → charger receives the frame ({s['answered']} of "
        f"{a['remote_starts']}) | p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, "
        f"outcomes {s['outcomes']}; the servers' own (API stored → frame sent): p50 "
        f"{s.get('server_p50_ms')} ms, p99 {s.get('server_p99_ms')} ms |",
        f"| message-log retention (batches of 5,000, servers running) | "
        f"{results['retention']['deleted']} frames in {results['retention']['seconds']} s "
        f"({results['retention']['rows_per_s']} frames/s) |",
    ]
    if results.get("profile"):
        lines += ["", "Profile of one server process during the rated phase (py-spy; % of "
                  "samples in the function or below it / in the function itself):", "",
                  "| function | total % | own % |", "|---|---|---|"]
        lines += [f"| `{name}` | {total} | {own} |" for name, total, own in results["profile"]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chargers", type=int, default=10_000)
    parser.add_argument("--servers", type=int, default=1, help="ASGI server processes")
    parser.add_argument("--server", choices=["uvicorn", "daphne"], default="uvicorn")
    parser.add_argument("--ramp", type=float, default=200, help="connections per second")
    parser.add_argument("--hold", type=float, default=30, help="seconds held after the ramp")
    parser.add_argument("--closed-chargers", type=int, default=200,
                        help="chargers of the echo, closed-loop and rated phases")
    parser.add_argument("--rate", type=float, default=1500, help="CALLs/s of the rated phase")
    parser.add_argument("--seconds", type=float, default=20, help="length of a measured phase")
    parser.add_argument("--session-every", type=float, default=900,
                        help="mean seconds between sessions of a charger while held")
    parser.add_argument("--session-length", type=float, default=120,
                        help="seconds a session of the held chargers lasts")
    parser.add_argument("--remote-starts", type=int, default=50)
    parser.add_argument("--profile", action="store_true", help="py-spy the rated phase")
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args()

    raise_open_files()
    ARTIFACTS.mkdir(exist_ok=True)
    run_id = f"bench{os.getpid()}"
    database = os.environ.get("BENCH_DATABASE_URL",
                              f"postgres://postgres@127.0.0.1:5432/csms_{run_id}")
    os.environ.update({
        "DATABASE_URL": database, "CSMS_RUN_ID": run_id,
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "DJANGO_SETTINGS_MODULE": "csms.settings", "LOG_LEVEL": "WARNING",
        "OCPP_HEARTBEAT_INTERVAL": "300",
        # PostgreSQL is the production path: its settings need a key (the run's own).
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50),
    })
    env = dict(os.environ)
    import django

    django.setup()
    from django.conf import settings

    from csms import metrics

    gc.set_threshold(*settings.GC_THRESHOLD)  # as the servers do (csms/asgi.py)
    metrics.time_collections()
    prepare_database(database, args.chargers)
    try:
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        results = asyncio.run(bench(args, env))
    finally:
        if not args.keep_database:
            drop_database(database)
        forget_redis_keys(run_id)
    text = report(results)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (ARTIFACTS / f"bench-{stamp}.json").write_text(json.dumps(results, indent=2))
    (ARTIFACTS / f"bench-{stamp}.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
