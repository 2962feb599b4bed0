"""Image volume readers and writers (a re-export of :mod:`medpose.imaging.volume`).

The I/O lives beside the :class:`~medpose.imaging.volume.Volume` type in
``medpose.imaging.volume``; this module only makes ``medpose.io`` the one place to look for
readers and writers.
"""

from __future__ import annotations

from ..imaging.volume import VOLUME_EXTENSIONS, Volume, list_dicom_series, read_volume, write_volume

__all__ = ["Volume", "read_volume", "write_volume", "list_dicom_series", "VOLUME_EXTENSIONS"]
