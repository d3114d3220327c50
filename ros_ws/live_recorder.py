"""``navkit record``: record the live ROS 2 graph into an MCAP bag, without ``ros2 bag``.

``rosbag2_py`` and the ``ros2`` CLI are not on PyPI, so this recorder does in Python what
``ros2 bag record`` does, writing through ``rosbags`` (the same writer as
:mod:`navkit.runner.bag_recorder`):

* **Discovery.** Every ``--discovery-period`` seconds it lists the graph's topics
  (``get_topic_names_and_types``) and subscribes to each new one that has a publisher,
  passes the filters (``--topic`` / ``--exclude``; hidden ``_``-topics only when named)
  and whose type both ``rosbags``' typestore and this Python can handle: a topic that
  appears an hour into the recording is still recorded.
* **QoS that matches the publishers**, as rosbag2's ``adapt_request_to_offers`` does: a
  reliable subscription never hears a best-effort publisher, and only a transient-local one
  receives a latched message sent before it joined. So: reliable only if *every* publisher
  is reliable, transient-local only if *every* publisher is; otherwise best effort /
  volatile (which match anything).
* **Raw bytes.** Subscriptions are ``raw=True``: the CDR bytes from DDS go into the bag
  untouched (no deserialize / serialize round trip, and no rounding of anything). Each
  message's log time is its *receive* time in nanoseconds (the middleware's reception
  stamp, wall clock), as rosbag2 records by default.
* **Schemas** come from ``rosbags``' typestore of the graph's distro; a topic whose type hash
  (RIHS01, announced in discovery) differs from the typestore's is *not* recorded, because
  its bytes would not decode with the schema written next to them.

Bag layout: like the in-process recorder, ``out/run.mcap`` becomes the rosbag2 folder
``out/run/`` with ``metadata.yaml`` and ``run.mcap`` (``rosbags`` always writes a folder).

Metadata, and what is honest about it:

* ``offered_qos_profiles``: the profiles the topic's publishers offered (from
  ``get_publishers_info_by_topic``) go through ``rosbags``' own ``add_connection(...,
  offered_qos_profiles=...)``, so they land where rosbag2 puts them: the list under each
  topic in ``metadata.yaml`` (bag version 9) and the ``offered_qos_profiles`` YAML string in
  the MCAP channel's metadata, which ``ros2 bag play`` uses to publish with the same QoS.
* ``ros_distro``: ``rosbags`` writes the top-level ``ros_distro: rosbags`` itself (the field
  names the rosbag2 implementation that wrote the file, and that *is* rosbags; the writer
  offers no way to change it). The distro of the graph that was recorded (``ROS_DISTRO`` or
  the rclpy wheel's ``ros-<distro>-rclpy`` name, e.g. ``kilted``) goes into the bag's
  ``custom_data`` (``custom_data: {ros_distro: kilted, recorder: navkit record, ...}``),
  the documented slot for extra key/values, which rosbags' ``Reader`` returns and rosbag2 keeps.

Stopping: Ctrl-C, SIGTERM, ``--duration`` or ``--max-messages`` all end the same way: the
bag is closed (MCAP summary and ``metadata.yaml`` written) so everything recorded so far is
readable, then one line per topic. Only SIGKILL loses the unflushed tail.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import math
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rclpy.topic_endpoint_info import TopicEndpointInfo
from rosbags.interfaces import Connection, Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from navkit.common.cli_args import CliParser
from navkit.common.errors import FieldError, brief

PROG = "navkit record"
DEFAULT_DISCOVERY_PERIOD_S = 0.1
"""rosbag2's default topic polling interval: a topic is subscribed within 0.1 s of appearing."""
DEFAULT_PROGRESS_PERIOD_S = 5.0
SUBSCRIPTION_DEPTH = 100
"""Keep-last depth of every subscription: room for a burst while the writer is busy (rosbag2 uses 10)."""
SPIN_TIMEOUT_S = 0.1
"""Longest the loop waits for a message: bounds how late a signal, duration or discovery is noticed."""
NODE_NAME = "navkit_recorder"


