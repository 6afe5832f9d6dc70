"""One unrolled pipeline per job: video.py (image -> clip), orbit.py (image -> views and cameras); text.py makes
the image both start from when they start from a prompt."""
