"""Write a clinical report: self-contained HTML and a PDF from the same template.

:func:`write_report` builds the content (:func:`~medpose.report.content.build_content`),
renders the packaged jinja2 template (``templates/report.html.j2``: inline CSS, figures as
embedded PNG, no network) and turns the same HTML into a PDF with weasyprint.  Where
weasyprint cannot be imported or fails, a PDF is drawn with matplotlib alone (text and
figures, ``PdfPages``) and a warning says so; where the template is missing, a plain built-in
template is used with a warning.  Each file is written atomically: a report that fails leaves
the previous one in place, and a PDF that fails leaves the HTML.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import re
import textwrap
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from ..errors import InputError
from ..io._util import atomic_path, atomic_write
from .content import ReportContent, Section, build_content
from .display import figure_png, img_tag

__all__ = ["ReportFiles", "ReportWarning", "write_report", "render_html", "write_pdf"]

_log = logging.getLogger("medpose.report")
TEMPLATE = "report.html.j2"

#: Used when the packaged template cannot be read: the same content, plainer.
FALLBACK_TEMPLATE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>{{ footer }}</title><style>body{font-family:sans-serif;font-size:10pt}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 4px}</style></head><body>
{%- macro table(s, flags=None, mono=None) -%}<table><tr>{% for h in s.header %}<th>{{ h }}</th>
{% endfor %}</tr>{% for row in s.rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}
</tr>{% endfor %}</table>{%- endmacro -%}
<h1>{{ c.title }}</h1><table>{% for k, v in c.header %}<tr><td>{{ k }}</td><td>{{ v }}</td></tr>
{% endfor %}</table><h2>Summary</h2><p><b>{{ c.score }}</b> {{ c.score_words }}</p>
{{ table(c.summary) }}{% if c.progress %}<h2>{{ c.progress.title }}</h2><ul>
{% for w in c.progress_words %}<li>{{ w }}</li>{% endfor %}</ul>{{ table(c.progress) }}
{% for cap, img in progress_figures %}<p>{{ img | safe }}<br>{{ cap }}</p>{% endfor %}{% endif %}
{% for s in c.exercises %}<h2>{{ s.title }}</h2>{{ table(s) }}{% endfor %}
{% for cap, img in figures %}<p>{{ img | safe }}<br>{{ cap }}</p>{% endfor %}
{% for s in c.registration %}<h2>{{ s.title }}</h2>{{ table(s) }}{% endfor %}
{% if c.quality %}<h2>{{ c.quality.title }}</h2>{{ table(c.quality) }}{% endif %}
{% if c.provenance %}<h2>{{ c.provenance.title }}</h2>{{ table(c.provenance) }}{% endif %}
</body></html>"""