class RecorderError(FieldError):
    """Bad recorder input or an unwritable bag; names the path (or topic) and the option."""


@dataclass(frozen=True)
class RecorderConfig:
    """What to record and when to stop; :func:`check_config` validates it before ROS starts."""

    output: Path
    """Requested bag path; ``run.mcap`` and ``run`` both mean the rosbag2 folder ``run/``."""
    topics: tuple[str, ...] = ()
    """Only these topics (absolute names); empty: every discovered topic."""
    exclude: str | None = None
    """Regular expression (``re.search``) of topic names never to record."""
    discovery_period_s: float = DEFAULT_DISCOVERY_PERIOD_S
    duration_s: float | None = None
    """Stop after this many (wall) seconds; None: until Ctrl-C / SIGTERM."""
    max_messages: int | None = None
    """Stop after this many messages in all; None: no limit."""
    overwrite: bool = False
    """Replace an existing bag at the output path (never a folder that is not a bag)."""
    progress_period_s: float = DEFAULT_PROGRESS_PERIOD_S
    """Seconds between progress lines on stderr; 0: none."""

    @property
    def bag_dir(self) -> Path:
        return bag_directory(self.output)


@dataclass
class TopicStats:
    """One recorded topic: its type, the QoS used to subscribe, what publishers offered, the count."""

    topic: str
    msgtype: str
    connection: Connection
    offered: list[Qos]
    requested: QoSProfile
    count: int = 0
    publishers: int = 0
    """Publishers on the topic when last looked at: a change triggers a QoS check of the new ones."""
    warned: bool = False


@dataclass
class RecordResult:
    """What a recording produced: the bag folder, per-topic stats, why it stopped."""

    bag: Path
    topics: dict[str, TopicStats] = field(default_factory=dict)
    stop_reason: str = ""
    error: str | None = None

    @property
    def message_count(self) -> int:
        return sum(t.count for t in self.topics.values())


# ------------------------------------------------------------------ pure helpers


def bag_directory(path: str | Path) -> Path:
    """The rosbag2 folder for a requested path: ``run.mcap`` -> ``run/`` (as navkit.runner writes bags)."""
    path = Path(path)
    return path.with_suffix("") if path.suffix == ".mcap" else path


def absolute_topic(name: str) -> str:
    """Graph names are absolute: ``scan`` on the command line means ``/scan``."""
    name = name.strip()
    return name if name.startswith("/") else f"/{name}"


def is_hidden(topic: str) -> bool:
    """A hidden topic (any name token starting with ``_``), which ``ros2 bag record -a`` skips too."""
    return any(part.startswith("_") for part in topic.split("/"))


def ros_distro() -> str:
    """The ROS distro of this environment: ``ROS_DISTRO``, else the ``ros-<distro>-rclpy`` wheel's name."""
    env = os.environ.get("ROS_DISTRO", "").strip()
    if env:
        return env
    pattern = re.compile(r"^ros-([a-z]+)-rclpy$")
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        match = pattern.match(name)
        if match:
            return match.group(1)
    return "unknown"


def choose_store(distro: str) -> Stores:
    """The rosbags typestore for ``distro``; else Kilted, Jazzy or rosbags' latest, the first it has."""
    members = Stores.__members__
    for name in (f"ROS2_{distro.upper()}", "ROS2_KILTED", "ROS2_JAZZY"):
        if name in members:
            return members[name]
    return Stores.LATEST


