"""`svd3d app`: the request function on its own (two requests at once, bad uploads), the served page through
Gradio's own client, and the page in headless Chromium from an example image to a GLB. The bundled tiny-orbit
makes the views; the mesh is the visual hull at a small face budget, so each generation takes seconds."""

from __future__ import annotations

import importlib.util
import io
import re
import signal
import struct
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import trimesh
from click.testing import CliRunner
from headless import Browser, chromium, drawn_fraction, generate_in_app, rect, wait_for_drawing
from PIL import Image

from svd3d.app import ModelCache, Request, examples, generate, orbit_models, user_message
from svd3d.cli import main
from svd3d.errors import SVD3DError

REPO = Path(__file__).resolve().parents[1]
FAST = {"steps": 2, "method": "hull", "faces": "600", "texture": "64"}  # a generation in seconds
needs_gradio = pytest.mark.skipif(
    importlib.util.find_spec("gradio") is None, reason='gradio is not installed (pip install -e ".[app]")'
)


def bad_uploads(folder: Path) -> dict[str, Path]:
    """Files a user might upload that svd3d refuses: not an image, an image too large to decode (a PNG header
    claiming 30000 x 30000 pixels), an image with no object in it (plain white)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.png").write_text("not an image")

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    (folder / "huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    Image.new("RGB", (200, 200), "white").save(folder / "blank.png")
    return {p.stem: p for p in sorted(folder.glob("*.png"))}


def cli_message(image: Path, out: Path) -> str:
    """What `svd3d orbit IMAGE` says about `image` (its one `error:` line)."""
    r = CliRunner().invoke(main, ["orbit", str(image), "-o", str(out)])
    assert r.exit_code == 2, r.output
    (line,) = [line for line in r.output.splitlines() if line.startswith("error: ")]
    return line.removeprefix("error: ")


def glb_faces(data: bytes) -> int:
    scene = trimesh.load(io.BytesIO(data), file_type="glb", force="scene")
    return sum(len(g.faces) for g in scene.geometry.values())


# ------------------------------------------------------------------------------------------------ without gradio


def test_the_app_offers_the_registrys_orbit_models_and_the_examples():
    assert orbit_models()[0] == "tiny-orbit"  # the bundled model is the default
    names = orbit_models(("my/sv3d_p.safetensors",))
    assert names[:2] == ["my/sv3d_p.safetensors", "tiny-orbit"] and "random-tiny-orbit" in names  # --model first
    assert not {"tiny-video", "random-tiny-video"} & set(names)  # video models cannot make orbits
    assert [p.name for p in examples()] == ["toy_a.png", "toy_b.png", "toy_c.png"]


def test_without_gradio_svd3d_app_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` raises ImportError, installed or not
    r = CliRunner().invoke(main, ["app", "--no-browser"])
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    assert r.output.startswith("error: svd3d app needs gradio") and 'pip install -e ".[app]"' in r.output


def test_two_requests_at_once_write_their_own_folders_with_one_model(tmp_path):
    """Two users press Generate together: each job gets its own folder and its own settings, the model is
    loaded once and lent to one job at a time."""
    models, root = ModelCache(device="cpu"), tmp_path / "outputs"
    asks = [("toy_a.png", Request(seed=1, **FAST)), ("toy_b.png", Request(seed=2, **FAST))]
    made, errors = [None, None], []

    def run(i: int) -> None:
        try:
            made[i] = generate(REPO / "assets" / "examples" / asks[i][0], asks[i][1], root=root, models=models)
        except Exception as err:  # reported below, with the other thread's result
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert models.loads == 1
    a, b = made
    assert a.folder != b.folder and a.folder.parent == b.folder.parent == root
    for result, (image, request) in zip(made, asks, strict=True):
        run_json = result.asset.views.run
        assert run_json["settings"]["seed"] == request.seed and run_json["input"]["path"].endswith(image)
        assert glb_faces(result.glb.read_bytes()) == 600
        assert len(result.views) == 21 and result.clip.is_file() and (result.output / "index.html").is_file()
        with zipfile.ZipFile(result.views_zip) as z:
            assert sorted(z.namelist()) == sorted([f"frames/{i:03d}.png" for i in range(21)] + ["transforms.json"])
        with zipfile.ZipFile(result.obj_zip) as z:
            assert sorted(z.namelist()) == ["mesh.mtl", "mesh.obj", "mesh.png"]
    # different inputs and seeds: different views, each in its own folder
    view = [np.asarray(Image.open(r.views[5][0]), float) for r in made]
    assert np.abs(view[0] - view[1]).mean() > 5


def test_bad_uploads_get_the_clis_messages_and_leave_nothing(tmp_path):
    root = tmp_path / "outputs"
    models = ModelCache(device="cpu")
    for name, path in bad_uploads(tmp_path / "uploads").items():
        with pytest.raises(SVD3DError) as err:
            generate(path, Request(**FAST), root=root, models=models)
        said = user_message(err.value, path)
        assert said == cli_message(path, tmp_path / "cli-out").replace(str(path), path.name), name
        assert str(path.parent) not in said and path.name in said  # the file as the user knows it
        assert {"notes": "not an image", "huge": "downscale it first", "blank": "no object found"}[name] in said
    assert not root.exists() or not any(root.iterdir())  # no request folder left behind


# ------------------------------------------------------------------------------------------------ served


@needs_gradio
@pytest.mark.parametrize(
    "args, needle",
    [
        (["--port", "{busy}"], "cannot serve on 127.0.0.1:{busy}"),
        (["--device", "cuda:7"], "cuda:7"),
        (["--model", "missing.safetensors"], "missing.safetensors does not exist"),
        (["--concurrency", "0"], "--concurrency must be at least 1"),
    ],
)
def test_svd3d_app_refuses_bad_options_before_serving(args, needle):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        args = [a.replace("{busy}", port) for a in args]
        r = CliRunner().invoke(main, ["app", "--no-browser", *args])
    assert r.exit_code == 2, r.output
    (line,) = r.output.strip().splitlines()
    assert line.startswith("error: ") and needle.replace("{busy}", port) in line, line


@pytest.fixture
def served_app(tmp_path):
    from svd3d.app import launch

    running = launch(port=0, root=tmp_path / "outputs", device="cpu")
    yield running
    running.close()


@needs_gradio
def test_the_served_app_answers_gradios_client(served_app, tmp_path):
    """Through the server as a browser would send it: the upload, the settings, the queue. A bad upload is shown
    as the CLI's message, not a traceback; a good one gives the views, the clip, the GLB and the zips."""
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(served_app.url, verbose=False, download_files=str(tmp_path / "downloads"))
    settings = ["tiny-orbit", "auto", FAST["steps"], 5, FAST["faces"], FAST["method"], 10, 0.85, FAST["texture"], 0]
    bad = bad_uploads(tmp_path / "uploads")["notes"]
    with pytest.raises(AppError) as err:
        client.predict(handle_file(str(bad)), *settings, api_name="/generate")
    assert str(err.value) == cli_message(bad, tmp_path / "cli-out").replace(str(bad), bad.name)

    with pytest.raises(AppError, match="unknown model '/etc/x.safetensors'; choose one of tiny-orbit"):
        client.predict(handle_file(str(bad)), "/etc/x.safetensors", *settings[1:], api_name="/generate")

    gallery, clip, model3d, downloads, summary = client.predict(
        handle_file(str(REPO / "assets" / "examples" / "toy_c.png")), *settings, api_name="/generate"
    )
    assert len(gallery) == 21 and Path(clip).suffix == ".mp4" and Path(model3d).name == "mesh.glb"
    assert [Path(f).name for f in downloads] == ["mesh.glb", "toy_c-obj.zip", "toy_c-views.zip"]
    assert glb_faces(Path(downloads[0]).read_bytes()) == 600
    assert "2 steps, seed 5" in summary and "600 faces" in summary
    (folder,) = (served_app.root).iterdir()  # the bad upload left no folder; the good one has its own
    assert (folder / "toy_c" / "mesh.glb").is_file()


