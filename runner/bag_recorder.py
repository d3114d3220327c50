"""Record navkit sensor data and commands as a ROS 2 bag (MCAP), without ROS installed.

Bag layout. ``rosbags``' rosbag2 writer always creates a *directory* (the bag) holding
``metadata.yaml`` and one storage file named after the directory (``<dir>/<dir>.mcap``)
and refuses to overwrite an existing directory. So a requested path ``out/run.mcap`` (or
``out/run``) becomes::

    out/run/
        metadata.yaml     # rosbag2 metadata: ros2 bag info/play, rosbags read the directory
        run.mcap          # self-contained MCAP with ros2msg schemas: Foxglove opens this file

That keeps both audiences happy: ROS 2 tools (``ros2 bag play out/run``) need the
directory, while Foxglove Studio and the ``mcap`` CLI open the bare ``run.mcap``.
:func:`bag_directory` computes the directory; :func:`read_bag` accepts any of the three
spellings (``out/run.mcap``, ``out/run``, ``out/run/run.mcap``).

Time. Message header stamps are the *sim* time carried by each navkit dataclass, and the
bag's receive timestamp is the same instant in nanoseconds, so playback with
``--clock`` reproduces the simulation's timeline.
"""
from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer, WriterError
from rosbags.typesys import Stores, get_typestore

from navkit.common.errors import FieldError
from navkit.common.sensor_data import CameraImage, LaserScan, Odometry, VelocityCommand

ODOM_TOPIC = "/odom"
SCAN_TOPIC = "/scan"
CMD_VEL_TOPIC = "/cmd_vel"
IMAGE_TOPIC = "/camera/image_raw"

_ODOM = "nav_msgs/msg/Odometry"
_SCAN = "sensor_msgs/msg/LaserScan"
_TWIST = "geometry_msgs/msg/TwistStamped"
_IMAGE = "sensor_msgs/msg/Image"


class BagError(FieldError):
    """A bag cannot be written or read; names the bag path and the topic (or field)."""


def bag_directory(path: str | Path) -> Path:
    """The rosbag2 directory for a requested path: ``run.mcap`` -> ``run/``."""
    path = Path(path)
    return path.with_suffix("") if path.suffix == ".mcap" else path


