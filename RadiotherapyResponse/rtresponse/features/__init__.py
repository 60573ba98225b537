"""Feature extraction: handcrafted (PyRadiomics), deep 2D/3D, and delineation perturbations."""
