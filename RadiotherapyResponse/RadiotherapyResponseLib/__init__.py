"""Slicer-side code the RadiotherapyResponse modules share (widgets, background jobs); computation is in rtresponse."""
