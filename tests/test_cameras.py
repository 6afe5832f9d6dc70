"""The camera convention, end to end in numbers: poses, projection, orbits, model frame order, nerfstudio I/O."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import sgm_fixture
from safetensors.torch import load_file

from svd3d.cameras import (
    CameraFrame,
    CustomOrbit,
    DynamicOrbit,
    Intrinsics,
    StaticOrbit,
    angles_from_c2w,
    camera_centers,
    model_order,
    orbit_c2w,
    read_transforms,
    write_transforms,
)
from svd3d.core.vectors import orbit_vector
from svd3d.errors import SVD3DError


def project(point, c2w, intr: Intrinsics):
    """World point -> pixel (u right, v down) with OpenGL camera axes."""
    w2c = np.linalg.inv(c2w)
    p = w2c[:3, :3] @ point + w2c[:3, 3]
    assert p[2] < 0, "point is behind the camera"
    return intr.cx + intr.fl_x * p[0] / -p[2], intr.cy - intr.fl_y * p[1] / -p[2]


def test_poses_are_rigid_and_look_at_the_origin():
    elev = np.array([0, 10, -30, 60, 89.9, -89.9, 90.0])
    azim = np.array([0, 45, 200, 300, 10, 10, 0.0])
    c2w = orbit_c2w(elev, azim, radius=2.0)
    for m, center in zip(c2w, camera_centers(elev, azim), strict=True):
        rot = m[:3, :3]
        assert np.allclose(rot @ rot.T, np.eye(3), atol=1e-12) and np.isclose(np.linalg.det(rot), 1.0)
        assert np.allclose(m[:3, 3], center)
        assert np.allclose(-rot[:, 2], -center / np.linalg.norm(center))  # looking down -Z at the origin
        assert rot[1, 1] >= -1e-9  # camera up never points down


def test_convention_directions():
    c2w = orbit_c2w([0, 0], [0, 90])
    assert np.allclose(c2w[0][:3, 3], [0, 0, 2])  # azimuth 0: the input view, on +Z
    assert np.allclose(c2w[1][:3, 3], [2, 0, 0])  # azimuth 90: on +X, i.e. the camera moved to its own right
    intr = Intrinsics.from_fov(576, 576)
    u, v = project(np.array([0.3, 0.0, 0.0]), c2w[0], intr)
    assert u > intr.cx and np.isclose(v, intr.cy)  # +X is image-right in the input view
    u, v = project(np.array([0.0, 0.3, 0.0]), c2w[0], intr)
    assert v < intr.cy  # +Y is image-up
    # what was on the input view's right (+X) faces the camera at azimuth 90
    assert np.isclose(project(np.array([0.3, 0, 0]), c2w[1], intr)[0], intr.cx)


def test_angles_roundtrip():
    elev, azim = np.array([5.0, -20.0, 45.0]), np.array([0.0, 123.0, 359.0])
    e, a, r = angles_from_c2w(orbit_c2w(elev, azim, 1.5))
    assert np.allclose(e, elev) and np.allclose(a, azim) and np.allclose(r, 1.5)


def test_sv3d_focal():
    assert abs(Intrinsics.from_fov(576, 576, 33.8).fl_x - 947.92) < 0.01


def test_static_orbit():
    e, a = StaticOrbit(10, 21).angles()
    assert np.all(e == 10) and a[0] == 0 and np.allclose(np.diff(a), 360 / 21)
    with pytest.raises(SVD3DError, match="between -90 and 90"):
        StaticOrbit(95, 21).angles()


def test_dynamic_orbit_is_smooth_monotone_seeded():
    e, a = DynamicOrbit(10, 21, seed=3).angles()
    assert e[0] == 10 and a[0] == 0 and np.all(np.diff(a) > 0) and a[-1] < 360
    assert e.max() - e.min() > 5 and np.abs(np.diff(e)).max() < 5  # a wobble, not jumps
    assert np.array_equal(a, DynamicOrbit(10, 21, seed=3).angles()[1])
    assert not np.array_equal(a, DynamicOrbit(10, 21, seed=4).angles()[1])


def test_custom_orbit_sorts_for_real():
    e, a = CustomOrbit((20, 10, 30, 5), (240, 0, 120, -30)).angles()
    assert a.tolist() == [0, 120, 240, 330] and e.tolist() == [10, 30, 20, 5]


@pytest.mark.parametrize(
    "elevs,azims,match",
    [
        ((10, 10), (0,), "one elevation per azimuth"),
        ((10, 10), (30, 60), "input view"),
        ((10, 10, 10), (0, 360, 50), "input view"),
        ((10, 95), (0, 90), "between -90 and 90"),
        ((10, 10, 10), (0, 90, 90), "differ"),
        ((), (), "at least one"),
    ],
)
def test_custom_orbit_validation(elevs, azims, match):
    with pytest.raises(SVD3DError, match=match):
        CustomOrbit(elevs, azims).angles()


def test_model_order():
    assert model_order(4, "input_last").tolist() == [1, 2, 3, 0]
    assert model_order(4, "input_first").tolist() == [0, 1, 2, 3]


def test_sv3d_p_vector_matches_reference_cameras():
    """A static 21-view orbit at 10 degrees, in SV3D's frame order, gives exactly the reference script's polars and
    azimuths (input view last, azimuth growing as the camera turns to its right)."""
    io = load_file(str(sgm_fixture("sv3d_p_io.safetensors")))
    elev, azim = StaticOrbit(10, 21).angles()
    vec = orbit_vector(["cond_aug", "polars_rad", "azimuths_rad"], elev, azim, model_order(21, "input_last"), 1e-5, 1)
    assert torch.allclose(vec[:, 1].double(), io["cond.batch.polars_rad"], atol=1e-6)
    assert torch.allclose(vec[:, 2].double(), io["cond.batch.azimuths_rad"], atol=1e-6)
    assert torch.allclose(vec[:, 0], io["cond.batch.cond_aug"])


def test_transforms_roundtrip(tmp_path):
    elev, azim = DynamicOrbit(10, 5, seed=1).angles()
    c2w = orbit_c2w(elev, azim)
    intr = Intrinsics.from_fov(64, 64)
    frames = [CameraFrame(f"frames/{i:03d}.png", c2w[i], elev[i], azim[i]) for i in range(5)]
    write_transforms(tmp_path / "transforms.json", frames, intr)
    intr2, frames2 = read_transforms(tmp_path / "transforms.json")
    assert intr2 == intr
    for a, b in zip(frames, frames2, strict=True):
        assert a.file_path == b.file_path and np.allclose(a.c2w, b.c2w) and np.isclose(a.azimuth, b.azimuth)
    data = json.loads((tmp_path / "transforms.json").read_text())
    assert {"fl_x", "fl_y", "cx", "cy", "w", "h", "camera_model", "frames"} <= set(data)


def test_bad_transforms(tmp_path):
    with pytest.raises(SVD3DError, match="does not exist"):
        read_transforms(tmp_path / "missing.json")
    bad = tmp_path / "transforms.json"
    bad.write_text(
        json.dumps({"w": 4, "h": 4, "fl_x": 2, "frames": [{"file_path": "a.png", "transform_matrix": [[1]]}]})
    )
    with pytest.raises(SVD3DError, match="transform_matrix"):
        read_transforms(bad)
    nan = np.eye(4).tolist()
    nan[0][3] = float("nan")
    bad.write_text(json.dumps({"w": 4, "h": 4, "fl_x": 2, "frames": [{"file_path": "a.png", "transform_matrix": nan}]}))
    with pytest.raises(SVD3DError, match="transform_matrix"):
        read_transforms(bad)
    bad.write_text("{not json")
    with pytest.raises(SVD3DError, match="not a valid"):
        read_transforms(bad)
