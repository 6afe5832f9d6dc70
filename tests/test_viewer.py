"""index.html in svd3d's output folders and `svd3d view`, checked by real clients: headless Chromium opens the
page from file:// and from `svd3d view`, waits for model-viewer's load event and looks at a screenshot; Blender
imports the GLB and OBJ and reports size, orientation, origin, faces and material. The fast tests need neither."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import trimesh
from click.testing import CliRunner
from headless import Browser, chromium, rect
from PIL import Image

from svd3d.cli import main
from svd3d.recon.export import export_mesh
from svd3d.viewer import INDEX, glb_summary, index_html, mesh_edges, wireframe_glb

REPO = Path(__file__).resolve().parents[1]
HEIGHT, FACES = 1.5, 2000
LOADED = "['loaded', 'error', 'unavailable'].includes(document.body.dataset.model)"


def run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def svd3d(*args, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run([sys.executable, "-m", "svd3d", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env=env, **kwargs)  # fmt: skip


@pytest.fixture(scope="session")
def orbit_folder(tmp_path_factory) -> Path:
    """A real orbit folder with views, mesh and index.html, quickly: the bundled tiny-orbit's views (10 steps),
    then the hull mesh (`svd3d recon --method hull`, --height, --faces, GLB and OBJ), about 15 s on 2 cores."""
    out = tmp_path_factory.mktemp("viewer") / "toy"
    r = svd3d("orbit", "assets/examples/toy_a.png", "--no-mesh", "--steps", "10", "-o", out)
    assert r.returncode == 0, r.stderr
    r = svd3d("recon", out, "--method", "hull", "--faces", FACES, "--texture", 256, "--height", HEIGHT,
              "--format", "glb,obj")  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture
def served(orbit_folder):
    """`svd3d view --no-browser` on an ephemeral port: (process, url); stopped with Ctrl-C (SIGINT) after."""
    proc = subprocess.Popen([sys.executable, "-m", "svd3d", "view", "--no-browser", str(orbit_folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)  # fmt: skip
    line = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)/index\.html", line)
    assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
    yield proc, match.group(0)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)


# ------------------------------------------------------------------------------------------------ without clients


def test_strings_from_files_are_escaped(tmp_path):
    evil = '<script>alert("x")</script>'
    (tmp_path / "run.json").write_text(json.dumps({"written_by": evil, "settings": {evil: evil}, "output": evil}))
    frames = [{"file_path": f'images/"><img src=x onerror={evil}>.png', "azimuth_deg": 0, "elevation_deg": 0}]
    (tmp_path / "transforms.json").write_text(json.dumps({"frames": frames}))
    page = index_html(tmp_path)
    assert evil not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_glb_summary_reads_size_and_faces(tmp_path):
    box = trimesh.creation.box((0.4, 1.0, 0.2))
    glb = export_mesh(box, tmp_path / "mesh.glb", height=2.0)[0]
    info = glb_summary(glb.read_bytes())
    assert info["faces"] == 12 and info["size_m"] == pytest.approx([0.8, 2.0, 0.4], abs=1e-3)
    assert info["min_m"][1] == pytest.approx(0.0, abs=1e-6)  # --height puts the origin at the bottom centre
    assert glb_summary(b"not a glb") == {}


def test_wireframe_glb_holds_the_surface_and_every_edge_once_where_the_mesh_is(tmp_path):
    box = trimesh.creation.box((0.4, 1.0, 0.2))
    glb = export_mesh(box, tmp_path / "mesh.glb", height=2.0)[0].read_bytes()
    wire = wireframe_glb(glb)
    scene = trimesh.load(io.BytesIO(wire), file_type="glb")
    (surface,) = [g for g in scene.geometry.values() if isinstance(g, trimesh.Trimesh)]
    (lines,) = [g for g in scene.geometry.values() if isinstance(g, trimesh.path.Path3D)]
    assert len(surface.faces) == 12
    edges = {tuple(sorted(e)) for e in mesh_edges(surface.faces)}
    assert len(edges) == 18  # 12 box edges + 6 face diagonals, each once
    # in the GLB's world frame (--height: 2 m tall, standing on y = 0), as model-viewer frames the mesh
    assert glb_summary(wire)["size_m"] == pytest.approx(glb_summary(glb)["size_m"], abs=0.01)  # + the lift
    assert surface.bounds[0][1] == pytest.approx(0.0, abs=1e-6)
    # the edges sit just outside the surface (lifted along the normals), so the surface hides the ones behind it
    lift = np.linalg.norm(lines.vertices - lines.vertices.mean(0), axis=1).mean()
    assert lift > np.linalg.norm(surface.vertices - surface.vertices.mean(0), axis=1).mean()
    assert wireframe_glb(b"not a glb") is None


def test_render_and_recon_write_index_and_recon_refuses_a_users_index(tmp_path):
    mesh = tmp_path / "box.glb"
    trimesh.creation.box((0.5, 0.8, 0.3)).export(mesh)
    views = tmp_path / "views"
    assert run(["render", str(mesh), "--frames", "6", "--size", "48", "-o", str(views)]).exit_code == 0
    page = (views / INDEX).read_text()
    assert 'id="svd3d-model"' in page and "images/000.png" in page  # the rendered mesh, embedded; the views
    assert 'id="svd3d-wireframe"' in page and "id=wireframe" in page  # its wireframe, and the switch
    assert json.loads((views / ".svd3d.json").read_text())["files"].get(INDEX)  # svd3d's, in the mark

    (views / INDEX).write_text("<p>my own page</p>")
    r = run(["recon", str(views), "--method", "hull", "--faces", "200", "--texture", "64"])
    assert r.exit_code == 2 and "index.html" in r.output and "svd3d did not write" in r.output
    assert (views / INDEX).read_text() == "<p>my own page</p>" and not (views / "mesh.glb").exists()

    (views / INDEX).unlink()
    assert run(["recon", str(views), "--method", "hull", "--faces", "200", "--texture", "64"]).exit_code == 0
    page = (views / INDEX).read_text()
    assert 'data-file="mesh.glb"' in page and "silhouette IoU" in page
    mark = json.loads((views / ".svd3d.json").read_text())
    assert "recon" in mark["jobs"] and INDEX in mark["files"]
    # a second recon replaces svd3d's own index.html
    assert run(["recon", str(views), "--method", "hull", "--faces", "200", "--texture", "64"]).exit_code == 0


def test_video_frames_folder_gets_a_page_and_a_clip_file_none(tmp_path):
    args = ["--model", "random-tiny-video", "--frames", "4", "--steps", "2", "--size", "64x64"]
    image = REPO / "assets" / "examples" / "shapes_a.png"
    assert run(["video", str(image), *args, "-o", str(tmp_path / "frames")]).exit_code == 0
    page = (tmp_path / "frames" / INDEX).read_text()
    assert 'id="frames-list"' in page and "000.png" in page and "<model-viewer" not in page
    assert run(["video", str(image), *args, "-o", str(tmp_path / "clip.mp4")]).exit_code == 0
    assert not (tmp_path / INDEX).exists()


def test_view_refuses_bad_folders_in_one_line(tmp_path):
    r = run(["view", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "does not exist" in r.output and len(r.output.strip().splitlines()) == 1
    r = run(["view", "--no-browser", str(tmp_path)])
    assert r.exit_code == 2 and "has no index.html" in r.output and str(tmp_path) in r.output


def test_view_serves_the_folder_and_stops_on_ctrl_c(tmp_path):
    (tmp_path / INDEX).write_text("<p>hello</p>")
    (tmp_path / "mesh.glb").write_bytes(b"glTF....")
    proc = subprocess.Popen([sys.executable, "-m", "svd3d", "view", "--no-browser", "--port", "0", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)  # fmt: skip
    try:
        url = re.search(r"http://\S+/index\.html", proc.stdout.readline()).group(0)
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.read() == b"<p>hello</p>"
        with urllib.request.urlopen(url.replace(INDEX, "mesh.glb"), timeout=10) as response:
            assert response.headers["Content-Type"] == "model/gltf-binary"
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "stopped" in out and "Traceback" not in err


# ------------------------------------------------------------------------------------------------ Chromium


def look(browser: Browser, url: str, shot: Path) -> dict:
    """Open `url`, wait for the viewer's verdict, and report it with what the screenshot shows in the viewer."""
    browser.open(url)
    assert browser.wait_for(LOADED, timeout=90), f"no load / error event in 90 s; console: {browser.console}"
    state = browser.eval("document.body.dataset.model")
    info = browser.eval(
        "(() => { const mv = document.getElementById('mv'); mv.autoRotate = false; mv.scrollIntoView();"
        " const r = mv.getBoundingClientRect(); const imgs = [...document.images];"
        " return {size: mv.dataset.size, src: mv.src, rect: [r.left, r.top, r.width, r.height],"
        " images: imgs.length, broken: imgs.filter(i => i.complete && i.naturalWidth === 0).map(i => i.src)}; })()"
    )
    time.sleep(1.5)  # a few frames after the camera settles
    info["rect"] = browser.eval(
        "(() => { const r = document.getElementById('mv').getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()"
    )
    png = browser.screenshot()
    shot.write_bytes(png)
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    x, y, w, h = (int(round(v)) for v in info["rect"])
    viewer = image[max(y, 0) : y + h, x : x + w]
    centre = viewer[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]
    # the page's white behind the mesh, from the viewer's side strips (its top edge holds the progress bar)
    strips = np.concatenate([viewer[h // 4 : 3 * h // 4, : w // 20], viewer[h // 4 : 3 * h // 4, -w // 20 :]], 1)
    background = np.median(strips.reshape(-1, 3), axis=0)
    differs = np.abs(centre - background).sum(-1) > 60
    return {
        "state": state,
        **info,
        "object_fraction": float(differs.mean()),
        "colours": len(np.unique(centre.reshape(-1, 3), axis=0)),
    }


def switch_wireframe(browser: Browser, shots: Path) -> list[dict]:
    """On a loaded page: the viewer as it is, after ticking "wireframe", after unticking it. For each: the fraction
    of the viewer's pixels that are near black and colourless (the edge lines; the mesh's dark blues are not),
    plain light grey (the wireframe's surface), and that changed from the first picture."""
    mv = "document.getElementById('mv')"
    pictures = []
    for step, view in enumerate(("mesh", "wireframe", "mesh")):
        if step:
            browser.eval("document.getElementById('wireframe').click()")
            shown = f"{mv}.dataset.view === '{view}' && document.body.dataset.model === 'loaded'"
            assert browser.wait_for(shown, 60), f"no {view} in 60 s; console: {browser.console}"
        time.sleep(1.5)  # a few frames after the camera settles
        png = browser.screenshot()
        (shots / f"{step}-{view}.png").write_bytes(png)
        x, y, w, h = rect(browser, "#mv")
        pictures.append(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)[y : y + h, x : x + w])

    def share(p: np.ndarray, low: int, high: int) -> float:  # colourless pixels with a mean in [low, high)
        return float(((p.max(-1) - p.min(-1) < 40) & (p.mean(-1) >= low) & (p.mean(-1) < high)).mean())

    return [
        {"black": share(p, 0, 100), "grey": share(p, 120, 240),
         "changed": float((np.abs(p - pictures[0]).sum(-1) > 60).mean())}
        for p in pictures
    ]  # fmt: skip


needs_chromium = pytest.mark.skipif(chromium() is None, reason="no chromium on PATH (apt-get install chromium)")


@pytest.mark.browser
@needs_chromium
def test_chromium_shows_the_mesh_from_file_and_from_svd3d_view(orbit_folder, served, tmp_path):
    with Browser() as browser:
        from_file = look(browser, (orbit_folder / INDEX).resolve().as_uri(), tmp_path / "file.png")
        wireframe = switch_wireframe(browser, tmp_path)
        from_server = look(browser, served[1], tmp_path / "served.png")
    for seen in (from_file, from_server):
        print({k: v for k, v in seen.items() if k != "src"})  # shown with -s: what the screenshot held
        assert seen["state"] == "loaded", seen
        # model-viewer measures the mesh it loaded: --height is its Y extent
        assert float(seen["size"].split(" x ")[1]) == pytest.approx(HEIGHT, abs=0.01), seen
        assert seen["images"] >= 22 and not seen["broken"], seen  # input, 21 views (preview): all found
        # the object covers part of the viewer's centre, in more than a few colours (shaded, textured)
        assert 0.05 < seen["object_fraction"] < 0.95 and seen["colours"] > 50, seen
    assert from_file["src"].startswith("blob:")  # file://: the GLB embedded in the page
    assert from_server["src"] == "mesh.glb"  # served: the file beside it
    mesh, wire, back = wireframe
    assert wire["black"] > mesh["black"] + 0.005, wireframe  # the edges: near-black lines over the object
    assert wire["grey"] > mesh["grey"] + 0.02, wireframe  # its plain surface between them
    assert wire["changed"] > 0.05 and back["changed"] < wire["changed"] / 3, wireframe  # and back to the mesh


# ------------------------------------------------------------------------------------------------ Blender


def blender_report(mesh: Path, out: Path) -> dict:
    script = REPO / "tests" / "blender_check.py"
    r = subprocess.run(["blender", "-b", "--factory-startup", "--python", str(script), "--", str(mesh), str(out)],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.is_file(), r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.blender
@pytest.mark.skipif(shutil.which("blender") is None, reason="no blender on PATH (apt-get install blender)")
@pytest.mark.parametrize("fmt", ["glb", "obj"])
def test_blender_imports_the_asset_upright_at_its_height(orbit_folder, tmp_path, fmt):
    report = blender_report(orbit_folder / f"mesh.{fmt}", tmp_path / "report.json")
    lo, hi = np.array(report["bbox_min"]), np.array(report["bbox_max"])
    assert report["objects"] == 1
    # Blender is +Z up: the asset stands on z = 0 and is --height tall along Z
    assert lo[2] == pytest.approx(0.0, abs=1e-4) and hi[2] - lo[2] == pytest.approx(HEIGHT, rel=1e-4)
    # origin at the bottom centre: the object's origin is the world origin, the box centred on it in x and y
    assert np.allclose(report["origins"][0], 0.0, atol=1e-6)
    assert np.allclose((lo[:2] + hi[:2]) / 2, 0.0, atol=0.02 * HEIGHT)
    assert report["triangles"] == report["faces"] == FACES
    assert len(report["materials"]) == 1
    (material,) = report["materials"].values()
    assert material["base_color_image"] is not None and material["base_color_image"]["size"] == [256, 256]
