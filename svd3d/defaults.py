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

# text to image (svd3d video / orbit --prompt ... --t2i-model ...): the conditioning image is made by a diffusers
# text-to-image pipeline, seeded with SEED. Steps and guidance suit one family of models and not another (Stable
# Diffusion wants about 25-50 steps at guidance 7.5, distilled "turbo" models 1-4 steps at guidance 0), so None
# means the pipeline's own default (its __call__'s: SD 50 / 7.5, SDXL 50 / 5.0, SD3 28 / 7.0, FLUX 28 / 3.5), and
# run.json records the values used.
T2I_STEPS = None
T2I_GUIDANCE = None
T2I_SIZE = None  # (width, height); None: the pipeline's native size, then the job's usual preprocessing
T2I_VIDEO_SUFFIX = ""  # appended to a video's prompt
# appended to an orbit's prompt: orbit models were trained on one whole object rendered on white, and svd3d finds
# the object by its plain background ("isolated on a white background" is the stock-photo caption web-trained
# text encoders know for such cut-outs)
T2I_ORBIT_SUFFIX = ", a single object isolated on a plain white background, whole object in view"

# orbits (svd3d orbit, svd3d render)
ORBIT = "auto"  # svd3d orbit: "dynamic" when its views are meshed and the model takes cameras (SV3D_p), else "static"
RENDER_ORBIT = "static"  # one elevation all the way round; "dynamic" wobbles it (sees top and bottom)
ELEVATION = 10.0  # degrees above the object's equator: the photo's camera, and every view of a static orbit
OBJECT_FRACTION = 0.85  # the object's larger side as a fraction of the conditioning view

# reconstruction (svd3d recon, the mesh stage of svd3d orbit)
RECON_METHOD = "field"  # radiance field fitted to the views; "hull" is the visual hull alone
MESH_FORMATS = "glb"  # comma-separated: glb, obj, ply, stl
FACES = "auto"  # a number, a budget's name (svd3d.recon.mesh: mobile, default, hero), or auto: the default budget
# (20000), fewer when the views hold fewer (8000 for 64 px views)
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
EVAL_FAMILY_SEED = 777  # svd3d eval orbit --family: the objects' seed, one no bundled training run drew

# training data (svd3d data)
DATA_SIZE = 64  # frame side in pixels
DATA_SEED = 0

# curating raw videos into training clips (svd3d curate); motion is measured in pixels per frame on frames scaled
# to a 128-pixel shorter side (svd3d.training.curate.ANALYSIS_SIDE)
CURATE_CUT_THRESHOLD = 0.3  # colour-histogram distance (0..1) at which consecutive frames are a cut
CURATE_MIN_MOTION = 0.25  # px/frame: clips that move less are static
CURATE_MAX_MOTION = 12.0  # px/frame: clips that move more are too fast to learn from
CURATE_MAX_CHAOS = 0.6  # flow incoherence (0 steady .. ~1.3 random): clips above it are chaotic
CURATE_MIN_FRAMES = 14  # shorter clips are dropped (SVD's 14-frame clips; svd3d data videos --frames)
CURATE_FLOW = "dis"  # dense optical flow: dis (OpenCV's DIS) or farneback
