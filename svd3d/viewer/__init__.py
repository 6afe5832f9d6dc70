"""index.html for svd3d's output folders: look at a result instead of reading its JSON.

`write_index(folder)` describes what a folder holds: the input image, the turntable clip (or, for a folder of
video frames, the frames played in turn), the views with their azimuth / elevation (transforms.json), the mesh in
an interactive 3D viewer (orbit, zoom, auto-rotate, texture on / off, wireframe on / off; its size in metres and
face count, read from the GLB itself), and the settings and quality numbers of run.json / recon.json. `write_batch_index(root)` lists a
batch's items (ROOT/results.jsonl), each linking to its own index.html.

The page works offline, from file:// and from any static server: the viewer script (@google/model-viewer's UMD
build, vendored beside this file with its licence) is inlined as a classic script, and the GLB is embedded too,
because Chromium refuses fetch() of file:// URLs from a file:// page; over http(s) the page loads the mesh file
beside it instead. model-viewer has no wireframe mode, so the page also embeds `wireframe_glb(mesh)`, a small GLB
of the mesh's edges (a LINES primitive) over its plain surface, and the wireframe switch shows it in the mesh's
place at the same camera. Every string that comes from a file or a path is HTML-escaped. This module reads JSON
and GLB buffers (numpy) and writes text: no torch, no trimesh.
"""

from __future__ import annotations

import base64
import html
import json
import re
import struct
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import numpy as np

from svd3d.errors import SVD3DError
from svd3d.outputs import atomic_file

INDEX = "index.html"
MODEL_VIEWER_VERSION = "4.4.0"
SCRIPT = Path(__file__).with_name("model-viewer-umd.min.js")
EMBED_LIMIT = 48 << 20  # bytes: a larger GLB is not embedded (the page then shows it only when served)
MESH_NAMES = ("mesh.glb", "model.glb")


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _url(path: str) -> str:
    """A relative URL for a POSIX path inside the folder, escaped for an HTML attribute."""
    return _e(quote(path, safe="/"))


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _script_json(data) -> str:
    """JSON safe inside a <script> element (no '</' can end it early)."""
    return json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# ------------------------------------------------------------------------------------------------ the GLB


def _mat_mul(a: list[list[float]], b: list[list[float]]) -> list[list[float]]:
    return [[sum(a[i][k] * b[k][j] for k in range(4)) for j in range(4)] for i in range(4)]


def _node_matrix(node: dict) -> list[list[float]]:
    """A glTF node's local transform as a row-major 4x4 (glTF stores `matrix` column-major, or T * R * S)."""
    if "matrix" in node:
        m = node["matrix"]
        return [[m[c * 4 + r] for c in range(4)] for r in range(4)]
    tx, ty, tz = node.get("translation", [0, 0, 0])
    x, y, z, w = node.get("rotation", [0, 0, 0, 1])
    sx, sy, sz = node.get("scale", [1, 1, 1])
    rot = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    scale = (sx, sy, sz)
    return [[rot[r][c] * scale[c] for c in range(3)] + [(tx, ty, tz)[r]] for r in range(3)] + [[0, 0, 0, 1]]


def _glb_chunks(data: bytes) -> tuple[dict, bytes] | None:
    """A GLB's JSON tree and its BIN chunk (b"" when it has none); None when `data` is not a GLB."""
    if len(data) < 20 or data[:4] != b"glTF":
        return None
    length, kind = struct.unpack_from("<I4s", data, 12)
    if kind != b"JSON":
        return None
    try:
        tree = json.loads(data[20 : 20 + length])
    except ValueError:
        return None
    binary, at = b"", 20 + length
    if at + 8 <= len(data):
        size, kind = struct.unpack_from("<I4s", data, at)
        binary = data[at + 8 : at + 8 + size] if kind == b"BIN\0" else b""
    return (tree, binary) if isinstance(tree, dict) else None


