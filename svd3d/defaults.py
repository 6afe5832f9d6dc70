"""The user-facing defaults, written once: the Python API's signatures and the command line's options both read
them from here (this module imports nothing, so `svd3d --help` stays instant).

A model-dependent default (frames, steps, guidance, size, fps, ...) is not here: it is `None` in the signatures
and the model's own value (svd3d.models.info) is taken when the job runs.
"""

from __future__ import annotations

# generation (svd3d video, svd3d orbit)
SEED = 23  # the noise is drawn on the CPU from this seed, so a seed means the same output on every device
DTYPE = "auto"  # float16 on CUDA, float32 elsewhere
DEVICE = "auto"  # the first CUDA device, else Apple's mps, else the CPU
LORA_MODE = "fuse"  # LoRA adapters added into the weights (full speed); "separate": run beside them (PEFT layers)

# orbits (svd3d orbit, svd3d render)
ORBIT = "auto"  # svd3d orbit: "dynamic" when its views are meshed and the model takes cameras (SV3D_p), else "static"
RENDER_ORBIT = "static"  # one elevation all the way round; "dynamic" wobbles it (sees top and bottom)
ELEVATION = 10.0  # degrees above the object's equator: the photo's camera, and every view of a static orbit
OBJECT_FRACTION = 0.85  # the object's larger side as a fraction of the conditioning view

# reconstruction (svd3d recon, the mesh stage of svd3d orbit)
RECON_METHOD = "field"  # radiance field fitted to the views; "hull" is the visual hull alone
MESH_FORMATS = "glb"  # comma-separated: glb, obj, ply, stl
FACES = "default"  # a number, or a budget's name (svd3d.recon.mesh: mobile, default, hero)
TEXTURE = "auto"  # texture side in pixels, or auto: up to 1024, no more than the views hold (512 for 64 px views)
RECON_SEED = 0  # the field's initialisation and ray sampling

# rendering a mesh along an orbit (svd3d render)
RENDER_FRAMES = 21  # the views of an SV3D orbit
RENDER_SIZE = 576  # SV3D's view size
RENDER_FIT_TO = "sphere"  # the bounding sphere fits the unit cube: the mesh never leaves the frame
DYNAMIC_AMPLITUDE = 10.0  # degrees: the largest elevation swing of a dynamic orbit
RENDER_SEED = 0  # a dynamic orbit's wobble and jitter
SUPERSAMPLE = 3  # s x s rays in each edge pixel

# evaluation (svd3d eval orbit / video): item i uses seed + i
EVAL_SEED = 0

# training data (svd3d data)
DATA_SIZE = 64  # frame side in pixels
DATA_SEED = 0