def subscription_qos(offers: Sequence[QoSProfile], depth: int = SUBSCRIPTION_DEPTH) -> QoSProfile:
    """The QoS to request so that every offering publisher is heard (rosbag2's rule).

    Reliable only when all publishers are reliable (a reliable request does not match a
    best-effort offer); transient-local only when all are (a transient-local request does
    not match a volatile offer, and with all of them latched it receives what they kept).
    Deadline, lifespan and liveliness stay at their defaults, the least demanding requests.
    """
    reliable = bool(offers) and all(o.reliability == ReliabilityPolicy.RELIABLE for o in offers)
    latched = bool(offers) and all(o.durability == DurabilityPolicy.TRANSIENT_LOCAL for o in offers)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def heard_by(requested: QoSProfile, offered: QoSProfile) -> bool:
    """Whether a subscription requesting ``requested`` matches a publisher offering ``offered``
    (for the two policies that decide it here: reliability and durability)."""
    if requested.reliability == ReliabilityPolicy.RELIABLE and offered.reliability != ReliabilityPolicy.RELIABLE:
        return False
    return not (requested.durability == DurabilityPolicy.TRANSIENT_LOCAL
                and offered.durability != DurabilityPolicy.TRANSIENT_LOCAL)


def _qos_time(nanoseconds: int) -> QosTime:
    sec, nsec = divmod(int(nanoseconds), 1_000_000_000)
    return QosTime(sec, nsec)


def _policy(enum: Any, value: Any) -> Any:
    """An rclpy policy -> the rosbags enum member of the same name (both mirror rmw); UNKNOWN otherwise."""
    name = getattr(value, "name", None)
    return enum.__members__.get(str(name), enum.UNKNOWN)


def qos_to_rosbags(profile: QoSProfile) -> Qos:
    """An offered rclpy profile as rosbags writes it into ``offered_qos_profiles``.

    Durations are split into sec/nsec as rosbag2 does, so "infinite" (2**63 - 1 ns) reads
    ``sec: 9223372036, nsec: 854775807`` in both tools' bags.
    """
    return Qos(
        history=_policy(QosHistory, profile.history),
        depth=int(profile.depth),
        reliability=_policy(QosReliability, profile.reliability),
        durability=_policy(QosDurability, profile.durability),
        deadline=_qos_time(profile.deadline.nanoseconds),
        lifespan=_qos_time(profile.lifespan.nanoseconds),
        liveliness=_policy(QosLiveliness, profile.liveliness),
        liveliness_lease_duration=_qos_time(profile.liveliness_lease_duration.nanoseconds),
        avoid_ros_namespace_conventions=bool(profile.avoid_ros_namespace_conventions),
    )


def endpoint_hash(info: TopicEndpointInfo) -> str | None:
    """The RIHS01 type hash a publisher announced, or None when it announced none (older distros)."""
    type_hash = info.topic_type_hash
    if getattr(type_hash, "version", -1) != 1 or not any(type_hash.value):
        return None
    return f"RIHS01_{bytes(type_hash.value).hex()}"


def message_class(msgtype: str) -> type:
    """``pkg/msg/Name`` -> the Python class rclpy needs to subscribe; ImportError/AttributeError if absent."""
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