# ------------------------------------------------------------------------------------------------ Chromium


@pytest.mark.browser
@needs_gradio
@pytest.mark.skipif(chromium() is None, reason="no chromium on PATH (apt-get install chromium)")
def test_chromium_makes_a_glb_from_an_example_in_the_app(tmp_path):
    """`svd3d app` as a user starts it; headless Chromium picks an example, sets steps, face budget and the hull
    method, presses Generate, and the page shows the views and the mesh; the GLB it links is the one asked for,
    and the page asked for nothing outside this machine."""
    proc = subprocess.Popen([sys.executable, "-m", "svd3d", "app", "--no-browser", "--device", "cpu",
                             "-o", str(tmp_path / "outputs")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO)  # fmt: skip
    try:
        line = proc.stdout.readline()
        match = re.search(r"svd3d app at (http://127\.0\.0\.1:\d+/)", line)
        assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
        with Browser(1400, 1100) as browser:
            made = generate_in_app(browser, match.group(1), example=1, method="hull",
                                   settings={"steps": FAST["steps"], "faces": FAST["faces"]})  # fmt: skip
            png = wait_for_drawing(browser, "#model3d canvas")
            box = rect(browser, "#model3d canvas")
            requests = list(browser.requests)
        glb = urllib.request.urlopen(made["downloads"][0], timeout=30).read()  # as the page's link serves it
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    (tmp_path / "app.png").write_bytes(png)
    print(made)
    assert proc.returncode == 0 and "stopped" in out and "Traceback" not in err, err[-2000:]
    assert made["views"] >= 21 and "2 steps" in made["summary"] and "600 faces" in made["summary"]
    assert glb_faces(glb) == 600

    # the 3D view shows an object: part of the canvas differs from its background, in many colours
    fraction, colours = drawn_fraction(png, box)
    assert 0.03 < fraction < 0.9 and colours > 50, (fraction, colours)
    assert np.asarray(Image.open(io.BytesIO(png))).std() > 20  # the whole page is not blank

    hosts = {
        urllib.parse.urlsplit(u).hostname for u in requests if urllib.parse.urlsplit(u).scheme in ("http", "https")
    }
    assert hosts == {"127.0.0.1"}, hosts  # nothing from a CDN, no analytics
