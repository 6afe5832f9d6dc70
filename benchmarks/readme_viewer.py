"""The README's viewer pictures: `python benchmarks/readme_viewer.py ORBIT_FOLDER` (an `svd3d orbit` output with
mesh.glb) writes assets/readme/viewer.png (the folder's index.html in headless Chromium, from file://),
assets/readme/wireframe.png (the viewer with its texture, then with the wireframe switch on) and
assets/readme/engines.png (the same mesh in the browser's model-viewer beside Blender's Workbench render of it,
as tests/blender_check.py imports it). Needs chromium and blender on PATH."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from headless import Browser  # noqa: E402

folder = Path(sys.argv[1]).resolve()
out = ROOT / "assets" / "readme"
with tempfile.TemporaryDirectory() as tmp, Browser(1200, 1000) as browser:
    browser.open((folder / "index.html").as_uri())
    assert browser.wait_for("document.body.dataset.model === 'loaded'", 90), browser.console
    browser.eval("document.getElementById('mv').autoRotate = false")
    time.sleep(2)
    page = Image.open(__import__("io").BytesIO(browser.screenshot())).convert("RGB")
    x, y, w, h = (int(v) for v in browser.eval(
        "(() => { const r = document.getElementById('mv').getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()"
    ))  # fmt: skip
    page.quantize(128).save(out / "viewer.png", optimize=True)
    side = min(w, h)
    web = page.crop((x + (w - side) // 2, y + (h - side) // 2, x + (w + side) // 2, y + (h + side) // 2)).resize(
        (400, 400)
    )
    browser.eval("document.getElementById('wireframe').click()")
    assert browser.wait_for("document.getElementById('mv').dataset.view === 'wireframe' && "
                            "document.body.dataset.model === 'loaded'", 90), browser.console  # fmt: skip
    time.sleep(2)
    wire = Image.open(__import__("io").BytesIO(browser.screenshot())).convert("RGB")
    square = (x + (w - side) // 2, y + (h - side) // 2, x + (w + side) // 2, y + (h + side) // 2)
    pair = Image.new("RGB", (800, 424), "white")
    pair.paste(web, (0, 24))
    pair.paste(wire.crop(square).resize((400, 400)), (400, 24))
    draw = ImageDraw.Draw(pair)
    draw.text((8, 6), "texture (the default)", fill="black")
    draw.text((408, 6), "wireframe switch on: every edge over the plain surface", fill="black")
    pair.quantize(128).save(out / "wireframe.png", optimize=True)
    shot = Path(tmp) / "blender.png"
    subprocess.run(["blender", "-b", "--factory-startup", "--python", str(ROOT / "tests" / "blender_check.py"), "--",
                    str(folder / "mesh.glb"), str(Path(tmp) / "report.json"), str(shot)], check=True,
                   capture_output=True)  # fmt: skip
    blender = Image.open(shot).convert("RGB").resize((400, 400))
    sheet = Image.new("RGB", (800, 424), "white")
    sheet.paste(web, (0, 24))
    sheet.paste(blender, (400, 24))
    draw = ImageDraw.Draw(sheet)
    draw.text((8, 6), "browser: model-viewer (index.html, headless Chromium)", fill="black")
    draw.text((408, 6), "Blender 3.4: glTF import, Workbench render", fill="black")
    sheet.quantize(128).save(out / "engines.png", optimize=True)
print("wrote", out / "viewer.png", out / "wireframe.png", out / "engines.png")
