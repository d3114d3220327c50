"""Occupancy maps in map_server's format: a YAML file naming a PGM image, as ROS 2 robots keep them.

The YAML holds ``image`` (path relative to the YAML), ``resolution`` (m/pixel),
``origin`` [x, y, yaw] (the pose of the image's lower-left pixel), ``negate``,
``occupied_thresh``, ``free_thresh`` and optionally ``mode`` (trinary, scale, raw). A
pixel p (0..255) has occupancy probability (255 - p) / 255 (p / 255 when negated);
above ``occupied_thresh`` it is occupied, below ``free_thresh`` free, in between unknown.
Image row 0 is the top of the map (largest y); navkit's grid row 0 is the bottom.

Unknown cells are planned as occupied by default: a robot must not plan through space
nobody mapped. Maps with a rotated origin (yaw != 0) are refused rather than misread.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from navkit.common.errors import FieldError, brief
from navkit.common.occupancy_grid import OccupancyGrid
from navkit.common.yaml_file import read_yaml_file

MAX_MAP_PIXELS = 25_000_000


class MapFileError(FieldError):
    """A map YAML or its image is missing or malformed; names the file and field."""


@dataclass(frozen=True)
class MapFileConfig:
    """Plugin ``map_file`` of the ``map_source`` slot (parameter prefix ``map_source``)."""

    file: str = ""
    """map_server YAML file (``map.yaml``) naming a PGM image."""
    unknown_is_occupied: bool = True
    """Plan unknown cells as occupied (safe) or as free."""


def _read_pgm(path: Path, source: str) -> np.ndarray:
    """A binary (P5) or ASCII (P2) 8-bit PGM as a (H, W) uint8 array."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MapFileError(source, "image", f"cannot read {path} ({exc.strerror or exc})") from None
    tokens: list[bytes] = []
    pos = 0
    while len(tokens) < 4:  # magic, width, height, maxval, skipping comments
        while pos < len(data) and data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.find(b"\n", pos) + 1 or len(data)
            continue
        start = pos
        while pos < len(data) and not data[pos:pos + 1].isspace():
            pos += 1
        if start == pos:
            raise MapFileError(source, "image", f"{path} is not a PGM image (header cut short)")
        tokens.append(data[start:pos])
    magic = tokens[0]
    try:
        width, height, maxval = (int(t) for t in tokens[1:])
    except ValueError:
        raise MapFileError(source, "image", f"{path}: PGM header is not numeric") from None
    if magic not in (b"P5", b"P2") or not (0 < maxval < 256) or width <= 0 or height <= 0:
        raise MapFileError(source, "image", f"{path}: only 8-bit P5/P2 PGM images are supported")
    if width * height > MAX_MAP_PIXELS:
        raise MapFileError(source, "image", f"{path}: {width}x{height} pixels exceed {MAX_MAP_PIXELS:,}")
    if magic == b"P5":
        body = data[pos + 1: pos + 1 + width * height]
        if len(body) != width * height:
            raise MapFileError(source, "image", f"{path}: expected {width * height} pixels, found {len(body)}")
        pixels = np.frombuffer(body, dtype=np.uint8)
    else:
        values = data[pos:].split()
        if len(values) != width * height:
            raise MapFileError(source, "image", f"{path}: expected {width * height} pixels, found {len(values)}")
        pixels = np.array([int(v) for v in values], dtype=np.int64).clip(0, 255).astype(np.uint8)
    scale = 255.0 / maxval
    return (pixels.reshape(height, width) * scale).round().astype(np.uint8)


