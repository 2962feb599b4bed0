"""Clinical reports and figures: what a clinician reads and a researcher looks at.

* :mod:`medpose.report.figures`: the report's plotting functions, each returning a matplotlib
  Figure (angle curves, left vs right, repetition overlays, 3D skeleton, TRE map,
  reprojection error per camera, cohort distributions, progress with MDC95);
* :func:`write_report`: a self-contained HTML report and a PDF from the same template
  (:meth:`Assessment.to_report`, ``medpose report``);
* :mod:`medpose.report.display`: the compact tables and small plots results show in Jupyter;
* :mod:`medpose.report.display_data`: the same for landmarks, keypoint sequences, joint angles
  and volumes, and what their ``plot`` methods draw;
* :mod:`medpose.report.labels`: plain-language names for metric keys, joints and units.
"""

from __future__ import annotations

from . import figures
from .render import ReportFiles, write_report

__all__ = ["figures", "write_report", "ReportFiles"]