class ReportWarning(UserWarning):
    """A report was made in a reduced form (plain template, matplotlib PDF, no PDF)."""


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote.

    Attributes
    ----------
    html : Path
    pdf : Path or None
        None when no PDF was asked for or none could be made.
    pdf_engine : str
        ``"weasyprint"``, ``"matplotlib"`` (the fallback) or ``""`` (no PDF).
    warnings : tuple of str
        What was reduced, in words (also issued as :class:`ReportWarning`).
    """

    html: Path
    pdf: Path | None
    pdf_engine: str
    warnings: tuple[str, ...] = ()

    def __repr__(self) -> str:
        pdf = f"{self.pdf} ({self.pdf_engine})" if self.pdf else "no PDF"
        return f"ReportFiles(html={self.html}, pdf={pdf}, {len(self.warnings)} warning(s))"


def _warn(notes: list[str], text: str) -> None:
    notes.append(text)
    warnings.warn(text, ReportWarning, stacklevel=3)
    _log.warning(text)


def _flag_class(text: Any) -> str:
    t = str(text)
    return (
        "below"
        if "below" in t
        else "above"
        if "above" in t
        else "within"
        if "within" in t
        else "none"
    )


def _footer(c: ReportContent) -> str:
    return re.sub(r"[^\w .,:()/+-]", "", c.title)[:80]


def _template_text(notes: list[str], template: str | os.PathLike[str] | None) -> str:
    try:
        if template is not None:
            return Path(template).read_text(encoding="utf-8")
        return (
            resources.files("medpose.report").joinpath(f"templates/{TEMPLATE}").read_text("utf-8")
        )
    except (OSError, UnicodeDecodeError) as exc:
        where = template if template is not None else f"medpose/report/templates/{TEMPLATE}"
        _warn(notes, f"report template {where} could not be read ({type(exc).__name__}); "
                     "the plain built-in template was used")  # fmt: skip
        return FALLBACK_TEMPLATE


def render_html(
    content: ReportContent,
    *,
    template: str | os.PathLike[str] | None = None,
    notes: list[str] | None = None,
) -> str:
    """The report as one self-contained HTML page (CSS inline, figures as base64 PNG)."""
    import jinja2

    notes = [] if notes is None else notes
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.globals["flag_class"] = _flag_class
    source = _template_text(notes, template)
    try:
        tpl = env.from_string(source)
    except jinja2.TemplateError as exc:
        _warn(notes, f"report template unusable ({exc}); the plain built-in template was used")
        tpl = env.from_string(FALLBACK_TEMPLATE)
    return tpl.render(
        c=content,
        footer=_footer(content),
        figures=[(cap, img_tag(f, dpi=120, alt=cap)) for cap, f in content.figures],
        progress_figures=[
            (cap, img_tag(f, dpi=120, alt=cap)) for cap, f in content.progress_figures
        ],
    )


# ------------------------------------------------------------------------ PDF
def _weasyprint_pdf(html: str, tmp: Path) -> None:
    import weasyprint

    weasyprint.HTML(string=html).write_pdf(str(tmp))


def _text_page(pdf: Any, lines: list[tuple[str, str]]) -> None:
    """Lines ``(style, text)`` on A4 pages; style ``h1``, ``h2`` or ``p``."""
    size = {"h1": 15, "h2": 11.5, "p": 8.5}
    fig, y = None, 0.0
    for style, text in lines:
        table = style == "p" and " | " in text
        wrapped = textwrap.wrap(text, 100 if table else 110 if style == "p" else 80) or [""]
        need = len(wrapped) * size[style] * 1.5 / (11.69 * 72) + (0.012 if style != "p" else 0)
        if fig is None or y - need < 0.05:
            if fig is not None:
                pdf.savefig(fig)
            fig, y = Figure(figsize=(8.27, 11.69)), 0.95
        y -= 0.01 if style != "p" else 0
        for w in wrapped:
            fig.text(0.07, y, w, fontsize=size[style] - (1.3 if table else 0), va="top",
                     weight="bold" if style != "p" else "normal",
                     family="monospace" if table else "sans-serif")  # fmt: skip
            y -= size[style] * 1.5 / (11.69 * 72)
    if fig is not None:
        pdf.savefig(fig)


def _figure_page(fig: Figure, caption: str) -> Figure:
    """``fig`` on an A4 page, its width 86 % of the page, the caption below it."""
    import matplotlib.image as mpimg

    image = mpimg.imread(io.BytesIO(figure_png(fig, dpi=150)), format="png")
    h, w = image.shape[:2]
    page = Figure(figsize=(8.27, 11.69))
    width = 0.86
    height = width * (h / w) * (8.27 / 11.69)
    ax = page.add_axes((0.07, 0.93 - height, width, height))
    ax.imshow(image)
    ax.set_axis_off()
    page.text(0.07, 0.92 - height, textwrap.fill(caption, 110), fontsize=8, va="top")
    return page


def _section_lines(s: Section) -> list[tuple[str, str]]:
    lines = [("h2", s.title), ("p", " | ".join(s.header))]
    lines += [("p", " | ".join(row)) for row in s.rows]
    return lines + ([("p", s.note)] if s.note else [])


def _matplotlib_pdf(c: ReportContent, tmp: Path) -> None:
    from matplotlib.backends.backend_pdf import PdfPages

    lines: list[tuple[str, str]] = [("h1", c.title)]
    lines += [("p", f"{k}: {v}") for k, v in c.header]
    lines += [("h2", "Summary"), ("p", f"Overall score: {c.score}. {c.score_words}")]
    lines += _section_lines(c.summary)[1:] + [("p", n) for n in c.notes]
    if c.progress is not None:
        lines += _section_lines(c.progress) + [("p", w) for w in c.progress_words]
    for s in [*c.exercises, *c.registration, c.quality, c.provenance]:
        if s is not None:
            lines += _section_lines(s)
    with PdfPages(tmp) as pdf:
        _text_page(pdf, lines)
        for cap, fig in [*c.figures, *c.progress_figures]:
            pdf.savefig(_figure_page(fig, cap))
        info = pdf.infodict()
        info["Title"] = c.title
        info["CreationDate"] = dt.datetime.now(dt.timezone.utc)


def write_pdf(content: ReportContent, html: str, path: Path, notes: list[str]) -> str:
    """Write the PDF atomically: weasyprint, else matplotlib; return the engine used
    (``""`` when neither worked: the reasons are in ``notes``)."""
    try:
        with atomic_path(path) as tmp:
            _weasyprint_pdf(html, tmp)
        return "weasyprint"
    except Exception as exc:  # an import error of its system libraries, or a rendering error
        _warn(notes, f"weasyprint could not make the PDF ({type(exc).__name__}: "
                     f"{str(exc)[:200]}); a plainer PDF was drawn with matplotlib")  # fmt: skip
    try:
        with atomic_path(path) as tmp:
            _matplotlib_pdf(content, tmp)
        return "matplotlib"
    except Exception as exc:
        _warn(notes, f"no PDF could be made ({type(exc).__name__}: {str(exc)[:200]}); "
                     "the HTML report was written")  # fmt: skip
        return ""


def _paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix.lower() in (".html", ".htm"):
        return p, p.with_suffix(".pdf")
    if p.exists() and not p.is_dir():
        raise InputError(f"report: {p.name} exists and is not a folder; expected a folder or a "
                         "path ending in .html")  # fmt: skip
    return p / "report.html", p / "report.pdf"


def write_report(
    assessment: Any,
    path: str | os.PathLike[str],
    *,
    pdf: bool = True,
    study: Any = None,
    angles: Any = None,
    patient: str | None = None,
    date: str | dt.date | None = None,
    identifiers: Mapping[str, Any] | None = None,
    show_identifiers: bool = False,
    template: str | os.PathLike[str] | None = None,
) -> ReportFiles:
    """Write the clinical report of ``assessment`` as HTML (and PDF).

    Parameters
    ----------
    assessment : Assessment
        A protocol's result on one trial or a session.
    path : path-like
        A folder (``report.html`` and ``report.pdf`` are written in it) or a ``.html`` path
        (the PDF is written beside it with the suffix ``.pdf``).
    pdf : bool
        Also write the PDF.
    study : Study, optional
        The study database: earlier sessions of the same patient and protocol add the
        progress part (needs the patient's pseudonym, from ``patient`` or the assessment's
        provenance).
    angles : DataFrame, Fit or JointAngles, optional
        The joint angles (degrees) of the trial, for the angle curves and left vs right.
    patient, date : optional
        Pseudonymous patient id and session date for the header.
    identifiers : mapping, optional
        Age, sex, height, mass, session folder; shown only with ``show_identifiers=True``.
    template : path-like, optional
        Another jinja2 template (default: the packaged one).

    Returns
    -------
    ReportFiles
        The files written and any warnings (a plainer template or PDF, or no PDF).
    """
    html_path, pdf_path = _paths(path)
    content = build_content(
        assessment,
        angles=angles,
        study=study,
        patient=patient,
        date=date,
        identifiers=identifiers,
        show_identifiers=show_identifiers,
    )
    notes: list[str] = []
    html = render_html(content, template=template, notes=notes)
    with atomic_write(html_path) as fh:
        fh.write(html)
    engine = write_pdf(content, html, pdf_path, notes) if pdf else ""
    _log.info("report written: %s%s", html_path.name, f", {pdf_path.name}" if engine else "")
    return ReportFiles(html_path, pdf_path if engine else None, engine, tuple(notes))