def check_config(config: RecorderConfig) -> re.Pattern[str] | None:
    """Validate ``config`` before anything starts; returns the compiled ``exclude``; raises RecorderError."""
    bag = str(config.bag_dir)
    if config.exclude is not None:
        try:
            pattern: re.Pattern[str] | None = re.compile(config.exclude)
        except re.error as exc:
            problem = f"not a regular expression ({exc}): {brief(config.exclude)}"
            raise RecorderError(bag, "--exclude", problem) from None
    else:
        pattern = None
    for name, value in (("--discovery-period", config.discovery_period_s), ("--duration", config.duration_s)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise RecorderError(bag, name, f"must be a positive number of seconds, got {value}")
    if not (math.isfinite(config.progress_period_s) and config.progress_period_s >= 0):
        raise RecorderError(bag, "--progress-period", f"must be >= 0 seconds, got {config.progress_period_s}")
    if config.max_messages is not None and config.max_messages < 1:
        raise RecorderError(bag, "--max-messages", f"must be >= 1, got {config.max_messages}")
    for topic in config.topics:
        if topic in ("", "/") or any(c.isspace() for c in topic):
            raise RecorderError(bag, "--topic", f"not a topic name: {brief(topic)}")
    check_output(config)
    return pattern


def _is_bag_folder(path: Path) -> bool:
    """Only folders holding nothing but bag files (metadata.yaml, *.mcap) may be deleted by --overwrite."""
    try:
        entries = list(path.iterdir())
    except OSError:
        return False
    return all(e.is_file() and (e.name == "metadata.yaml" or e.suffix == ".mcap") for e in entries)


def check_output(config: RecorderConfig) -> None:
    """The bag folder must not exist (unless ``overwrite`` and it is a bag) and its parent must be writable."""
    bag = config.bag_dir
    if bag.exists() or bag.is_symlink():
        if not config.overwrite:
            raise RecorderError(str(bag), "output", "already exists; choose another path or pass --overwrite")
        if bag.is_symlink() or not bag.is_dir() or not _is_bag_folder(bag):
            raise RecorderError(str(bag), "--overwrite", "exists and is not a bag folder (only metadata.yaml and "
                                                         "*.mcap files); not deleting it")
    parent = bag.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise RecorderError(str(bag), "output", f"{parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RecorderError(str(bag), "output", f"cannot write in {parent}")


def open_writer(config: RecorderConfig, distro: str) -> Writer:
    """Create the bag (deleting an old one with ``overwrite``); raises RecorderError naming the path."""
    bag = config.bag_dir
    try:
        if config.overwrite and bag.is_dir():
            shutil.rmtree(bag)
        bag.parent.mkdir(parents=True, exist_ok=True)
        writer = Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP)
        writer.open()
    except (OSError, WriterError) as exc:
        raise RecorderError(str(bag), "output", f"cannot create the bag ({exc})") from None
    writer.set_custom_data("ros_distro", distro)
    writer.set_custom_data("recorder", PROG)
    try:
        writer.set_custom_data("rosbags_version", importlib.metadata.version("rosbags"))
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - rosbags is imported above
        pass
    return writer


# ------------------------------------------------------------------ the node


class LiveRecorderNode(Node):
    """Discovers topics and writes every message it receives into ``writer``.

    Single-threaded on purpose: subscriptions and the writer run on one executor thread,
    so the writer needs no lock and ``close()`` can never race a ``write()``.
    """

    def __init__(self, config: RecorderConfig, exclude: re.Pattern[str] | None, writer: Writer,
                 typestore: Typestore, store_name: str, *, context: Context, err: TextIO) -> None:
        super().__init__(NODE_NAME, context=context, enable_rosout=False, start_parameter_services=False)
        self.config = config
        self.exclude = exclude
        self.writer = writer
        self.typestore = typestore
        self.store_name = store_name
        self.err = err
        self.wanted = {absolute_topic(t) for t in config.topics}
        self.stats: dict[str, TopicStats] = {}
        self.skipped: set[str] = set()
        self.total = 0
        self.limit_reached = False

    def _say(self, text: str) -> None:
        print(f"{PROG}: {text}", file=self.err, flush=True)

    def _skip(self, topic: str, why: str) -> None:
        """Give up on ``topic`` for good, saying why once (a warning, not an error: the rest still records)."""
        self.skipped.add(topic)
        self._say(f"{topic}: not recorded: {why}")

    def _own(self, info: TopicEndpointInfo) -> bool:
        return info.node_name == self.get_name() and info.node_namespace == self.get_namespace()

    def discover(self) -> None:
        """Subscribe to every new topic that has a publisher and passes the filters."""
        for topic, types in self.get_topic_names_and_types():
            if topic in self.stats:
                self._check_new_publishers(self.stats[topic])
                continue
            if topic in self.skipped:
                continue
            if self.wanted and topic not in self.wanted:
                continue
            if not self.wanted and is_hidden(topic):
                continue
            if self.exclude is not None and self.exclude.search(topic):
                continue
            offers = [i for i in self.get_publishers_info_by_topic(topic) if not self._own(i)]
            if not offers:
                continue  # only subscribers so far: wait for a publisher to learn its QoS
            self._subscribe(topic, types, offers)

    def _check_new_publishers(self, stats: TopicStats) -> None:
        """Warn (once per topic) when a publisher that joined later is not heard by the subscription.

        The subscription keeps its QoS, as rosbag2's does: re-subscribing could lose or
        duplicate messages, and the bag's offered_qos_profiles describe the first publishers.
        """
        count = self.count_publishers(stats.topic)
        if count == stats.publishers or stats.warned:
            return
        stats.publishers = count
        for info in self.get_publishers_info_by_topic(stats.topic):
            if not self._own(info) and not heard_by(stats.requested, info.qos_profile):
                stats.warned = True
                self._say(f"{stats.topic}: new publisher {info.node_namespace.rstrip('/')}/{info.node_name} offers "
                          f"{info.qos_profile.reliability.name.lower()}, {info.qos_profile.durability.name.lower()}, "
                          f"which the subscription ({stats.requested.reliability.name.lower()}, "
                          f"{stats.requested.durability.name.lower()}) does not hear: its messages are not recorded")
                return

    def _subscribe(self, topic: str, types: list[str], offers: list[TopicEndpointInfo]) -> None:
        known = [t for t in types if t in self.typestore.fielddefs]
        if not known:
            self._skip(topic, f"type {', '.join(types)} is not in rosbags' {self.store_name} typestore")
            return
        msgtype = known[0]
        if len(types) > 1:
            self._say(f"{topic}: published with several types ({', '.join(types)}); recording {msgtype}")
        try:
            cls = message_class(msgtype)
        except (ImportError, AttributeError, ValueError):
            self._skip(topic, f"the Python package for {msgtype} is not installed")
            return
        expected = self.typestore.hash_rihs01(msgtype)
        for info in offers:
            announced = endpoint_hash(info) if info.topic_type == msgtype else None
            if announced is not None and announced != expected:
                self._skip(topic, f"{msgtype} from {info.node_name} has type hash {announced}, rosbags' "
                                  f"{self.store_name} definition has {expected}: the bytes would not decode")
                return
        profiles = [i.qos_profile for i in offers if i.topic_type == msgtype]
        requested = subscription_qos(profiles)
        offered = [qos_to_rosbags(p) for p in profiles]
        connection = self.writer.add_connection(topic, msgtype, typestore=self.typestore,
                                                offered_qos_profiles=offered)
        stats = TopicStats(topic, msgtype, connection, offered, requested, publishers=self.count_publishers(topic))
        self.stats[topic] = stats
        self.create_subscription(cls, topic, self._callback(stats), requested, raw=True)
        self._say(f"subscribed {topic} ({msgtype}, {requested.reliability.name.lower()}, "
                  f"{requested.durability.name.lower()})")

    def _callback(self, stats: TopicStats) -> Callable[[bytes, Any], None]:
        def on_message(data: bytes, info: Any) -> None:
            if self.limit_reached:
                return
            received = int(info.get("received_timestamp", 0)) if isinstance(info, dict) else 0
            self.writer.write(stats.connection, received if received > 0 else time.time_ns(), data)
            stats.count += 1
            self.total += 1
            if self.config.max_messages is not None and self.total >= self.config.max_messages:
                self.limit_reached = True
        return on_message


# ------------------------------------------------------------------ the loop


class _StopFlag:
    """Set by SIGINT/SIGTERM (or a caller's Event); the recording loop polls it between spins."""

    def __init__(self, event: threading.Event | None) -> None:
        self.event = event or threading.Event()
        self.reason = ""

    def handler(self, signum: int, _frame: FrameType | None) -> None:
        self.reason = f"stopped by {signal.Signals(signum).name}"
        self.event.set()


def record(config: RecorderConfig, *, stop: threading.Event | None = None, err: TextIO | None = None,
           ros_args: Sequence[str] = ()) -> RecordResult:
    """Record until ``stop`` is set, SIGINT/SIGTERM (from the main thread), the duration or the count limit.

    Raises :class:`RecorderError` for bad input before anything is created. Whatever ends the
    recording, the bag is closed so it is readable; a write error (full disk) ends it early
    with ``result.error`` set.
    """
    err = err or sys.stderr
    exclude = check_config(config)
    distro = ros_distro()
    store = choose_store(distro)
    typestore = get_typestore(store)
    context = Context()
    try:
        rclpy.init(args=[PROG, *ros_args], context=context, signal_handler_options=SignalHandlerOptions.NO)
    except Exception as exc:  # rclpy raises its own RCLError types for bad --ros-args
        rclpy.try_shutdown(context=context)
        raise RecorderError(str(config.bag_dir), "--ros-args", f"rclpy refused them ({exc})") from None
    try:
        writer = open_writer(config, distro)
    except RecorderError:
        rclpy.try_shutdown(context=context)
        raise
    flag = _StopFlag(stop)
    previous: dict[int, Any] = {}
    result = RecordResult(config.bag_dir)
    node: LiveRecorderNode | None = None
    executor: SingleThreadedExecutor | None = None
    try:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, flag.handler)
        node = LiveRecorderNode(config, exclude, writer, typestore, store.name, context=context, err=err)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        print(f"{PROG}: recording to {config.bag_dir} (distro {distro}, rosbags typestore {store.name}); "
              "Ctrl-C to stop", file=err, flush=True)
        _loop(config, node, executor, flag, err)
        result.stop_reason = flag.reason
    except (OSError, WriterError) as exc:
        result.error = f"{config.bag_dir}: write failed, recording stopped ({exc})"
        result.stop_reason = "write error"
    finally:
        # The bag first: nothing spins any more, so no callback can write after this, and a
        # failure tearing ROS down below can no longer cost the recording.
        if node is not None:
            result.topics = dict(node.stats)
        try:
            writer.close()
        except (OSError, WriterError) as exc:
            result.error = f"{config.bag_dir}: cannot finish the bag ({exc})"
        for number, handler in previous.items():
            signal.signal(number, handler)
        if executor is not None and node is not None:
            executor.remove_node(node)
        if node is not None:
            node.destroy_node()
        if executor is not None:
            executor.shutdown()
        rclpy.try_shutdown(context=context)
    return result


