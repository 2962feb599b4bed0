"""Imaging volumes (CT, MRI): reading, voxel <-> LPS mapping; see ``docs/formats-imaging.md``."""