def read_map_file(path: str | Path, *, unknown_is_occupied: bool = True) -> OccupancyGrid:
    """An :class:`OccupancyGrid` from a map_server YAML + PGM; :class:`MapFileError` on any problem."""
    path = Path(path)
    src = str(path)
    doc = read_yaml_file(path, MapFileError, "map file")
    if not isinstance(doc, dict):
        raise MapFileError(src, "<top level>", "expected a mapping (image, resolution, origin, ...)")
    for key in ("image", "resolution", "origin"):
        if key not in doc:
            raise MapFileError(src, key, "missing required field")
    resolution = doc["resolution"]
    if isinstance(resolution, bool) or not isinstance(resolution, (int, float)) or not 0.001 <= resolution <= 10.0:
        raise MapFileError(src, "resolution", f"expected metres per pixel in [0.001, 10], got {brief(resolution)}")
    origin = doc["origin"]
    if (not isinstance(origin, list) or len(origin) != 3
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in origin)):
        raise MapFileError(src, "origin", f"expected [x, y, yaw], got {brief(origin)}")
    if abs(origin[2]) > 1e-9:
        raise MapFileError(src, "origin", "a rotated map origin (yaw != 0) is not supported")
    thresholds = {}
    for key, default in (("occupied_thresh", 0.65), ("free_thresh", 0.196)):
        value = doc.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise MapFileError(src, key, f"expected a probability in [0, 1], got {brief(value)}")
        thresholds[key] = float(value)
    negate = doc.get("negate", 0)
    if negate not in (0, 1, True, False):
        raise MapFileError(src, "negate", f"expected 0 or 1, got {brief(negate)}")
    mode = doc.get("mode", "trinary")
    if mode not in ("trinary", "scale", "raw"):
        raise MapFileError(src, "mode", f"expected trinary, scale or raw, got {brief(mode)}")
    image_name = doc["image"]
    if not isinstance(image_name, str) or not image_name:
        raise MapFileError(src, "image", f"expected an image file name, got {brief(image_name)}")
    image_path = Path(image_name) if Path(image_name).is_absolute() else path.parent / image_name
    if image_path.suffix.lower() != ".pgm":
        raise MapFileError(src, "image", f"{image_name}: only PGM images are supported")
    pixels = _read_pgm(image_path, src)
    if mode == "raw":
        occupancy = pixels.astype(float) / 100.0  # raw: the pixel is the ROS occupancy value 0..100
    else:
        occupancy = pixels.astype(float) / 255.0 if negate else (255.0 - pixels.astype(float)) / 255.0
    occupied = occupancy > thresholds["occupied_thresh"]
    unknown = ~occupied & (occupancy >= thresholds["free_thresh"])
    static = occupied | (unknown & unknown_is_occupied)
    return OccupancyGrid(np.flipud(static), float(resolution), (float(origin[0]), float(origin[1])))


def write_map_file(grid: OccupancyGrid, yaml_path: str | Path) -> Path:
    """``grid``'s static layer as map_server YAML + PGM (occupied 0, free 254), beside each other."""
    yaml_path = Path(yaml_path)
    image = yaml_path.with_suffix(".pgm")
    pixels = np.where(np.flipud(grid.static), 0, 254).astype(np.uint8)
    h, w = pixels.shape
    yaml_path.parent.mkdir(parents=True, exist_ok=True)
    image.write_bytes(f"P5\n# navkit map\n{w} {h}\n255\n".encode() + pixels.tobytes())
    yaml_path.write_text(f"image: {image.name}\nmode: trinary\nresolution: {grid.resolution}\n"
                         f"origin: [{grid.origin[0]}, {grid.origin[1]}, 0.0]\nnegate: 0\n"
                         "occupied_thresh: 0.65\nfree_thresh: 0.196\n")
    return yaml_path


class MapFileSource:
    """:class:`~navkit.common.interfaces.MapSource` reading a map_server file."""

    def __init__(self, config: MapFileConfig) -> None:
        if not config.file:
            raise MapFileError("map_source", "file", "the map_file source needs map_source.file (a map.yaml)")
        self.config = config

    def load(self) -> OccupancyGrid:
        return read_map_file(self.config.file, unknown_is_occupied=self.config.unknown_is_occupied)
