"""rtresponse: radiotherapy response prediction from planning images and clinical factors.

The computing core of the RadiotherapyResponse 3D Slicer extension. Pure Python, no Qt;
works on SimpleITK images, numpy arrays and pandas DataFrames. ``rtresponse.mrml`` is the
only module that touches MRML nodes.

Importing this package is cheap on purpose: heavy dependencies (torch, timm, monai,
radiomics, even pandas and SimpleITK) are imported inside the functions that need them.
"""

__version__ = "0.1.0"

from .errors import InputError, RTResponseError  # noqa: E402  (tiny, dependency-free)

__all__ = ["__version__", "InputError", "RTResponseError"]
