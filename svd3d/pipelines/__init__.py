"""One unrolled pipeline per job: video.py (image -> clip); orbit.py comes with the orbit issue."""
