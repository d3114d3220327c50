"""map_server YAML + PGM maps: round trip, thresholds, and clear errors for bad files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from navkit.common.map_file import MapFileError, read_map_file, write_map_file
from navkit.common.occupancy_grid import OccupancyGrid

REPO = Path(__file__).resolve().parents[2]


def _grid() -> OccupancyGrid:
    return OccupancyGrid.from_shapes((0.0, 0.0, 4.0, 2.0), boxes=[(1.0, 0.5, 0.6, 0.4, 0.3)],
                                     circles=[(3.0, 1.4, 0.3)], resolution=0.1)


def test_round_trip_keeps_every_cell_origin_and_resolution(tmp_path: Path) -> None:
    grid = _grid()
    path = write_map_file(grid, tmp_path / "m.yaml")
    back = read_map_file(path)
    assert back.resolution == grid.resolution and back.origin == grid.origin
    assert back.static.any() and np.array_equal(back.static, grid.static)  # rows flipped back: y up


def test_pixel_thresholds_and_unknown_cells(tmp_path: Path) -> None:
    # 1 x 3 image: free (254), unknown (205, ROS's grey), occupied (0).
    (tmp_path / "m.pgm").write_bytes(b"P5\n3 1\n255\n" + bytes([254, 205, 0]))
    (tmp_path / "m.yaml").write_text("image: m.pgm\nresolution: 0.5\norigin: [1.0, 2.0, 0.0]\nnegate: 0\n"
                                     "occupied_thresh: 0.65\nfree_thresh: 0.196\n")
    assert read_map_file(tmp_path / "m.yaml").static.tolist() == [[False, True, True]]
    assert read_map_file(tmp_path / "m.yaml", unknown_is_occupied=False).static.tolist() == [[False, False, True]]


@pytest.mark.parametrize(("yaml_text", "field", "problem"), [
    ("resolution: 0.05\norigin: [0, 0, 0]\n", "image", "missing"),
    ("image: m.pgm\nresolution: -1\norigin: [0, 0, 0]\n", "resolution", "metres per pixel"),
    ("image: m.pgm\nresolution: 0.05\norigin: [0, 0, 0.5]\n", "origin", "rotated"),
    ("image: nope.pgm\nresolution: 0.05\norigin: [0, 0, 0]\n", "image", "cannot read"),
    ("image: m.png\nresolution: 0.05\norigin: [0, 0, 0]\n", "image", "only PGM"),
    ("image: bad.pgm\nresolution: 0.05\norigin: [0, 0, 0]\n", "image", "expected 6 pixels"),
])
def test_bad_map_files_name_the_field(tmp_path: Path, yaml_text: str, field: str, problem: str) -> None:
    (tmp_path / "m.pgm").write_bytes(b"P5\n3 2\n255\n" + bytes(6))
    (tmp_path / "bad.pgm").write_bytes(b"P5\n3 2\n255\n" + bytes(4))
    (tmp_path / "m.yaml").write_text(yaml_text)
    with pytest.raises(MapFileError) as err:
        read_map_file(tmp_path / "m.yaml")
    assert err.value.field == field and problem in err.value.problem
    assert err.value.source == str(tmp_path / "m.yaml")