def check_bag_path(path: str | Path, option: str = "--record") -> Path:
    """The bag folder for ``path``, checked before anything runs: it must not exist yet
    (rosbag2 never overwrites) and its parent must be creatable; raises :class:`BagError`."""
    bag = bag_directory(path)
    if bag.exists():
        raise BagError(str(bag), option, "already exists; rosbag2 bags are never overwritten (choose another "
                                         "path or delete it)")
    parent = bag.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise BagError(str(bag), option, f"{parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BagError(str(bag), option, f"cannot write in {parent}")
    return bag


def stamp_to_ns(stamp: float) -> int:
    """Seconds (sim time) -> integer nanoseconds, rounded, so sec/nanosec never drift."""
    if not math.isfinite(stamp) or stamp < 0:
        raise ValueError(f"stamp must be a finite, non-negative time in seconds, got {stamp!r}")
    return round(stamp * 1e9)


class BagRecorder:
    """Writes ``/odom``, ``/scan``, ``/cmd_vel`` (and others) and ``/camera/image_raw``.

    ``camera_every_n`` keeps every n-th image only: raw RGB dominates bag size
    (224x224x3 at 10 Hz is ~1.5 MB/s), while the other topics are tiny.
    """

    def __init__(self, path: str | Path, *, camera_every_n: int = 1) -> None:
        if camera_every_n < 1:
            raise ValueError(f"camera_every_n must be >= 1, got {camera_every_n}")
        self.path = check_bag_path(path)
        self._camera_every_n = camera_every_n
        self._image_calls = 0
        self._typestore = get_typestore(Stores.ROS2_KILTED)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
            self._writer.open()
        except (OSError, WriterError) as exc:
            shutil.rmtree(self.path, ignore_errors=True)
            raise BagError(str(self.path), "<bag>", f"cannot create the bag ({exc})") from None
        self._connections: dict[str, Any] = {}
        self._closed = False

    @property
    def mcap_path(self) -> Path:
        """The MCAP file inside the bag directory (what Foxglove opens)."""
        return self.path / f"{self.path.name}.mcap"

    # -- message builders --------------------------------------------------

    def _header(self, stamp: float, frame_id: str) -> Any:
        t = self._typestore.types
        sec, nanosec = divmod(stamp_to_ns(stamp), 1_000_000_000)
        return t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                        frame_id=frame_id)

    def _write(self, topic: str, msgtype: str, msg: Any, stamp: float) -> None:
        if self._closed:
            raise BagError(str(self.path), topic, "recorder is closed")
        conn = self._connections.get(topic)
        if conn is None:
            conn = self._writer.add_connection(topic, msgtype, typestore=self._typestore)
            self._connections[topic] = conn
        elif conn.msgtype != msgtype:
            raise BagError(str(self.path), topic, f"already recorded as {conn.msgtype}, not {msgtype}")
        self._writer.write(conn, stamp_to_ns(stamp), self._typestore.serialize_cdr(msg, msgtype))

    def write_odom(self, odom: Odometry, topic: str = ODOM_TOPIC) -> None:
        """nav_msgs/Odometry: pose (yaw as a z-rotation quaternion) and body twist (v, omega)."""
        t = self._typestore.types
        half = 0.5 * odom.pose.yaw
        pose = t["geometry_msgs/msg/Pose"](
            position=t["geometry_msgs/msg/Point"](x=float(odom.pose.x), y=float(odom.pose.y), z=0.0),
            orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=math.sin(half), w=math.cos(half)))
        twist = t["geometry_msgs/msg/Twist"](linear=t["geometry_msgs/msg/Vector3"](x=float(odom.v), y=0.0, z=0.0),
                                             angular=t["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=float(odom.omega)))
        msg = t[_ODOM](header=self._header(odom.stamp, odom.frame_id), child_frame_id=odom.child_frame_id,
                       pose=t["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
                       twist=t["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=np.zeros(36)))
        self._write(topic, _ODOM, msg, odom.stamp)

    def write_scan(self, scan: LaserScan, topic: str = SCAN_TOPIC) -> None:
        """sensor_msgs/LaserScan with float32 ranges ('no return' stays inf) and no intensities."""
        ranges = np.asarray(scan.ranges, dtype=np.float32).ravel()
        msg = self._typestore.types[_SCAN](
            header=self._header(scan.stamp, scan.frame_id),
            angle_min=float(scan.angle_min),
            angle_max=float(scan.angle_min + scan.angle_increment * max(len(ranges) - 1, 0)),
            angle_increment=float(scan.angle_increment), time_increment=0.0, scan_time=0.0,
            range_min=float(scan.range_min), range_max=float(scan.range_max),
            ranges=ranges, intensities=np.zeros(0, dtype=np.float32))
        self._write(topic, _SCAN, msg, scan.stamp)

    def write_cmd_vel(self, cmd: VelocityCommand, topic: str = CMD_VEL_TOPIC) -> None:
        """geometry_msgs/TwistStamped in base_link: linear.x = v, angular.z = omega."""
        t = self._typestore.types
        twist = t["geometry_msgs/msg/Twist"](linear=t["geometry_msgs/msg/Vector3"](x=float(cmd.v), y=0.0, z=0.0),
                                             angular=t["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=float(cmd.omega)))
        self._write(topic, _TWIST, t[_TWIST](header=self._header(cmd.stamp, "base_link"), twist=twist), cmd.stamp)

    def write_image(self, image: CameraImage, topic: str = IMAGE_TOPIC) -> bool:
        """sensor_msgs/Image rgb8 for every ``camera_every_n``-th call; returns whether written.

        Depth is not recorded (yet): only ``image.rgb``.
        """
        self._image_calls += 1
        if (self._image_calls - 1) % self._camera_every_n:
            return False
        rgb = np.asarray(image.rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise BagError(str(self.path), topic, f"expected an (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
        height, width, _ = rgb.shape
        msg = self._typestore.types[_IMAGE](
            header=self._header(image.stamp, image.frame_id), height=height, width=width, encoding="rgb8",
            is_bigendian=0, step=3 * width, data=np.ascontiguousarray(rgb).reshape(-1))
        self._write(topic, _IMAGE, msg, image.stamp)
        return True

    # -- lifetime ------------------------------------------------------------

    def close(self) -> None:
        """Finish the MCAP file and write metadata.yaml; safe to call twice.

        A failure (full disk) abandons the bag instead: a half-written folder without
        ``metadata.yaml`` would only block the next attempt at the same path.
        """
        if not self._closed:
            self._closed = True
            try:
                self._writer.close()
            except (OSError, WriterError):
                self.abandon()
                raise

    def abandon(self) -> None:
        """Give up on this bag (a write failed): close what can be closed and delete the folder."""
        self._closed = True
        try:
            self._writer.close()
        except (OSError, WriterError, ValueError):
            pass
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> BagRecorder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _open_reader(path: str | Path) -> Reader:
    path = Path(path)
    if path.is_file() and path.suffix == ".mcap":
        path = path.parent  # the storage file inside a bag directory
    directory = bag_directory(path) if not path.is_dir() else path
    if not (directory / "metadata.yaml").is_file():
        raise BagError(str(path), "<bag>", "not a rosbag2 directory (no metadata.yaml)")
    return Reader(directory)


def read_bag_raw(path: str | Path) -> dict[str, list[tuple[int, bytes]]]:
    """Per topic, ``(receive time ns, CDR bytes)`` in bag order."""
    out: dict[str, list[tuple[int, bytes]]] = {}
    with _open_reader(path) as reader:
        for conn, timestamp, raw in reader.messages():
            out.setdefault(conn.topic, []).append((timestamp, bytes(raw)))
    return out


def read_bag(path: str | Path) -> dict[str, list[Any]]:
    """Per topic, the deserialized messages (rosbags' ROS 2 Kilted types) in bag order."""
    typestore = get_typestore(Stores.ROS2_KILTED)
    out: dict[str, list[Any]] = {}
    with _open_reader(path) as reader:
        for conn, _timestamp, raw in reader.messages():
            out.setdefault(conn.topic, []).append(typestore.deserialize_cdr(raw, conn.msgtype))
    return out
