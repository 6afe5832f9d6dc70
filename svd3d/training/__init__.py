"""Training: datasets (rendered orbits, procedural objects, synthetic and real clips), recipes, the EDM loop."""