def _mesh_nodes(tree: dict) -> Iterator[tuple[dict, list[list[float]]]]:
    """Each mesh of the default scene (or of every root node) with its world transform, a row-major 4x4."""
    meshes, nodes = tree.get("meshes", []), tree.get("nodes", [])

    def visit(index: int, parent: list[list[float]]):
        node = nodes[index]
        world = _mat_mul(parent, _node_matrix(node))
        if "mesh" in node:
            yield meshes[node["mesh"]], world
        for child in node.get("children", []):
            yield from visit(child, world)

    identity = [[float(r == c) for c in range(4)] for r in range(4)]
    scenes = tree.get("scenes", [])
    roots = scenes[tree.get("scene", 0)].get("nodes", []) if scenes else range(len(nodes))
    for root in roots:
        yield from visit(root, identity)


def glb_summary(data: bytes) -> dict:
    """What a GLB holds, read from its JSON chunk: triangles, vertices, materials, textures, and the axis-aligned
    size in metres (from each POSITION accessor's min / max, which glTF requires, through the node transforms).
    Empty when `data` is not a GLB."""
    chunks = _glb_chunks(data)
    if chunks is None:
        return {}
    tree = chunks[0]
    accessors = tree.get("accessors", [])
    faces = vertices = 0
    lo, hi = [float("inf")] * 3, [float("-inf")] * 3
    for mesh, world in _mesh_nodes(tree):
        for prim in mesh.get("primitives", []):
            pos = accessors[prim["attributes"]["POSITION"]]
            vertices += pos.get("count", 0)
            if prim.get("mode", 4) == 4:
                faces += (accessors[prim["indices"]]["count"] if "indices" in prim else pos.get("count", 0)) // 3
            if "min" in pos and "max" in pos:
                for corner in range(8):
                    p = [(pos["max"] if corner >> i & 1 else pos["min"])[i] for i in range(3)]
                    q = [sum(world[r][c] * p[c] for c in range(3)) + world[r][3] for r in range(3)]
                    lo[:] = [min(a, b) for a, b in zip(lo, q, strict=True)]
                    hi[:] = [max(a, b) for a, b in zip(hi, q, strict=True)]
    size = [round(b - a, 4) for a, b in zip(lo, hi, strict=True)] if faces or vertices else None
    return {
        "faces": faces,
        "vertices": vertices,
        "materials": len(tree.get("materials", [])),
        "textures": len(tree.get("textures", [])),
        "size_m": size,
        "min_m": [round(a, 4) for a in lo] if size else None,
        "bytes": len(data),
    }


# ------------------------------------------------------------------------------------------------ the wireframe

COMPONENTS = {5121: np.uint8, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}  # glTF componentType -> dtype
WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
SURFACE_GREY, EDGE_GREY = [0.82, 0.82, 0.8, 1.0], [0.05, 0.05, 0.08, 1.0]  # linear RGBA
EDGE_LIFT = 0.002  # of the mesh's diagonal: edges drawn this far out along the normals, just over the surface


def _accessor(tree: dict, binary: bytes, index: int) -> np.ndarray | None:
    """An accessor's values, (count, width), or None for what this reader leaves out (sparse, no buffer view,
    quantised or normalised components)."""
    acc = tree["accessors"][index]
    dtype = COMPONENTS.get(acc.get("componentType"))
    if "sparse" in acc or "bufferView" not in acc or dtype is None or acc.get("normalized"):
        return None
    view = tree["bufferViews"][acc["bufferView"]]
    width, count = WIDTHS[acc["type"]], acc["count"]
    item = np.dtype(dtype).itemsize
    stride = view.get("byteStride") or item * width
    offset = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    if count and offset + stride * (count - 1) + item * width > len(binary):
        return None
    values = np.ndarray((count, width), dtype, buffer=binary, offset=offset, strides=(stride, item))
    return np.array(values)


