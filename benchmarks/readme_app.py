"""The README's app picture: `python benchmarks/readme_app.py` starts `svd3d app` (the bundled tiny-orbit, on the
CPU), has headless Chromium pick the first example and press Generate with the page's defaults, and saves the
page once the mesh shows in its 3D view as assets/readme/app.png. Prints the generation's time and the page's
summary line. Needs gradio (pip install -e ".[app]") and chromium on PATH."""

from __future__ import annotations

import io
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from headless import Browser, generate_in_app, wait_for_drawing  # noqa: E402

out = ROOT / "assets" / "readme" / "app.png"
with tempfile.TemporaryDirectory() as tmp:
    proc = subprocess.Popen([sys.executable, "-m", "svd3d", "app", "--no-browser", "--device", "cpu", "-o", tmp],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
    try:
        line = proc.stdout.readline()
        print(line.strip())
        url = re.search(r"http://\S+/", line).group(0)
        with Browser(1280, 1180) as browser:
            made = generate_in_app(browser, url, example=0)
            png = wait_for_drawing(browser, "#model3d canvas")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
page = Image.open(io.BytesIO(png)).convert("RGB")
page.quantize(128).save(out, optimize=True)
print(f"generated in {made['seconds']:.1f} s; {made['summary']}")
print("wrote", out, f"({out.stat().st_size / 1e3:.0f} kB)")
