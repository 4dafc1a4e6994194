"""All faces of a ``focus reconstruct`` run at a glance: ``summary.html`` and ``contact_sheet.png``.

The HTML page needs no server and no script: one row per face with the overlay, the aligned crop,
the render and the outlier mask (images linked from the result folders, relative paths, so the
output folder can be moved or zipped), the pose, the landmark fit and the outlier share, and links
to the meshes and coefficients; then every input that failed or was ignored, with the reason.
Results of earlier runs into the same folder are listed too, marked as such. The page is a
:mod:`jinja2` template with autoescaping, so file names never become markup. The contact sheet is
the overlays as one PNG.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import jinja2
from PIL import Image

from focus.io_utils import write_text_atomic

_PAGE = """\
<!doctype html><html><head><meta charset='utf-8'><title>focus reconstruct</title><style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:6px;vertical-align:top;text-align:left}
img{image-rendering:auto;border:1px solid #ccc}.ov{max-width:320px;max-height:320px}.sm{width:128px;height:128px}
.bad{color:#a00}.meta{color:#555;font-size:90%}code{background:#f4f4f4;padding:0 3px}
</style></head><body>
<h1>focus reconstruct</h1>
<p class='meta'>{{ when }} &middot; model <code>{{ model.checkpoint }}</code>
(face model <code>{{ model.facemodel }}</code>,
crop {{ model.crop_size }} px, {{ model.segmentation }}, {{ model.device }}) &middot; detector {{ detector.name }}
&middot; {{ adaptation }} &middot; {{ "%.1f"|format(seconds) }} s</p>
<p><b>{{ n_ok }}</b> images reconstructed ({{ n_faces }} faces),
<b class='{{ "bad" if failed else "" }}'>{{ failed|length }}</b> failed, {{ ignored|length }} ignored.
{%- if n_earlier %} {{ n_earlier }} earlier result{{ "" if n_earlier == 1 else "s" }}
kept from earlier runs into this folder.{% endif %}</p>
{% if rows %}
<table><tr><th>image / face</th><th>overlay</th><th>crop</th><th>render</th><th>outliers</th><th>numbers</th>
<th>files</th></tr>
{% for r in rows %}{% set d = r.url %}
<tr><td>{{ r.name }}<br>face {{ r.face }}<br><span class='meta'><code>{{ r.path }}</code>{% if r.earlier %}
<br>from an earlier run{% endif %}{% if r.notes %}<br>{{ r.notes }}{% endif %}</span></td>
<td><a href='{{ d }}/overlay.png'><img class='ov' src='{{ d }}/overlay.png' alt='overlay'></a></td>
<td><img class='sm' src='{{ d }}/crop.png' alt='crop'></td>
<td><img class='sm' src='{{ d }}/render.png' alt='render'></td>
<td><img class='sm' src='{{ d }}/outlier_crop.png' alt='outliers'></td>
<td>detector score {{ r.score }}<br>eye distance {{ r.eye_distance }} px
<br>5-point error {{ r.nme5 }} IOD ({{ r.px5 }} px)
{% if r.nme68 %}<br>68-point error {{ r.nme68 }} IOD{% endif %}<br>outlier share {{ r.outlier_share }}
<br>pitch / yaw / roll {{ r.pose }} deg</td>
<td><a href='{{ d }}/posed.obj'>posed.obj</a><br><a href='{{ d }}/neutral.obj'>neutral.obj</a>
<br><a href='{{ d }}/now/neutral.obj'>NoW mesh</a> + <a href='{{ d }}/now/neutral.npy'>landmarks</a>
<br><a href='{{ d }}/outlier.png'>outlier.png</a><br><a href='{{ d }}/coeffs.json'>coeffs.json</a></td></tr>
{% endfor %}</table>
{% endif %}
{% if failed %}<h2 class='bad'>Failed</h2><ul>
{% for o in failed %}<li><code>{{ o.path }}</code>: {{ o.reason }}</li>
{% endfor %}</ul>{% endif %}
{% if ignored %}<h2>Ignored</h2><ul>
{% for o in ignored %}<li><code>{{ o.path }}</code>: {{ o.reason }}</li>
{% endfor %}</ul>{% endif %}
</body></html>
"""

_TEMPLATE = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(_PAGE)


def _fmt(x, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _face_row(o, f: dict) -> dict:
    """The numbers of one face of the outcome ``o``, formatted for the page."""
    fit = f.get("fit") or {}
    return {
        "name": o.name,
        "path": o.path,
        "face": f.get("face"),
        "earlier": o.earlier,
        "notes": "; ".join(o.notes),
        "url": quote(f["folder"]),  # a URL path: spaces, '#' and '?' in photo names are escaped
        "score": _fmt(f.get("score")),
        "eye_distance": _fmt(f.get("eye_distance_px"), 1),
        "nme5": _fmt(fit.get("nme5")),
        "px5": _fmt(fit.get("px5"), 1),
        "nme68": _fmt(fit.get("nme68")) if "nme68" in fit else "",
        "outlier_share": _fmt(f.get("outlier_share")),
        "pose": " / ".join(_fmt(a, 1) for a in f.get("pitch_yaw_roll_deg") or [None] * 3),
    }


def summary_html(report) -> str:
    """The page for a :class:`focus.apps.reconstruct.RunReport`."""
    m = report.model
    return _TEMPLATE.render(
        when=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        model={k: m.get(k, "") for k in ("checkpoint", "facemodel", "crop_size", "segmentation", "device")},
        detector={"name": report.detector.get("name", "")},
        adaptation=_adaptation(m.get("adaptation")),
        seconds=report.seconds,
        n_ok=len(report.ok),
        n_faces=report.n_faces,
        n_earlier=len(report.earlier),
        rows=[_face_row(o, f) for o in report.listed for f in o.faces],
        failed=report.failed,
        ignored=[o for o in report.outcomes if o.status == "ignored"],
    )


def _adaptation(info: dict | None) -> str:
    if not info:
        return "no test-time adaptation"
    n = info["rounds"]
    return (
        f"test-time adaptation: {n} round{'' if n == 1 else 's'} of {info['seg_steps']} + {info['rec_steps']} steps "
        f"per batch of faces"
    )


def write_summary(report, tile_px: int = 200, columns: int = 4) -> None:
    """Write ``summary.html`` and (when a face is listed) ``contact_sheet.png`` into ``report.out_dir``."""
    out = Path(report.out_dir)
    write_text_atomic(out / "summary.html", summary_html(report))
    tiles, labels = [], []
    names = [o.name for o in report.listed]
    for o in report.listed:
        for f in o.faces:
            path = out / f["folder"] / "overlay.png"
            if not path.is_file():
                continue
            with Image.open(path) as im:
                im = im.convert("RGB")
                k = tile_px / max(im.size)
                tiles.append(im.resize((max(1, round(im.width * k)), max(1, round(im.height * k))), Image.BILINEAR))
            labels.append(f"{o.name if names.count(o.name) == 1 else o.folder} #{f['face']}")
    if tiles:
        from focus.synth.contact_sheet import save_grid

        save_grid(tiles, labels, out / "contact_sheet.png", f"focus reconstruct: {len(tiles)} faces", columns)
    elif (out / "contact_sheet.png").exists():
        (out / "contact_sheet.png").unlink()


__all__ = ["summary_html", "write_summary"]
