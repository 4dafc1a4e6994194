"""All faces of a ``focus reconstruct`` run at a glance: ``summary.html`` and ``contact_sheet.png``.

The HTML page needs no server and no script: one row per face with the overlay, the aligned crop,
the render and the outlier mask (images linked from the result folders, relative paths, so the
output folder can be moved or zipped), the pose, the landmark fit and the outlier share, and links
to the meshes and coefficients; then every input that failed or was ignored, with the reason.
The contact sheet is the overlays as one PNG.
"""

from __future__ import annotations

import html
from urllib.parse import quote
from datetime import datetime, timezone
from pathlib import Path

from PIL import Image

from focus.io_utils import write_text_atomic

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:6px;vertical-align:top;text-align:left}
img{image-rendering:auto;border:1px solid #ccc}.ov{max-width:320px;max-height:320px}.sm{width:128px;height:128px}
.bad{color:#a00}.meta{color:#555;font-size:90%}code{background:#f4f4f4;padding:0 3px}
"""


def _fmt(x, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def summary_html(report) -> str:
    """The page for a :class:`focus.apps.reconstruct.RunReport`."""
    e = html.escape
    ok, failed = report.ok, report.failed
    ignored = [o for o in report.outcomes if o.status == "ignored"]
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>focus reconstruct</title><style>{_STYLE}</style>"
             "</head><body>",
             "<h1>focus reconstruct</h1>",
             f"<p class='meta'>{e(when)} &middot; model <code>{e(report.model.get('checkpoint', ''))}</code> "
             f"(face model <code>{e(report.model.get('facemodel', ''))}</code>, crop {report.model.get('crop_size')} px, "
             f"{e(report.model.get('segmentation', ''))}, {e(report.model.get('device', ''))}) &middot; detector "
             f"{e(report.detector.get('name', ''))} &middot; {_adaptation(report.model.get('adaptation'))} &middot; "
             f"{report.seconds:.1f} s</p>",
             f"<p><b>{len(ok)}</b> images reconstructed ({report.n_faces} faces), <b class='{'bad' if failed else ''}'>"
             f"{len(failed)}</b> failed, {len(ignored)} ignored.</p>"]
    if ok:
        parts.append("<table><tr><th>image / face</th><th>overlay</th><th>crop</th><th>render</th><th>outliers</th>"
                     "<th>numbers</th><th>files</th></tr>")
        for o in ok:
            for f in o.faces:
                d = quote(f["folder"])  # a URL path: spaces, '#' and '?' in photo names are escaped
                fit = f.get("fit", {})
                pyr = f.get("pitch_yaw_roll_deg", [None] * 3)
                lm68 = f"<br>68-point error {_fmt(fit.get('nme68'))} IOD" if "nme68" in fit else ""
                notes = f"<br><span class='meta'>{e('; '.join(o.notes))}</span>" if o.notes else ""
                parts.append(
                    f"<tr><td>{e(o.name)}<br>face {f['face']}{notes}</td>"
                    f"<td><a href='{e(d)}/overlay.png'><img class='ov' src='{e(d)}/overlay.png' alt='overlay'></a></td>"
                    f"<td><img class='sm' src='{e(d)}/crop.png' alt='crop'></td>"
                    f"<td><img class='sm' src='{e(d)}/render.png' alt='render'></td>"
                    f"<td><img class='sm' src='{e(d)}/outlier_crop.png' alt='outliers'></td>"
                    f"<td>detector score {_fmt(f.get('score'))}<br>eye distance {_fmt(f.get('eye_distance_px'), 1)} px"
                    f"<br>5-point error {_fmt(fit.get('nme5'))} IOD ({_fmt(fit.get('px5'), 1)} px){lm68}"
                    f"<br>outlier share {_fmt(f.get('outlier_share'))}"
                    f"<br>pitch / yaw / roll {' / '.join(_fmt(a, 1) for a in pyr)} deg</td>"
                    f"<td><a href='{e(d)}/posed.obj'>posed.obj</a><br><a href='{e(d)}/neutral.obj'>neutral.obj</a>"
                    f"<br><a href='{e(d)}/now/neutral.obj'>NoW mesh</a> + <a href='{e(d)}/now/neutral.npy'>landmarks</a>"
                    f"<br><a href='{e(d)}/outlier.png'>outlier.png</a><br><a href='{e(d)}/coeffs.json'>coeffs.json</a></td></tr>")
        parts.append("</table>")
    if failed:
        parts.append("<h2 class='bad'>Failed</h2><ul>")
        parts += [f"<li><code>{e(o.path)}</code>: {e(o.reason)}</li>" for o in failed]
        parts.append("</ul>")
    if ignored:
        parts.append("<h2>Ignored</h2><ul>")
        parts += [f"<li><code>{e(o.path)}</code>: {e(o.reason)}</li>" for o in ignored]
        parts.append("</ul>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _adaptation(info: dict | None) -> str:
    if not info:
        return "no test-time adaptation"
    n = info["rounds"]
    return (f"test-time adaptation: {n} round{'' if n == 1 else 's'} of {info['seg_steps']} + {info['rec_steps']} steps "
            f"per batch of faces")


def write_summary(report, tile_px: int = 200, columns: int = 4) -> None:
    """Write ``summary.html`` and (when a face was reconstructed) ``contact_sheet.png`` into ``report.out_dir``."""
    out = Path(report.out_dir)
    write_text_atomic(out / "summary.html", summary_html(report))
    tiles, labels = [], []
    for o in report.ok:
        for f in o.faces:
            path = out / f["folder"] / "overlay.png"
            if not path.is_file():
                continue
            with Image.open(path) as im:
                im = im.convert("RGB")
                k = tile_px / max(im.size)
                tiles.append(im.resize((max(1, round(im.width * k)), max(1, round(im.height * k))), Image.BILINEAR))
            labels.append(f"{o.name} #{f['face']}")
    if tiles:
        from focus.synth.contact_sheet import save_grid

        save_grid(tiles, labels, out / "contact_sheet.png", f"focus reconstruct: {len(tiles)} faces", columns)
    elif (out / "contact_sheet.png").exists():
        (out / "contact_sheet.png").unlink()


__all__ = ["summary_html", "write_summary"]
