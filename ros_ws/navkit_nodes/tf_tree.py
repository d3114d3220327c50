"""A small TF buffer, listener and broadcasters: the part of tf2_ros navkit's nodes need.

tf2_ros is not on PyPI, yet a node that takes a scan in ``base_scan`` and a path in
``map`` must chain ``map -> odom -> base_link -> base_scan`` at the scan's stamp. This
module does that on the wire protocol tf2_ros defines (REP-105 frames, ``/tf`` and
``/tf_static`` carrying ``tf2_msgs/msg/TFMessage``), so navkit nodes interoperate with
robot_state_publisher, Nav2 and RViz unchanged.

* :class:`TfBuffer` holds the tree. Each child frame has one parent (TF is a tree, see
  REP-105); a static edge holds one transform forever, a dynamic edge a time-ordered
  history of ``cache_time_s`` seconds. :meth:`TfBuffer.lookup` walks from both frames up
  to their common ancestor, interpolating each dynamic edge at the requested time
  (linear translation, slerp rotation: full 3-D, so a lidar mounted upside down or tilted
  is right). It never raises: an unknown frame, a broken chain or a time outside an edge's
  history gives ``None``, and :meth:`TfBuffer.why` says which frame or edge was missing.
* :class:`TfListener` feeds a buffer from ``/tf`` and ``/tf_static`` with the QoS tf2_ros
  uses; :class:`TfBroadcaster` and :class:`StaticTfBroadcaster` publish.

Times are float seconds (as :func:`~navkit.ros_ws.navkit_nodes.conversions.from_time`
gives them); ``stamp=None`` asks for the latest time every dynamic edge of the chain
knows, tf2's "time zero". Frame ids follow tf2: no leading ``/``.

``tf2_msgs`` is imported only when a listener or broadcaster is built, so the buffer and
the message helpers work (and are tested) without it.
"""
from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from geometry_msgs.msg import TransformStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from navkit.common.geometry import Pose2D, RigidTransform, yaw_to_quaternion
from navkit.ros_ws.navkit_nodes.conversions import from_time, to_time

TF_TOPIC = "/tf"
TF_STATIC_TOPIC = "/tf_static"
DEFAULT_CACHE_TIME_S = 10.0
"""How much history a dynamic edge keeps (tf2's default buffer length)."""

DYNAMIC_LISTENER_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                                  durability=DurabilityPolicy.VOLATILE)
"""tf2_ros's ``DynamicListenerQoS``: a burst of transforms must not drop the one a lookup needs."""
STATIC_LISTENER_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
"""tf2_ros's ``StaticListenerQoS``: transient local, so a listener that starts late still gets the statics."""
DYNAMIC_BROADCASTER_QOS = DYNAMIC_LISTENER_QOS
STATIC_BROADCASTER_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                                    durability=DurabilityPolicy.TRANSIENT_LOCAL)
"""tf2_ros's ``StaticBroadcasterQoS``: depth 1 suffices because every send carries all the statics."""

_IDENTITY_ROTATION = (0.0, 0.0, 0.0, 1.0)


# ------------------------------------------------------------------ 3-D transform algebra