def _loop(config: RecorderConfig, node: LiveRecorderNode, executor: SingleThreadedExecutor, flag: _StopFlag,
          err: TextIO) -> None:
    """Spin in short slices, so a signal, the duration, discovery and progress are all served on time."""
    start = time.monotonic()
    next_discovery = start
    next_progress = start + config.progress_period_s
    while not flag.event.is_set():
        now = time.monotonic()
        if config.duration_s is not None and now - start >= config.duration_s:
            flag.reason = f"duration {config.duration_s:g} s reached"
            break
        if node.limit_reached:
            flag.reason = f"{config.max_messages} messages recorded"
            break
        if now >= next_discovery:
            node.discover()
            next_discovery = now + config.discovery_period_s
        if config.progress_period_s > 0 and now >= next_progress:
            print(f"{PROG}: {now - start:.0f} s, {node.total} messages on {len(node.stats)} topics", file=err,
                  flush=True)
            next_progress = now + config.progress_period_s
        executor.spin_once(timeout_sec=SPIN_TIMEOUT_S)
    if not flag.reason:
        flag.reason = "stopped"


def summary_lines(result: RecordResult) -> list[str]:
    """One line per recorded topic (count, type), then the total."""
    width = max((len(t) for t in result.topics), default=0)
    lines = [f"  {t.topic:<{width}}  {t.count:>8} msgs  {t.msgtype}" for t in sorted(result.topics.values(),
                                                                                    key=lambda s: s.topic)]
    lines.append(f"{result.message_count} messages on {len(result.topics)} topics in {result.bag} "
                 f"({result.stop_reason})")
    return lines