def _triangles(data: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """Every triangle primitive of a GLB in world coordinates: vertices (V, 3) float32 and faces (F, 3) int64, or
    None when it holds none this reader can read."""
    chunks = _glb_chunks(data)
    if chunks is None:
        return None
    tree, binary = chunks
    vertices, faces, base = [], [], 0
    for mesh, world in _mesh_nodes(tree):
        for prim in mesh.get("primitives", []):
            if prim.get("mode", 4) != 4 or "POSITION" not in prim.get("attributes", {}):
                continue
            pos = _accessor(tree, binary, prim["attributes"]["POSITION"])
            if pos is None or pos.dtype != np.float32:
                return None
            if "indices" in prim:
                idx = _accessor(tree, binary, prim["indices"])
                if idx is None:
                    return None
                idx = idx.reshape(-1, 3).astype(np.int64)
            else:
                idx = np.arange(len(pos) // 3 * 3, dtype=np.int64).reshape(-1, 3)
            m = np.asarray(world, np.float64)
            vertices.append((pos @ m[:3, :3].T + m[:3, 3]).astype(np.float32))  # (V, 3) world
            faces.append(idx + base)
            base += len(pos)
    if not faces or not sum(len(f) for f in faces):
        return None
    return np.concatenate(vertices), np.concatenate(faces)


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit normals: the area-weighted sum of each vertex's face normals (zero for a vertex on none)."""
    a, b, c = (vertices[faces[:, i]].astype(np.float64) for i in range(3))
    face = np.cross(b - a, c - a)  # (F, 3), length = twice the area
    normals = np.zeros((len(vertices), 3))
    for i in range(3):
        np.add.at(normals, faces[:, i], face)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)


def mesh_edges(faces: np.ndarray) -> np.ndarray:
    """The edges of triangles `faces` (F, 3): (E, 2) vertex pairs, each edge once, smaller index first."""
    pairs = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return np.unique(np.sort(pairs, axis=1), axis=0)


def wireframe_glb(data: bytes) -> bytes | None:
    """The wireframe of a GLB's triangle meshes as a small GLB of its own: the surface in plain light grey and
    every edge once as a LINES primitive in near black, lifted `EDGE_LIFT` of the diagonal out along the vertex
    normals so the surface hides the edges behind it. In world coordinates (the node transforms applied), so a
    viewer frames it as it frames the mesh. None when `data` is not a GLB of triangles this reader can read."""
    mesh = _triangles(data)
    if mesh is None:
        return None
    vertices, faces = mesh
    vertices, inverse = np.unique(vertices, axis=0, return_inverse=True)  # one vertex where UV seams split it
    faces = inverse.reshape(-1)[faces]
    edges = mesh_edges(faces)
    diagonal = float(np.linalg.norm(vertices.max(0) - vertices.min(0)))
    lifted = (vertices + _vertex_normals(vertices, faces) * EDGE_LIFT * diagonal).astype(np.float32)

    # one buffer: surface positions, edge positions, triangle indices, line indices (each a multiple of 4 bytes)
    index, component = (np.uint16, 5123) if len(vertices) < 65535 else (np.uint32, 5125)
    pad = [np.zeros(-(faces.size * 2) % 4 // 2, index)] if index == np.uint16 else []
    blobs = [vertices.astype(np.float32), lifted, np.concatenate([faces.reshape(-1).astype(index), *pad]),
             edges.reshape(-1).astype(index)]  # fmt: skip
    views, offset, binary = [], 0, b""
    for i, blob in enumerate(blobs):
        raw = blob.tobytes()
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(raw),
                      "target": 34962 if i < 2 else 34963})  # fmt: skip
        binary += raw
        offset += len(raw)
    views[2]["byteLength"] = faces.size * np.dtype(index).itemsize  # without the padding

    def positions(view: int, values: np.ndarray) -> dict:
        return {"bufferView": view, "componentType": 5126, "count": len(values), "type": "VEC3",
                "min": values.min(0).tolist(), "max": values.max(0).tolist()}  # fmt: skip

    primitives = [
        {"attributes": {"POSITION": 0}, "indices": 2, "mode": 4, "material": 0},  # the surface: triangles
        {"attributes": {"POSITION": 1}, "indices": 3, "mode": 1, "material": 1},  # the edges: lines
    ]
    surface = {"baseColorFactor": SURFACE_GREY, "metallicFactor": 0.0, "roughnessFactor": 1.0}
    materials = [
        {"name": "surface", "pbrMetallicRoughness": surface, "doubleSided": True},
        {"name": "edges", "pbrMetallicRoughness": {"baseColorFactor": EDGE_GREY, "metallicFactor": 0.0}},
    ]
    tree = {
        "asset": {"version": "2.0", "generator": "svd3d viewer (wireframe)"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"name": "wireframe", "mesh": 0}],
        "meshes": [{"primitives": primitives}],
        "materials": materials,
        "accessors": [
            positions(0, vertices),
            positions(1, lifted),
            {"bufferView": 2, "componentType": component, "count": faces.size, "type": "SCALAR"},
            {"bufferView": 3, "componentType": component, "count": edges.size, "type": "SCALAR"},
        ],
        "bufferViews": views,
        "buffers": [{"byteLength": len(binary)}],
    }
    text = json.dumps(tree, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    return (struct.pack("<4sII", b"glTF", 2, total) + struct.pack("<I4s", len(text), b"JSON") + text
            + struct.pack("<I4s", len(binary), b"BIN\0") + binary)  # fmt: skip


# ------------------------------------------------------------------------------------------------ page parts

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#f4f4f2;color:#222}
header{padding:12px 20px;background:#222;color:#eee}header h1{font-size:18px;margin:0}
header p{margin:2px 0 0;color:#bbb;font-size:12px}
main{padding:12px 20px;display:grid;gap:16px;grid-template-columns:repeat(auto-fit,minmax(320px,1fr))}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 12px}
section.wide{grid-column:1/-1}h2{font-size:15px;margin:0 0 8px}
model-viewer{width:100%;height:420px;background:#fff}
.controls label{margin-right:14px;white-space:nowrap}.note{color:#777;font-size:12px}
.views{display:flex;flex-wrap:wrap;gap:6px}.views figure{margin:0;text-align:center;font-size:11px}
.views img{width:96px;height:96px;object-fit:contain;image-rendering:pixelated;border:1px solid #eee}
.media .views img,.media .views video{width:200px;height:200px;object-fit:contain}
table{border-collapse:collapse;font-size:12px}td,th{border-bottom:1px solid #eee;padding:2px 8px 2px 0;
text-align:left;vertical-align:top}th{color:#555;font-weight:600}td.v{font-family:ui-monospace,monospace}
.ok{color:#176d2c}.failed{color:#a31515}.skipped{color:#555}
"""

VIEWER_JS = """
(function () {
  const mv = document.getElementById('mv');
  if (!mv) { document.body.dataset.model = 'none'; return; }
  const status = document.getElementById('mv-status');
  const say = (state, text) => { document.body.dataset.model = state; status.textContent = text; };
  const blob = (id) => {  // a GLB embedded in the page as base64, as a blob: URL
    const el = document.getElementById(id);
    if (!el) return null;
    const text = atob(el.textContent.trim()), bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    return URL.createObjectURL(new Blob([bytes], {type: 'model/gltf-binary'}));
  };
  const file = mv.dataset.file;
  let src = null;
  if (file && location.protocol !== 'file:') src = file;  // served: the mesh file beside this page
  else src = blob('svd3d-model');  // file:// (fetch of file:// URLs is refused): the copy embedded in this page
  if (!src) { say('unavailable', 'this page does not embed the mesh; serve the folder: svd3d view FOLDER'); return; }
  const wire = blob('svd3d-wireframe'), wireBox = document.getElementById('wireframe');
  const textureBox = document.getElementById('texture');
  let textures = null, camera = null;
  wireBox.disabled = !wire;
  mv.addEventListener('load', () => {
    const showing = mv.src === wire ? 'wireframe' : 'mesh';
    mv.dataset.view = showing;
    if (camera) {  // the same view of the object in either model
      mv.cameraOrbit = camera.orbit; mv.cameraTarget = camera.target; mv.fieldOfView = camera.fov;
      mv.jumpCameraToGoal();
    }
    if (showing === 'wireframe') { say('loaded', 'wireframe: every edge of the mesh over its plain surface'); return; }
    const d = mv.getDimensions();
    mv.dataset.size = [d.x, d.y, d.z].map(v => v.toFixed(3)).join(' x ');
    textures = mv.model ? mv.model.materials.map(m => m.pbrMetallicRoughness.baseColorTexture.texture) : [];
    showTexture();
    say('loaded', 'loaded: ' + mv.dataset.size + ' m (viewer\\'s measure)');
    if (!document.title.startsWith('loaded')) document.title = 'loaded - ' + document.title;
  });
  mv.addEventListener('error', (e) => say('error', 'the viewer could not load the mesh: ' + (e.detail && e.detail.type)));
  document.getElementById('rotate').addEventListener('change', (e) => { mv.autoRotate = e.target.checked; });
  const showTexture = () => {
    if (!mv.model || !textures || mv.dataset.view !== 'mesh') return;
    mv.model.materials.forEach((m, i) => m.pbrMetallicRoughness.baseColorTexture.setTexture(
      textureBox.checked ? textures[i] : null));
  };
  textureBox.addEventListener('change', showTexture);
  wireBox.addEventListener('change', (e) => {
    camera = {orbit: mv.getCameraOrbit().toString(), target: mv.getCameraTarget().toString(),
              fov: mv.getFieldOfView() + 'deg'};
    textureBox.disabled = e.target.checked;
    say('loading', e.target.checked ? 'loading the wireframe ...' : 'loading the mesh ...');
    mv.src = e.target.checked ? wire : src;
  });
  say('loading', 'loading the mesh ...');
  mv.src = src;
})();
"""

PLAYER_JS = """
(function () {
  const img = document.getElementById('player');
  if (!img) return;
  const frames = JSON.parse(document.getElementById('frames-list').textContent);
  let i = 0;
  setInterval(() => { i = (i + 1) % frames.length; img.src = frames[i]; }, 1000 / Number(img.dataset.fps || 7));
})();
"""


def _table(rows: list[tuple[str, object]]) -> str:
    body = []
    for key, value in rows:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        body.append(f"<tr><th>{_e(key)}</th><td class=v>{_e(text)}</td></tr>")
    return "<table>" + "".join(body) + "</table>"


def _flat(data, prefix: str = "") -> list[tuple[str, object]]:
    """Nested dicts as (dotted key, value) rows; lists stay whole."""
    if not isinstance(data, dict):
        return [(prefix, data)]
    rows = []
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        rows += _flat(value, name) if isinstance(value, dict) else [(name, value)]
    return rows


def _fmt(value, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "n/a"


def _views(folder: Path) -> list[tuple[str, str]]:
    """(relative image path, caption) for each view: transforms.json's frames, else the folder's NNN.png."""
    transforms = _read_json(folder / "transforms.json")
    views = []
    for i, frame in enumerate(transforms.get("frames", []) if isinstance(transforms.get("frames"), list) else []):
        if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
            continue
        az, el = frame.get("azimuth_deg"), frame.get("elevation_deg")
        angles = f"az {az:.0f}° el {el:.0f}°" if isinstance(az, int | float) and isinstance(el, int | float) else ""
        views.append((frame["file_path"], f"{i:03d} {angles}".strip()))
    if not views:
        views = [(p.name, p.stem) for p in sorted(folder.glob("[0-9]*.png"))]
    return views


def _model_section(folder: Path, model: bytes | None, model_note: str) -> str:
    name = next((n for n in MESH_NAMES if (folder / n).is_file()), None)
    if model is None and name is not None:
        model = (folder / name).read_bytes()
    if model is None:
        return ""
    info = glb_summary(model)
    size = info.get("size_m")
    facts = [
        ("size (x, y, z)", " x ".join(f"{v:.3f}" for v in size) + " m" if size else "n/a"),
        ("faces", f"{info.get('faces', 0):,}"),
        ("vertices", f"{info.get('vertices', 0):,}"),
        ("materials / textures", f"{info.get('materials', 0)} / {info.get('textures', 0)}"),
        ("file", f"{name or 'embedded'} ({len(model) / 1e6:.2f} MB)"),
    ]
    embed = ""
    if len(model) <= EMBED_LIMIT:
        embed = f'<script type="application/octet-stream" id="svd3d-model">{base64.b64encode(model).decode()}</script>'
        wire = wireframe_glb(model)
        if wire is not None:
            embed += (f'<script type="application/octet-stream" id="svd3d-wireframe">'
                      f"{base64.b64encode(wire).decode()}</script>")  # fmt: skip
    note = f"<p class=note>{_e(model_note)}</p>" if model_note else ""
    return f"""<section class=wide><h2>Mesh</h2>
<div class=controls><label><input type=checkbox id=rotate checked> auto-rotate</label>
<label><input type=checkbox id=texture checked> texture</label>
<label><input type=checkbox id=wireframe> wireframe</label>
<span class=note>drag to orbit, scroll or pinch to zoom, right-drag to pan</span></div>
<model-viewer id=mv data-file="{_url(name) if name else ""}" camera-controls auto-rotate interaction-prompt=none
 shadow-intensity=0.6 exposure=1.0 alt="the reconstructed mesh"></model-viewer>
<p class=note id=mv-status>the viewer needs JavaScript and WebGL</p>{note}
{_table(facts)}{embed}</section>"""


def _settings_section(run: dict, recon: dict) -> str:
    parts = []
    if recon:
        quality = recon.get("quality", {}) if isinstance(recon.get("quality"), dict) else {}
        rows = [
            ("silhouette IoU (mean / min)",
             f"{_fmt(quality.get('silhouette_iou_mean'))} / {_fmt(quality.get('silhouette_iou_min'))}"),
            ("view PSNR (mean)", f"{_fmt(quality.get('view_psnr_mean_db'), 1)} dB"),
        ]  # fmt: skip
        mesh = recon.get("mesh", {}) if isinstance(recon.get("mesh"), dict) else {}
        rows += [(f"mesh.{k}", v) for k, v in mesh.items()]
        rows += _flat(recon.get("settings", {}), "settings")
        timings = recon.get("timings_s", {}) if isinstance(recon.get("timings_s"), dict) else {}
        rows += [("time (s)", round(sum(v for v in timings.values() if isinstance(v, int | float)), 2))]
        parts.append(f"<section><h2>Reconstruction (recon.json)</h2>{_table(rows)}</section>")
    if run:
        rows = [("job", run.get("written_by", run.get("job", "?")))]
        model = run.get("model")
        if isinstance(model, dict):
            rows += [(f"model.{k}", v) for k, v in model.items() if k in ("name", "source", "kind", "fingerprint")]
        elif model is not None:
            rows.append(("model", model))
        text = run.get("input", {}).get("text_to_image") if isinstance(run.get("input"), dict) else None
        if isinstance(text, dict):  # the job started from a prompt
            rows += [
                ("prompt", text.get("full_prompt")),
                ("text to image.model", (text.get("model") or {}).get("source")),
            ]
            rows += [(f"text to image.{k}", text.get(k)) for k in ("seed", "steps", "guidance", "size")]
        rows += _flat(run.get("settings", {}), "settings")
        if isinstance(run.get("preprocess"), dict):
            rows += _flat(run["preprocess"], "preprocess")
        timings = run.get("timings_s", {}) if isinstance(run.get("timings_s"), dict) else {}
        rows += [(f"time.{k} (s)", v) for k, v in timings.items()]
        if "command" in run:
            rows.append(("command", run["command"]))
        parts.append(f"<section><h2>Run (run.json)</h2>{_table(rows)}</section>")
    return "".join(parts)


def _page(title: str, subtitle: str, body: str, scripts: str) -> str:
    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><meta name=viewport content="width=device-width,initial-scale=1">
<meta name=generator content="svd3d">
<title>{_e(title)}</title><style>{CSS}</style></head>
<body data-model=none><header><h1>{_e(title)}</h1><p>{_e(subtitle)}</p></header>
<main>{body}</main>{scripts}</body></html>
"""


def _model_viewer_script() -> str:
    return f"<script>/* @google/model-viewer {MODEL_VIEWER_VERSION}, see svd3d/viewer/LICENSE */\n{SCRIPT.read_text()}</script>"


# ------------------------------------------------------------------------------------------------ pages


def index_html(
    folder: str | Path, *, model: bytes | None = None, model_note: str = "", title: str | None = None
) -> str:
    """The page for `folder` (what it holds now; links are relative to it). `model`: GLB bytes to show when the
    folder has no mesh.glb of its own (`svd3d render` shows the mesh it rendered)."""
    folder = Path(folder)
    run, recon = _read_json(folder / "run.json"), _read_json(folder / "recon.json")
    sections = []

    media = []
    if (folder / "prompt.png").is_file():  # the image a text-to-image model made from the prompt
        media.append('<figure><img src="prompt.png" alt="made from the prompt"><figcaption>made from the prompt'
                     "</figcaption></figure>")  # fmt: skip
    if (folder / "input.png").is_file():
        media.append('<figure><img src="input.png" alt="input"><figcaption>input</figcaption></figure>')
    clip = next((n for n in ("orbit.mp4", "orbit.webm", "orbit.gif") if (folder / n).is_file()), None)
    views = _views(folder)
    player = ""
    if clip and clip.endswith(".gif"):
        media.append(f'<figure><img src="{_url(clip)}" alt="turntable"><figcaption>{_e(clip)}</figcaption></figure>')
    elif clip:
        media.append(f'<figure><video src="{_url(clip)}" autoplay loop muted playsinline controls></video>'
                     f"<figcaption>{_e(clip)}</figcaption></figure>")  # fmt: skip
    elif views and not (folder / "transforms.json").is_file():  # a folder of video frames: play them in turn
        settings = run.get("settings", {}) if isinstance(run.get("settings"), dict) else {}
        fps = settings.get("fps", 7) if isinstance(settings.get("fps", 7), int | float) else 7
        media.append(f'<figure><img id=player src="{_url(views[0][0])}" data-fps="{_e(fps)}" alt="clip">'
                     f"<figcaption>the {len(views)} frames at {_e(fps)} fps</figcaption></figure>")  # fmt: skip
        player = (
            f'<script type="application/json" id="frames-list">{_script_json([quote(v) for v, _ in views])}</script>'
        )
        player += f"<script>{PLAYER_JS}</script>"
    if (folder / "preview.png").is_file():
        media.append('<figure><a href="preview.png"><img src="preview.png" alt="preview"></a>'
                     "<figcaption>preview.png</figcaption></figure>")  # fmt: skip
    if media:
        sections.append(
            f"<section class='wide media'><h2>Input and clip</h2><div class=views>{''.join(media)}</div></section>"
        )

    model_html = _model_section(folder, model, model_note)
    sections.append(model_html)
    if views:
        figures = "".join(
            f'<figure><a href="{_url(path)}"><img src="{_url(path)}" alt="{_e(path)}" loading=lazy></a>'
            f"<figcaption>{_e(caption)}</figcaption></figure>"
            for path, caption in views
        )
        sections.append(f"<section class=wide><h2>Views ({len(views)})</h2><div class=views>{figures}</div></section>")
    sections.append(_settings_section(run, recon))

    kind = run.get("written_by") or recon.get("written_by") or "svd3d"
    where = run.get("output") or recon.get("input") or ""
    scripts = player
    if model_html:
        scripts += _model_viewer_script() + f"<script>{VIEWER_JS}</script>"
    return _page(title or Path(str(where)).name or folder.name, f"{kind}: {where}", "".join(sections), scripts)


def write_index(folder: str | Path, dest: str | Path | None = None, **page) -> Path:
    """Write `index_html(folder, **page)` to `dest` [folder/index.html], atomically; returns its path."""
    dest = Path(dest) if dest is not None else Path(folder) / INDEX
    with atomic_file(dest) as tmp:
        tmp.write_text(index_html(folder, **page), encoding="utf-8")
    return dest


def batch_index_html(root: str | Path, records: list[dict]) -> str:
    """The page of a batch root: one row per item (its latest record), linking to the item's own index.html."""
    root = Path(root)
    rows = []
    for record in records:
        name = str(record.get("name", "?"))
        out = Path(str(record.get("output", name)))
        rel = out.name if out.parent.resolve() == root.resolve() else str(out)
        status = str(record.get("status", "?"))
        target = f"{rel}/{INDEX}" if (root / rel / INDEX).is_file() else rel
        thumb = next(
            (f"{rel}/{n}" for n in ("input.png", "preview.png", "000.png") if (root / rel / n).is_file()), None
        )
        if thumb is None and re.search(r"\.(gif|webp)$", rel):
            thumb = rel
        picture = f'<img src="{_url(thumb)}" alt="" style="height:64px">' if thumb else ""
        total = (record.get("timings_s") or {}).get("total") if isinstance(record.get("timings_s"), dict) else None
        rows.append(
            f'<tr><td>{picture}</td><td><a href="{_url(target)}">{_e(name)}</a></td>'
            f"<td class={_e(status)}>{_e(status)}</td><td class=v>{_e(record.get('input', ''))}</td>"
            f"<td>{_e(_fmt(total, 1))}</td><td>{_e(record.get('error') or '')}</td></tr>"
        )
    table = ("<table><tr><th></th><th>item</th><th>status</th><th>input</th><th>time (s)</th><th>error</th></tr>"
             + "".join(rows) + "</table>")  # fmt: skip
    body = f"<section class=wide><h2>{len(records)} item(s)</h2>{table}</section>"
    return _page(root.resolve().name, f"svd3d batch: {root.resolve()}", body, "")


def write_batch_index(root: str | Path, records: list[dict], dest: str | Path | None = None) -> Path:
    dest = Path(dest) if dest is not None else Path(root) / INDEX
    with atomic_file(dest) as tmp:
        tmp.write_text(batch_index_html(root, records), encoding="utf-8")
    return dest


# ------------------------------------------------------------------------------------------------ serving


def check_viewable(folder: str | Path) -> Path:
    """`folder` is a folder with an index.html (svd3d's outputs have one); SVD3DError naming the fix if not."""
    folder = Path(folder)
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is not a folder"
        raise SVD3DError(f"{folder} {what}; pass an svd3d output folder (svd3d orbit / recon / render / video -o DIR)")
    if not (folder / INDEX).is_file():
        raise SVD3DError(
            f"{folder} has no {INDEX}; svd3d orbit, recon, render and video (frames) write one into their output "
            "folder: pass such a folder, or rerun the job that made this one"
        )
    return folder


def make_server(folder: str | Path, port: int = 0, host: str = "127.0.0.1"):
    """An HTTP server of `folder`'s files on `host`:`port` (0: a free port), not started; quiet, with the media
    types a viewer page needs. SVD3DError when the port cannot be had."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Handler(SimpleHTTPRequestHandler):
        extensions_map = {
            **SimpleHTTPRequestHandler.extensions_map,
            ".glb": "model/gltf-binary", ".gltf": "model/gltf+json", ".mp4": "video/mp4", ".webp": "image/webp",
            ".json": "application/json", ".jsonl": "application/json", ".html": "text/html; charset=utf-8",
        }  # fmt: skip

        def log_message(self, format, *args):  # noqa: A002 (the standard library's name)
            pass

    folder = check_viewable(folder)
    try:
        return ThreadingHTTPServer((host, port), functools.partial(Handler, directory=str(folder)))
    except OSError as err:
        raise SVD3DError(
            f"cannot serve on {host}:{port}: {err.strerror or err}; choose another --port (or leave it out for a "
            "free one)"
        ) from None