def quaternion_multiply(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float, float]:
    """Hamilton product ``a * b`` of (x, y, z, w) quaternions: rotate by ``b``, then by ``a``."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz)


def _normalized(q: Sequence[float]) -> tuple[float, float, float, float]:
    n = math.sqrt(sum(c * c for c in q))
    x, y, z, w = (c / n for c in q)
    return x, y, z, w


def slerp(a: Sequence[float], b: Sequence[float], fraction: float) -> tuple[float, float, float, float]:
    """Spherical interpolation between unit quaternions along the shorter arc (``q`` and ``-q`` are one rotation)."""
    qa, qb = np.asarray(_normalized(a)), np.asarray(_normalized(b))
    dot = float(np.dot(qa, qb))
    if dot < 0.0:
        qb, dot = -qb, -dot
    if dot > 0.9995:  # nearly parallel: lerp is exact enough and avoids dividing by sin(~0)
        q = qa + fraction * (qb - qa)
    else:
        theta = math.acos(min(dot, 1.0))
        q = (math.sin((1.0 - fraction) * theta) * qa + math.sin(fraction * theta) * qb) / math.sin(theta)
    return _normalized(q.tolist())


def compose_transforms(a: RigidTransform, b: RigidTransform) -> RigidTransform:
    """``a ∘ b``: ``a`` is ``P <- M``, ``b`` is ``M <- C``; the result is ``P <- C``.

    Lives here rather than in :mod:`navkit.common.geometry` because only TF chains need
    full 3-D composition; the frames are taken from the operands without checking that
    ``a.child_frame == b.parent_frame`` (the buffer's walk guarantees it).
    """
    x, y, z = a.apply(np.asarray(b.translation))[0]
    rotation = _normalized(quaternion_multiply(a.rotation, b.rotation))
    return RigidTransform((float(x), float(y), float(z)), rotation, parent_frame=a.parent_frame,
                          child_frame=b.child_frame)


def invert_transform(t: RigidTransform) -> RigidTransform:
    """``P <- C`` -> ``C <- P``: rotation conjugated, translation ``-Rᵀ t``."""
    x, y, z, w = _normalized(t.rotation)
    translation = -(t.matrix.T @ np.asarray(t.translation, dtype=float))
    return RigidTransform((float(translation[0]), float(translation[1]), float(translation[2])), (-x, -y, -z, w),
                          parent_frame=t.child_frame, child_frame=t.parent_frame)


def interpolate_transforms(a: RigidTransform, b: RigidTransform, fraction: float) -> RigidTransform:
    """The transform ``fraction`` of the way from ``a`` (0) to ``b`` (1); frames from ``a``."""
    ta, tb = np.asarray(a.translation, dtype=float), np.asarray(b.translation, dtype=float)
    translation = ta + fraction * (tb - ta)
    return RigidTransform((float(translation[0]), float(translation[1]), float(translation[2])),
                          slerp(a.rotation, b.rotation, fraction), parent_frame=a.parent_frame,
                          child_frame=a.child_frame)


def identity_transform(frame: str) -> RigidTransform:
    return RigidTransform(parent_frame=frame, child_frame=frame)


# ------------------------------------------------------------------ the buffer


@dataclass
class _Edge:
    """Everything known about one child frame's link to its parent."""

    parent: str
    static: bool
    stamps: list[float] = field(default_factory=list)
    transforms: list[RigidTransform] = field(default_factory=list)

    def describe(self, child: str) -> str:
        return f"{self.parent}->{child}"

    def span(self) -> str:
        if not self.stamps:
            return "no data"
        if len(self.stamps) == 1:
            return f"one sample at t={self.stamps[0]:.6f}"
        return f"history t={self.stamps[0]:.6f}..{self.stamps[-1]:.6f}"

    def at(self, stamp: float) -> RigidTransform | None:
        """The edge's transform at ``stamp``: exact, interpolated, or None outside the history."""
        if self.static:
            return self.transforms[0]
        stamps = self.stamps
        if not stamps or stamp < stamps[0] or stamp > stamps[-1]:
            return None
        i = bisect.bisect_left(stamps, stamp)
        if stamps[i] == stamp:
            return self.transforms[i]
        t0, t1 = stamps[i - 1], stamps[i]
        return interpolate_transforms(self.transforms[i - 1], self.transforms[i], (stamp - t0) / (t1 - t0))


@dataclass(frozen=True)
class _Chain:
    """The edges from ``source`` and from ``target`` up to their common ancestor."""

    source_up: list[str]
    """Child frames whose edges lead from the source up to the ancestor (source first)."""
    target_up: list[str]


class TfBuffer:
    """The TF tree: static edges forever, dynamic ones as a ``cache_time_s`` history. Thread-safe.

    A listener's callbacks write while a node's timers read, possibly from another
    executor thread, so every access holds one lock; lookups are short (a walk of a few
    edges) and never block on the network.
    """

    def __init__(self, cache_time_s: float = DEFAULT_CACHE_TIME_S) -> None:
        if not (cache_time_s > 0.0 and math.isfinite(cache_time_s)):
            raise ValueError(f"cache_time_s must be a positive number, got {cache_time_s!r}")
        self.cache_time_s = cache_time_s
        self._edges: dict[str, _Edge] = {}
        self._lock = threading.Lock()
        self.rejected = 0
        """Transforms refused by :meth:`set_transform` (bad frame ids, non-finite values)."""
        self.last_rejection = ""
        self.reparented = 0
        """Times a child frame arrived with a different parent than before (the newest parent wins)."""

    # ---------------------------------------------------------------- writing

    def set_transform(self, transform: RigidTransform, stamp: float, *, static: bool = False) -> bool:
        """Add ``transform`` (``parent <- child``) at ``stamp``; False (counted, never raised) when refused.

        Data from the network must not crash a node, so a bad transform is refused here
        with the reason in :attr:`last_rejection`. A child frame that arrives with a new
        parent, or switches between static and dynamic, replaces its old edge (the tree
        keeps one parent per child, the newest one). Dynamic samples older than the edge's
        newest minus ``cache_time_s`` are dropped.
        """
        parent, child = transform.parent_frame, transform.child_frame
        problem = _frame_problem(parent, "parent") or _frame_problem(child, "child")
        if not problem and parent == child:
            problem = f"frame {child!r} cannot be its own parent"
        if not problem and not math.isfinite(stamp):
            problem = f"non-finite stamp {stamp!r}"
        if problem:
            with self._lock:
                self.rejected += 1
                self.last_rejection = f"{parent}->{child}: {problem}"
            return False
        with self._lock:
            edge = self._edges.get(child)
            if edge is None or edge.parent != parent or edge.static != static:
                if edge is not None and edge.parent != parent:
                    self.reparented += 1
                edge = self._edges[child] = _Edge(parent, static)
            if static:
                edge.stamps, edge.transforms = [stamp], [transform]
                return True
            if edge.stamps and stamp < edge.stamps[-1] - self.cache_time_s:
                return True  # older than the history: nothing would ever look it up
            i = bisect.bisect_left(edge.stamps, stamp)
            if i < len(edge.stamps) and edge.stamps[i] == stamp:
                edge.transforms[i] = transform
            else:
                edge.stamps.insert(i, stamp)
                edge.transforms.insert(i, transform)
            keep_from = bisect.bisect_left(edge.stamps, edge.stamps[-1] - self.cache_time_s)
            if keep_from:
                del edge.stamps[:keep_from], edge.transforms[:keep_from]
            return True

    def clear(self) -> None:
        """Forget the dynamic history (a simulation reset, a bag loop); statics stay, as in tf2."""
        with self._lock:
            self._edges = {child: edge for child, edge in self._edges.items() if edge.static}

    # ---------------------------------------------------------------- reading

    def frames(self) -> set[str]:
        """Every frame named as a parent or a child."""
        with self._lock:
            return set(self._edges) | {edge.parent for edge in self._edges.values()}

    def parent_of(self, frame: str) -> str | None:
        with self._lock:
            edge = self._edges.get(frame)
            return edge.parent if edge is not None else None

    def lookup(self, target_frame: str, source_frame: str, stamp: float | None = None) -> RigidTransform | None:
        """The transform ``target <- source`` (data in ``source`` -> ``target``) at ``stamp``, or None.

        ``stamp=None`` means the latest time all dynamic edges of the chain have in
        common (:meth:`latest_common_time`). The result's ``parent_frame`` is the target
        and its ``child_frame`` the source, like tf2's ``lookupTransform(target, source, t)``.
        """
        return self._resolve(target_frame, source_frame, stamp)[0]

    def can_transform(self, target_frame: str, source_frame: str, stamp: float | None = None) -> bool:
        return self.lookup(target_frame, source_frame, stamp) is not None

    def why(self, target_frame: str, source_frame: str, stamp: float | None = None) -> str:
        """Why :meth:`lookup` gives None for these arguments: the unknown frame or the edge without data.

        The empty string when the lookup succeeds, so a node can log ``why(...)`` only when non-empty.
        """
        return self._resolve(target_frame, source_frame, stamp)[1]

    def latest_common_time(self, target_frame: str, source_frame: str) -> float | None:
        """The newest stamp every dynamic edge between the frames has reached; None when they are not connected.

        A chain of static edges only is valid at any time: its common time is 0.0 (tf2's
        "time zero" convention). An edge's older history does not matter here: the time
        may still fall before another edge's oldest sample, which :meth:`lookup` reports.
        """
        with self._lock:
            chain, _ = self._chain(target_frame, source_frame)
            if chain is None:
                return None
            return self._common_time(chain)

    # ---------------------------------------------------------------- the walk (lock held)

    def _ancestors(self, frame: str) -> tuple[list[str], str]:
        """Child frames on the way from ``frame`` to its root (``frame`` first), and the reason if a loop was found."""
        path: list[str] = []
        seen = {frame}
        current = frame
        while current in self._edges:
            path.append(current)
            current = self._edges[current].parent
            if current in seen:
                return path, f"the tree has a loop through frame {current!r}"
            seen.add(current)
        return path, ""

    def _chain(self, target: str, source: str) -> tuple[_Chain | None, str]:
        for frame, role in ((target, "target"), (source, "source")):
            problem = _frame_problem(frame, role)
            if problem:
                return None, problem
        known = set(self._edges) | {edge.parent for edge in self._edges.values()}
        for frame, role in ((target, "target"), (source, "source")):
            if target != source and frame not in known:
                return None, f"{role} frame {frame!r} is unknown ({_known_frames(known)})"
        source_up, loop = self._ancestors(source)
        if loop:
            return None, loop
        target_up, loop = self._ancestors(target)
        if loop:
            return None, loop
        source_frames = [source] + [self._edges[c].parent for c in source_up]
        target_frames = [target] + [self._edges[c].parent for c in target_up]
        on_source_side = {frame: i for i, frame in enumerate(source_frames)}
        for j, frame in enumerate(target_frames):
            if frame in on_source_side:
                return _Chain(source_up[:on_source_side[frame]], target_up[:j]), ""
        return None, (f"frames {target!r} and {source!r} are not connected: {target!r} is in the tree rooted at "
                      f"{target_frames[-1]!r}, {source!r} in the tree rooted at {source_frames[-1]!r}")

    def _common_time(self, chain: _Chain) -> float:
        newest = [self._edges[c].stamps[-1] for c in chain.source_up + chain.target_up if not self._edges[c].static]
        return min(newest) if newest else 0.0

    def _resolve(self, target: str, source: str, stamp: float | None) -> tuple[RigidTransform | None, str]:
        if stamp is not None and not math.isfinite(stamp):
            return None, f"non-finite lookup time {stamp!r}"
        if target == source and not _frame_problem(target, "target"):
            return identity_transform(target), ""
        with self._lock:
            chain, problem = self._chain(target, source)
            if chain is None:
                return None, problem
            when = self._common_time(chain) if stamp is None else stamp
            source_tf, problem = self._compose_up(source, chain.source_up, when)
            if source_tf is None:
                return None, problem
            target_tf, problem = self._compose_up(target, chain.target_up, when)
            if target_tf is None:
                return None, problem
        result = compose_transforms(invert_transform(target_tf), source_tf)
        return RigidTransform(result.translation, result.rotation, parent_frame=target, child_frame=source), ""

    def _compose_up(self, frame: str, children: list[str], stamp: float) -> tuple[RigidTransform | None, str]:
        """``ancestor <- frame`` along the edges ``children`` (``frame``'s own edge first)."""
        result = identity_transform(frame)
        for child in children:
            edge = self._edges[child]
            t = edge.at(stamp)
            if t is None:
                return None, (f"edge {edge.describe(child)} has no data at t={stamp:.6f} ({edge.span()}, "
                              f"cache {self.cache_time_s:g} s)")
            result = compose_transforms(t, result)
        return result, ""


def _frame_problem(frame: str, role: str) -> str:
    if not frame:
        return f"empty {role} frame id"
    if frame.startswith("/"):
        return f"{role} frame id {frame!r} starts with '/' (tf2 frame ids have no leading slash)"
    return ""


def _known_frames(known: Iterable[str]) -> str:
    names = sorted(known)
    if not names:
        return "the buffer is empty"
    if len(names) > 12:
        return f"known: {', '.join(names[:12])}, ... ({len(names)} in all)"
    return f"known: {', '.join(names)}"


# ------------------------------------------------------------------ messages


def transform_msg(parent: str, child: str, stamp: float, transform: RigidTransform | Pose2D) -> TransformStamped:
    """A ``TransformStamped`` for the edge ``parent -> child`` (``transform`` maps child data into parent).

    A :class:`Pose2D` is the planar case (z = 0, rotation about z); the frames given here
    win over a :class:`RigidTransform`'s own, so one transform can be sent under any names.
    """
    msg = TransformStamped()
    msg.header.stamp = to_time(stamp)
    msg.header.frame_id = parent
    msg.child_frame_id = child
    if isinstance(transform, Pose2D):
        translation: tuple[float, ...] = (transform.x, transform.y, 0.0)
        rotation: tuple[float, ...] = yaw_to_quaternion(transform.yaw)
    else:
        translation, rotation = transform.translation, _normalized(transform.rotation)
    t, q = msg.transform.translation, msg.transform.rotation
    t.x, t.y, t.z = (float(v) for v in translation)
    q.x, q.y, q.z, q.w = (float(v) for v in rotation)
    return msg


def transform_from_msg(msg: TransformStamped) -> tuple[float, RigidTransform]:
    """``(stamp, transform)`` from a ``TransformStamped``; ValueError on a non-finite or zero rotation."""
    t, q = msg.transform.translation, msg.transform.rotation
    transform = RigidTransform((t.x, t.y, t.z), (q.x, q.y, q.z, q.w), parent_frame=msg.header.frame_id,
                               child_frame=msg.child_frame_id)
    return from_time(msg.header.stamp), transform


def tf2_msgs_available() -> bool:
    """Whether ``tf2_msgs`` can be imported (the listener and broadcasters need it; the buffer does not)."""
    try:
        _tf_message_type()
    except ImportError:
        return False
    return True


def _tf_message_type() -> Any:
    try:
        from tf2_msgs.msg import TFMessage
    except ImportError as exc:
        raise ImportError("navkit's TF listener and broadcasters need the tf2_msgs package "
                          "(pip: ros-kilted-tf2-msgs)") from exc
    return TFMessage


# ------------------------------------------------------------------ listener and broadcasters


class TfListener:
    """Feeds a :class:`TfBuffer` from ``/tf`` and ``/tf_static`` through ``node``'s executor.

    Unlike tf2_ros's listener it starts no node or thread of its own: the node's
    executor delivers the messages, so a single-threaded node reads a consistent buffer
    between callbacks. Malformed transforms (non-finite, zero quaternion, bad frame ids)
    are counted in :attr:`rejected` and the buffer's own counter, never raised.
    """

    def __init__(self, node: Node, buffer: TfBuffer) -> None:
        tf_message = _tf_message_type()
        self.buffer = buffer
        self.rejected = 0
        self.received = 0
        self._node = node
        self._subs = [
            node.create_subscription(tf_message, TF_TOPIC, lambda msg: self._on_message(msg, static=False),
                                     DYNAMIC_LISTENER_QOS),
            node.create_subscription(tf_message, TF_STATIC_TOPIC, lambda msg: self._on_message(msg, static=True),
                                     STATIC_LISTENER_QOS),
        ]

    def _on_message(self, msg: Any, *, static: bool) -> None:
        for transform in msg.transforms:
            self.received += 1
            try:
                stamp, rigid = transform_from_msg(transform)
            except ValueError:
                self.rejected += 1
                continue
            if not self.buffer.set_transform(rigid, stamp, static=static):
                self.rejected += 1

    def destroy(self) -> None:
        for sub in self._subs:
            self._node.destroy_subscription(sub)
        self._subs = []


class TfBroadcaster:
    """Publishes dynamic transforms on ``/tf``."""

    def __init__(self, node: Node) -> None:
        self._tf_message = _tf_message_type()
        self._pub = node.create_publisher(self._tf_message, TF_TOPIC, DYNAMIC_BROADCASTER_QOS)

    def send(self, transforms: TransformStamped | Iterable[TransformStamped]) -> None:
        items = [transforms] if isinstance(transforms, TransformStamped) else list(transforms)
        self._pub.publish(self._tf_message(transforms=items))


class StaticTfBroadcaster:
    """Publishes static transforms on ``/tf_static`` (transient local), accumulating them.

    The topic keeps one message per publisher, so each send re-publishes every static
    this broadcaster has seen, keyed by child frame (a second send for a child replaces
    it), as tf2_ros's ``StaticTransformBroadcaster`` does: a late listener gets them all.
    """

    def __init__(self, node: Node) -> None:
        self._tf_message = _tf_message_type()
        self._pub = node.create_publisher(self._tf_message, TF_STATIC_TOPIC, STATIC_BROADCASTER_QOS)
        self._by_child: dict[str, TransformStamped] = {}

    def send(self, transforms: TransformStamped | Iterable[TransformStamped]) -> None:
        items = [transforms] if isinstance(transforms, TransformStamped) else list(transforms)
        for item in items:
            self._by_child[item.child_frame_id] = item
        self._pub.publish(self._tf_message(transforms=list(self._by_child.values())))