# ------------------------------------------------------------------ command line


def _positive(kind: Callable[[str], Any], what: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {brief(text)}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


_EXAMPLES = """examples:
  navkit record out/run.mcap                                 every topic, until Ctrl-C
  navkit record out/run.mcap --topic scan --topic odom --duration 30
  navkit record out/run.mcap --exclude '^/camera/' --overwrite

The bag is the rosbag2 folder out/run/ (metadata.yaml + run.mcap): ros2 bag and rosbags read
the folder, Foxglove opens run.mcap. Subscriptions use the QoS the publishers offer (best
effort if any is, transient-local if all are, so latched maps are recorded); the offered QoS
profiles are stored with each topic, the ROS distro in the bag's custom_data. Ctrl-C or
SIGTERM closes the bag cleanly. Exit 0 when recorded, 1 when writing failed, 2 for bad input.
Anything after --ros-args goes to rclpy (remappings, -r __ns:=/robot1 ...)."""


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_EXAMPLES,
        description="Record live ROS 2 topics into an MCAP bag (like ros2 bag record, without ROS installed).")
    parser.add_argument("output", type=Path, help="bag to write: out/run.mcap (or out/run) makes the folder out/run/")
    parser.add_argument("--topic", action="append", default=[], metavar="NAME",
                        help="record this topic (repeatable); default: every topic with a publisher")
    parser.add_argument("--exclude", metavar="REGEX", default=None,
                        help="never record topics whose name matches this regular expression (searched)")
    parser.add_argument("--discovery-period", type=_positive(float, "seconds"), default=DEFAULT_DISCOVERY_PERIOD_S,
                        metavar="S", help="look for new topics every S seconds (default: %(default)s)")
    parser.add_argument("--duration", type=_positive(float, "seconds"), default=None, metavar="S",
                        help="stop after S seconds (default: until Ctrl-C)")
    parser.add_argument("--max-messages", type=_positive(int, "an integer"), default=None, metavar="N",
                        help="stop after N messages in all")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bag at the output path")
    parser.add_argument("--progress-period", type=float, default=DEFAULT_PROGRESS_PERIOD_S, metavar="S",
                        help="a progress line on stderr every S seconds; 0: none (default: %(default)s)")
    return parser


def config_from_args(args: argparse.Namespace) -> RecorderConfig:
    return RecorderConfig(output=args.output, topics=tuple(absolute_topic(t) for t in args.topic),
                          exclude=args.exclude, discovery_period_s=args.discovery_period, duration_s=args.duration,
                          max_messages=args.max_messages, overwrite=args.overwrite,
                          progress_period_s=args.progress_period)


def main(argv: list[str] | None = None) -> int:
    """``navkit record OUTPUT [--topic NAME ...] [--exclude REGEX] [--duration S] ... [--ros-args ...]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_args: list[str] = []
    if "--ros-args" in argv:
        cut = argv.index("--ros-args")
        argv, ros_args = argv[:cut], argv[cut:]
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    try:
        result = record(config, ros_args=ros_args)
    except RecorderError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the handlers were installed: nothing was recorded
        print(f"{PROG}: interrupted before recording started", file=sys.stderr)
        return 130
    for line in summary_lines(result):
        print(line)
    for topic in sorted({absolute_topic(t) for t in config.topics} - set(result.topics)):
        print(f"{PROG}: {topic}: never recorded (no publisher seen, or skipped above)", file=sys.stderr)
    if result.error:
        print(f"{PROG}: error: {result.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
