"""Render a study report in headless Chromium and check it as a browser shows it: every image decoded (no broken
image), every expected section present; optionally a screenshot of its first page.

    python Testing/browser_check.py DIR/report.html [--screenshot docs/study-report.png]

The report itself holds no script. The check renders a copy with one added script that, once the page has loaded,
writes what the browser saw (images decoded, their natural sizes, the section ids) into the page, which Chromium's
``--dump-dom`` prints. Needs the Debian package ``chromium`` (or ``$CHROMIUM``); exit code 0 when all is well.

The test that uses it skips where Chromium is missing or cannot run, unless ``$RTRESPONSE_REQUIRE_BROWSER`` is set
(CI's .ci/run sets it when Chromium is installed): then it fails (:func:`verdict`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SECTIONS = ("overview", "cohort", "missingness", "failures", "software", "steps", "tripod")

_PROBE = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (img) {
    return {id: img.parentElement ? img.parentElement.id : "", complete: img.complete,
            width: img.naturalWidth, height: img.naturalHeight};
  });
  var ids = Array.prototype.map.call(document.querySelectorAll("section[id]"), function (s) { return s.id; });
  var out = document.createElement("pre");
  out.id = "browser-check";
  out.textContent = JSON.stringify({images: images, sections: ids, title: document.title});
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str | None:
    """The Chromium executable: ``$CHROMIUM``, else chromium / chromium-browser / google-chrome on the PATH."""
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


REQUIRE_ENV = "RTRESPONSE_REQUIRE_BROWSER"  # set (CI): the browser test fails instead of skipping


def required(environ=None) -> bool:
    """Whether the browser check must run: ``$RTRESPONSE_REQUIRE_BROWSER`` set and not 0/false/no."""
    value = (os.environ if environ is None else environ).get(REQUIRE_ENV, "")
    return value.strip().lower() not in ("", "0", "false", "no")


def unavailable(timeout: float = 60) -> str | None:
    """Why the check cannot run here (no Chromium, or one that cannot draw a trivial page), or None."""
    browser = chromium()
    if browser is None:
        return "no Chromium (apt-get install chromium, or set $CHROMIUM)"
    with tempfile.TemporaryDirectory(prefix="browser-probe-") as folder:
        page = Path(folder) / "probe.html"
        page.write_text('<html><body><p id="probe">ok</p></body></html>', encoding="utf-8")
        try:
            done = subprocess.run([browser, *_flags(), f"--user-data-dir={folder}/profile", "--dump-dom",
                                   page.as_uri()], capture_output=True, text=True, encoding="utf-8",
                                  errors="replace", timeout=timeout)
        except (OSError, subprocess.SubprocessError) as error:
            return f"{browser} cannot run: {error}"
    if 'id="probe"' not in done.stdout:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1][:300]
        return f"{browser} cannot draw a page (exit {done.returncode}): {last}"
    return None


def verdict(reason: str | None, require: bool) -> tuple[str, str]:
    """What the browser test does with ``reason`` (from :func:`unavailable`): ("run", ""), ("skip", why), or
    ("fail", why) when the check is required."""
    if reason is None:
        return "run", ""
    if require:
        return "fail", f"${REQUIRE_ENV} is set but the browser check cannot run: {reason}"
    return "skip", reason


def _flags() -> list[str]:
    flags = ["--headless", "--disable-gpu", "--hide-scrollbars", "--allow-file-access-from-files",
             "--disable-background-networking", "--no-first-run"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        flags.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    return flags


def inspect(report: str | os.PathLike, timeout: float = 120) -> dict:
    """What Chromium saw in ``report``: {"images": [{id, complete, width, height}], "sections": [ids], "title"}."""
    browser = chromium()
    if browser is None:
        raise FileNotFoundError("no Chromium found (apt-get install chromium, or set $CHROMIUM)")
    html = Path(report).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="report-check-") as folder:
        probe = Path(folder) / "report.html"
        probe.write_text(html.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
        done = subprocess.run([browser, *_flags(), f"--user-data-dir={folder}/profile", "--virtual-time-budget=10000",
                               "--dump-dom", probe.as_uri()], capture_output=True, text=True, encoding="utf-8",
                              errors="replace", timeout=timeout)
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', done.stdout, re.S)
    if not found:
        raise RuntimeError(f"Chromium printed no check (exit {done.returncode}): {done.stderr[-2000:]}")
    text = found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return json.loads(text)


def problems(seen: dict, sections=SECTIONS) -> list[str]:
    """Broken images and missing sections, one line each."""
    found = [f"broken image in {image['id'] or 'the page'}" for image in seen["images"]
             if not image["complete"] or image["width"] == 0 or image["height"] == 0]
    found += [f"missing section {name}" for name in sections if name not in seen["sections"]]
    if not seen["images"]:
        found.append("no image at all")
    return found


def screenshot(report: str | os.PathLike, path: str | os.PathLike, width: int = 1280, height: int = 1500,
               timeout: float = 120) -> Path:
    """A PNG of the first ``width`` x ``height`` pixels of the report as Chromium draws it."""
    browser = chromium()
    if browser is None:
        raise FileNotFoundError("no Chromium found (apt-get install chromium, or set $CHROMIUM)")
    path = Path(path).resolve()
    with tempfile.TemporaryDirectory(prefix="report-shot-") as folder:
        subprocess.run([browser, *_flags(), f"--user-data-dir={folder}/profile", f"--window-size={width},{height}",
                        f"--screenshot={path}", Path(report).resolve().as_uri()], capture_output=True, text=True,
                       encoding="utf-8", errors="replace", timeout=timeout, check=True)
    return path


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--screenshot", type=Path, help="also write a PNG of the first page")
    args = parser.parse_args(argv)
    seen = inspect(args.report)
    found = problems(seen)
    for line in found:
        print(line, file=sys.stderr)
    print(f"{args.report}: {len(seen['images'])} image(s), {len(seen['sections'])} section(s) rendered; "
          f"{len(found)} problem(s)")
    if args.screenshot:
        print(f"wrote {screenshot(args.report, args.screenshot)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
