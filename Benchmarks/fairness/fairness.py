"""One round of the fairness benchmark (scripts/bench-fairness.sh runs it): a database outage during which one
organization ("hot") queues BACKLOG events, then the drain, while QUIET other organizations each send a few single
events a second from the start; prints one line of figures.

The outage is a write lock on the SQLite file (BEGIN EXCLUSIVE on a connection of this script): the workers' commits
wait and retry, as they do while a database is down; the gateways keep answering 202. The lock goes once the hot
organization's backlog is all accepted (and two seconds more, so that the overflow decision has been made), and the
drain is timed from the first hot row stored to the last.

Every quiet event's accepted time is when its 202 arrived; its stored time is when a poll of the database (every
50 ms) first sees it. Latencies are of the quiet events accepted once the workers store again after the outage,
while the hot organization's backlog drains (those accepted during the outage wait for the database, whoever queued
what).

Usage: fairness.py GATEWAY_PORT DATABASE BACKLOG QUIET RATE PARTITIONS
  QUIET organizations (0: none, the unshared drain) each send RATE events a second; a quarter of them (at least one)
  are of the hot organization's partition of PARTITIONS.
Prints: RESULT drain_events_per_s=… quiet_p50_ms=… quiet_p99_ms=… quiet_max_ms=… quiet_events=… same_partition_p99_ms=…
"""

import http.client
import json
import sqlite3
import sys
import threading
import time

port, database, backlog, quiet, rate, partitions = (
    int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]))
BATCH = 1000


def crc16(data: bytes) -> int:
    """CRC16-XMODEM, as Redis Cluster hashes keys."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def partition(org: str) -> int:
    return (crc16(org.encode()) % 16384) * partitions // 16384 if partitions > 1 else 0


def pick_quiet() -> list:
    """QUIET organizations, a quarter of them (at least one) in the hot organization's partition."""
    same = max(1, quiet // 4) if quiet else 0
    chosen, n = [], 0
    while len(chosen) < quiet:
        org = f"quiet-{n}"
        n += 1
        in_hot = partition(org) == partition("hot")
        if (in_hot and sum(partition(o) == partition("hot") for o in chosen) < same) or (
                not in_hot and len(chosen) - sum(partition(o) == partition("hot") for o in chosen) < quiet - same):
            chosen.append(org)
    return chosen


def post(connection, path, org, body):
    connection.request("POST", path, body=body, headers={"Content-Type": "application/json", "x-organization-id": org})
    response = connection.getresponse()
    response.read()
    if response.status != 202:
        raise RuntimeError(f"{path} for {org}: {response.status}")


def iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".%03dZ" % int((seconds % 1) * 1000)


# The outage: the workers' tables exist (they made them at start); hold the write lock.
lock = sqlite3.connect(database, timeout=30, isolation_level=None)
lock.execute("BEGIN EXCLUSIVE")

accepted = {}  # quiet message → (org, accepted time)
accepted_lock = threading.Lock()
stop = threading.Event()


def quiet_sender(orgs):
    connection = http.client.HTTPConnection("127.0.0.1", port)
    sequence = 0
    interval = 1.0 / rate
    next_time = time.time()
    while not stop.is_set():
        for org in orgs:
            message = f"{org} {sequence}"
            body = json.dumps({"service": "svc", "level": "info", "message": message, "timestamp": iso(time.time())})
            post(connection, "/events/logs", org, body)
            with accepted_lock:
                accepted[message] = (org, time.time())
        sequence += 1
        next_time += interval
        time.sleep(max(0.0, next_time - time.time()))


orgs = pick_quiet()
senders = [threading.Thread(target=quiet_sender, args=(orgs[i::4],), daemon=True) for i in range(min(4, len(orgs)))]
for sender in senders:
    sender.start()

# The hot organization's backlog, in batches of 1 000, from 4 connections.
batch = json.dumps([{"service": "hot-svc", "level": "info", "message": f"hot {i}"} for i in range(BATCH)])
remaining = [backlog // BATCH]
remaining_lock = threading.Lock()


def flooder():
    connection = http.client.HTTPConnection("127.0.0.1", port)
    while True:
        with remaining_lock:
            if remaining[0] == 0:
                return
            remaining[0] -= 1
        post(connection, "/events/logs/batch", "hot", batch)


flood_started = time.time()
flooders = [threading.Thread(target=flooder) for _ in range(4)]
for thread in flooders:
    thread.start()
for thread in flooders:
    thread.join()
flooded = time.time()
time.sleep(2)
lock.execute("ROLLBACK")
released = time.time()

# The drain, polled: the quiet events every 50 ms, the hot count (a count over up to a million rows, slower) apart.
seen = {}
hot_times = {}
total = (backlog // BATCH) * BATCH
drain_done = threading.Event()


def hot_poller():
    reader = sqlite3.connect(database, timeout=30)
    deadline = time.time() + 600
    while time.time() < deadline:
        hot = reader.execute("SELECT COUNT(*) FROM logs WHERE org_id = 'hot'").fetchone()[0]
        now = time.time()
        if hot > 0:
            hot_times.setdefault("first", now)
        if hot >= total:
            hot_times["last"] = now
            break
        time.sleep(0.1)
    drain_done.set()


def quiet_poll(reader, since):
    now = time.time()
    placeholders = ",".join("?" * len(orgs))
    for (message,) in reader.execute(f"SELECT message FROM logs WHERE org_id IN ({placeholders}) AND timestamp >= ?", orgs + [iso(since)]):
        seen.setdefault(message, now)


poller = threading.Thread(target=hot_poller)
poller.start()
reader = sqlite3.connect(database, timeout=30)
while not drain_done.is_set():
    if orgs:
        quiet_poll(reader, released - 60)
    time.sleep(0.05)
poller.join()
first_hot, last_hot = hot_times.get("first"), hot_times.get("last")
stop.set()
for sender in senders:
    sender.join()
drained = time.time()
# The quiet events still in flight.
while orgs and time.time() < drained + 5 and len(seen) < len(accepted):
    quiet_poll(reader, flood_started - 60)
    time.sleep(0.05)


def percentile(values, p):
    if not values:
        return 0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


start = first_hot or released
window = [(org, seen.get(message, float("inf")) - at) for message, (org, at) in accepted.items() if start <= at <= (last_hot or drained)]
latencies = [latency for _, latency in window]
same = [latency for org, latency in window if partition(org) == partition("hot")]
lost = sum(1 for message in accepted if message not in seen)
drain = total / (last_hot - first_hot) if first_hot and last_hot and last_hot > first_hot else 0
print(f"RESULT drain_events_per_s={drain:.0f} quiet_p50_ms={percentile(latencies, 50) * 1000:.0f} "
      f"quiet_p99_ms={percentile(latencies, 99) * 1000:.0f} quiet_max_ms={max(latencies, default=0) * 1000:.0f} "
      f"quiet_events={len(latencies)} same_partition_p99_ms={percentile(same, 99) * 1000:.0f} "
      f"same_partition_events={len(same)} unseen={lost} flood_s={flooded - flood_started:.1f} "
      f"hot_stored_after_s={(first_hot or 0) - released:.1f}")
if __import__("os").environ.get("FAIRNESS_TRACE"):
    # Each quiet event of the window: seconds after the drain started, latency in ms, and whether of hot's partition.
    for message, (org, at) in sorted(accepted.items(), key=lambda item: item[1][1]):
        if start <= at <= (last_hot or drained):
            print(f"TRACE {at - start:6.2f} {(seen.get(message, float('inf')) - at) * 1000:7.0f} {'same' if partition(org) == partition('hot') else ''}")
