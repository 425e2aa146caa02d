"""Visualization: charts (matplotlib) and, later, 3D scenes (pyvista). Reads Datasets, never engines."""
