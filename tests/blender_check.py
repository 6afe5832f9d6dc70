"""Run inside Blender: import an svd3d asset and report what Blender sees, as JSON.

    blender -b --factory-startup --python tests/blender_check.py -- MESH OUT.json [RENDER.png]

MESH is a .glb / .gltf (Blender's glTF importer, which turns glTF's +Y up into Blender's +Z up) or an .obj (its
OBJ importer, forward -Z / up +Y, the same conversion). The report holds, in Blender's frame: the bounding box of
the imported geometry in world space (metres), the object's origin, the face count (triangles), and each
material with the image its Base Color is fed from. With RENDER.png it also renders the asset (Workbench,
texture colours, from the front and a little above) for the README. tests/test_viewer.py checks the report.
"""

import json
import math
import sys

import bpy
from mathutils import Vector

args = sys.argv[sys.argv.index("--") + 1 :]
mesh_path, out_path = args[0], args[1]
render_path = args[2] if len(args) > 2 else None

bpy.ops.wm.read_factory_settings(use_empty=True)
try:  # Debian's Blender 3.4 glTF add-on calls np.bool, which NumPy 1.24 (Debian 12's) removed: give it the alias
    import numpy

    if "bool" not in numpy.__dict__:
        numpy.bool = bool
except ImportError:  # the glTF importer itself needs NumPy; its error then says so
    pass
if mesh_path.lower().endswith((".glb", ".gltf")):
    bpy.ops.import_scene.gltf(filepath=mesh_path)
elif hasattr(bpy.ops.wm, "obj_import"):  # Blender 3.2+: the C++ importer
    bpy.ops.wm.obj_import(filepath=mesh_path, forward_axis="NEGATIVE_Z", up_axis="Y")
else:
    bpy.ops.import_scene.obj(filepath=mesh_path, axis_forward="-Z", axis_up="Y")

objects = [o for o in bpy.context.scene.objects if o.type == "MESH"]
lo, hi = [math.inf] * 3, [-math.inf] * 3
faces = triangles = 0
materials = {}
for obj in objects:
    for v in obj.data.vertices:
        p = obj.matrix_world @ v.co
        lo = [min(a, b) for a, b in zip(lo, p, strict=True)]
        hi = [max(a, b) for a, b in zip(hi, p, strict=True)]
    faces += len(obj.data.polygons)
    triangles += sum(len(p.vertices) - 2 for p in obj.data.polygons)
    for slot in obj.material_slots:
        mat = slot.material
        if mat is None:
            continue
        image = None
        if mat.use_nodes:
            bsdf = next((n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED"), None)
            if bsdf is not None and bsdf.inputs["Base Color"].is_linked:
                node = bsdf.inputs["Base Color"].links[0].from_node
                while node.type != "TEX_IMAGE" and node.inputs and any(i.is_linked for i in node.inputs):
                    node = next(i for i in node.inputs if i.is_linked).links[0].from_node  # through mix / colour nodes
                if node.type == "TEX_IMAGE" and node.image is not None:
                    image = {"name": node.image.name, "size": list(node.image.size)}
        materials[mat.name] = {"base_color_image": image}

report = {
    "importer": "gltf" if mesh_path.lower().endswith((".glb", ".gltf")) else "obj",
    "blender": bpy.app.version_string,
    "objects": len(objects),
    "origins": [list(o.matrix_world.translation) for o in objects],
    "bbox_min": lo,
    "bbox_max": hi,
    "faces": faces,
    "triangles": triangles,
    "materials": materials,
}

if render_path:
    scene = bpy.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "TEXTURE"
    scene.render.resolution_x = scene.render.resolution_y = 480
    scene.render.film_transparent = False
    scene.view_settings.view_transform = "Standard"  # Filmic would turn the white background grey
    world = bpy.data.worlds.new("white")
    scene.world = world
    world.color = (1, 1, 1)
    centre = Vector([(a + b) / 2 for a, b in zip(lo, hi, strict=True)])
    size = max(b - a for a, b in zip(lo, hi, strict=True))
    cam = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    scene.collection.objects.link(cam)
    # in front (-Y in Blender is glTF's +Z, the input view's side), a little above, turned 30 degrees
    direction = Vector((math.sin(math.radians(30)), -math.cos(math.radians(30)), 0.45)).normalized()
    cam.location = centre + direction * size * 2.6
    cam.rotation_euler = (centre - cam.location).to_track_quat("-Z", "Y").to_euler()
    cam.data.lens = 50
    scene.camera = cam
    scene.render.filepath = render_path
    bpy.ops.render.render(write_still=True)
    report["render"] = render_path

with open(out_path, "w") as fh:
    json.dump(report, fh, indent=1)
