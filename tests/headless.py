"""A small driver for headless Chromium over the DevTools protocol on a pipe (--remote-debugging-pipe: JSON
messages ending in a NUL byte, read on the browser's fd 3, written on its fd 4), so the tests need no websocket
library: open a page, wait for a condition in it in real time, read values, take a screenshot.

    with Browser() as browser:
        browser.open("file:///.../index.html")
        browser.wait_for("document.body.dataset.model === 'loaded'", timeout=60)
        png = browser.screenshot()
        browser.requests  # every URL the page asked for
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time

# WebGL without a GPU: ANGLE on SwiftShader, which Chromium only enables for WebGL when told it may
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--no-first-run",
    "--mute-audio",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
    "--hide-scrollbars",
]


def chromium() -> str | None:
    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)


class Browser:
    def __init__(self, width: int = 1200, height: int = 1000):
        self.width, self.height = width, height

    def __enter__(self) -> Browser:
        exe = chromium()
        if exe is None:
            raise RuntimeError("no chromium on PATH")
        self.profile = tempfile.mkdtemp(prefix="svd3d-chromium-")
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()
        # the child's fd 3 reads what we write, its fd 4 writes what we read
        self.proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={self.profile}", f"--window-size={self.width},{self.height}",
             "--remote-debugging-pipe", "about:blank"],
            pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=lambda: (os.dup2(to_browser_r, 3), os.dup2(from_browser_w, 4)),
        )  # fmt: skip
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buffer, self.next_id = b"", 0
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)
        self.call("Network.enable", session=True)
        self.console: list[str] = []
        self.requests: list[str] = []  # the URL of every request the page made (Network.requestWillBeSent)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.call("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.to_browser)
        os.close(self.from_browser)
        shutil.rmtree(self.profile, ignore_errors=True)

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self.buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self.from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, session: bool = False, timeout: float = 60, **params) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("method") == "Runtime.consoleAPICalled":
                args = reply["params"].get("args", [])
                self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
            elif reply.get("method") == "Network.requestWillBeSent":
                self.requests.append(reply["params"]["request"]["url"])
            elif reply.get("method") == "Runtime.exceptionThrown":
                self.console.append(str(reply["params"]["exceptionDetails"].get("exception", {}).get("description")))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def open(self, url: str) -> None:
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip
        self.call("Page.navigate", session=True, url=url)

    def eval(self, expression: str):
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.eval(expression):
                return True
            time.sleep(0.25)
        return False

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", session=True, format="png")["data"])


# ------------------------------------------------------------------------------------------------ `svd3d app`

# sets an input of the Gradio page as a user typing would (focus, value, input event, Enter), so Svelte sees it
_TYPE = """(selector, value) => { const el = document.querySelector(selector); el.focus();
  Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(el, value);
  el.dispatchEvent(new Event('input', {bubbles: true}));
  el.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', code: 'Enter', bubbles: true})); el.blur();
  return el.value; }"""
APP_DONE = "!!document.querySelector('#downloads a[href*=\"mesh.glb\"]')"


def generate_in_app(browser: Browser, url: str, *, example: int = 0, settings: dict | None = None,
                    method: str | None = None, timeout: float = 240) -> dict:  # fmt: skip
    """In the `svd3d app` page at `url`: pick example `example`, type `settings` ({"steps": "3", "faces": "1500"}:
    the elem_id of a field and its text), choose the mesh `method` (under "More options"), press Generate and wait
    for the downloads. Returns {"seconds", "downloads" (their URLs), "summary" (the page's text), "views" (how
    many gallery images)}; raises TimeoutError (with the page's error text) when no GLB comes."""
    browser.open(url)
    if not browser.wait_for("!!document.querySelector('#generate')", 60):
        raise TimeoutError(f"the app's page did not load in 60 s; console: {browser.console}")
    browser.eval(f"document.querySelectorAll('#examples button.gallery-item')[{example}].click()")
    if not browser.wait_for("!!document.querySelector('#input-image img')", 30):
        raise TimeoutError("picking an example put no image in the input")
    for name, text in (settings or {}).items():
        browser.eval(f"({_TYPE})('#{name} input', {json.dumps(str(text))})")
    if method is not None:
        browser.eval(
            "[...document.querySelectorAll('button')].find(b => b.textContent.includes('More options')).click()"
        )
        browser.wait_for(f"!!document.querySelector('#method input[value={method}]')", 10)
        browser.eval(f"document.querySelector('#method input[value={method}]').click()")
    start = time.monotonic()
    browser.eval("document.querySelector('#generate').click()")
    if not browser.wait_for(APP_DONE, timeout):
        error = browser.eval("[...document.querySelectorAll('.toast-body, .error')].map(e => e.textContent).join(' ')")
        raise TimeoutError(f"no GLB in {timeout} s; the page says: {error!r}; console: {browser.console[-5:]}")
    seconds = time.monotonic() - start
    return {
        "seconds": seconds,
        "downloads": browser.eval("[...document.querySelectorAll('#downloads a')].map(a => a.href)"),
        "summary": browser.eval("document.querySelector('#summary').textContent.trim()"),
        "views": browser.eval("document.querySelectorAll('#views img').length"),
    }


def rect(browser: Browser, selector: str) -> tuple[int, int, int, int]:
    """The element's (x, y, width, height) in the viewport, in whole pixels."""
    box = browser.eval(
        f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
        " return [r.left, r.top, r.width, r.height]; })()"
    )
    return tuple(int(round(v)) for v in box)


def drawn_fraction(png: bytes, box: tuple[int, int, int, int]) -> tuple[float, int]:
    """In the screenshot `png`, the fraction of the box's pixels that differ from its background (the median of
    its left and right edge strips) and how many colours those pixels hold: what a 3D view shows."""
    import io

    import numpy as np
    from PIL import Image

    x, y, w, h = box
    area = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)[max(y, 0) : y + h, max(x, 0) : x + w]
    strips = np.concatenate([area[:, : max(w // 20, 1)], area[:, -max(w // 20, 1) :]], 1).reshape(-1, 3)
    differs = np.abs(area - np.median(strips, 0)).sum(-1) > 60
    return float(differs.mean()), len(np.unique(area[differs], axis=0))


def wait_for_drawing(browser: Browser, selector: str, timeout: float = 60, least: float = 0.03) -> bytes:
    """Screenshots until the element `selector` (a 3D view's canvas) shows something: at least `least` of it differs
    from its background. Returns the last screenshot (the caller checks it); a WebGL view draws its model some
    frames after the page has it, later still on a busy machine."""
    deadline = time.monotonic() + timeout
    while True:
        png = browser.screenshot()
        if drawn_fraction(png, rect(browser, selector))[0] >= least or time.monotonic() > deadline:
            return png
        time.sleep(1)
