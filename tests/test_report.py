"""The report: built from a run's published summaries, opened in a real headless Chromium."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from models.cli import main
from models.report import SECTIONS, build_report
from tests.conftest import REPO, require

#: Small, fast and still every stage: three top items keep the forecasts to five series;
#: an as-of date before the end of the log gives the CLV its holdout table.
RUN_ARGS = ["--customers", "300", "--seed", "11", "--sales-top-n", "3", "--no-mrjob-conf"]
RUN_ARGS += ["--as-of", "2024-09-30", "--clv-holdout-end", "2024-12-30"]
SCREENSHOT = REPO / "scripts" / "report_screenshot.sh"
#: Files that hold a row per customer: the report must never need them.
PER_CUSTOMER = ("part-*", "customers.csv", "scores.csv", "early_warning.jsonl")


@pytest.fixture(scope="module")
def run_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("report") / "out"
    assert main(["run", "-q", "-o", str(root), *RUN_ARGS]) == 0
    return root


def _sections(text):
    return re.findall(r'<section id="([a-z]+)">', text)


def test_run_ends_with_a_report_of_every_section(run_root):
    text = (run_root / "report.html").read_text()
    assert _sections(text) == [anchor for anchor, *_ in SECTIONS]
    assert "Not shown" not in text and "could not be drawn" not in text
    assert "Holdout: predicted vs actual purchases" in text
    # numbers for people: thousands separators, percentages, money with two decimals
    lines = json.loads((run_root / "rfm" / "_manifest.json").read_text())["lines"]["read"]
    assert f'<td class="n">{lines:,}</td>' in text
    assert re.search(r"<td class=\"n\">\d+\.\d%</td>", text)
    assert re.search(r"revenue</th><td class=\"n\">[\d,]+\.\d\d</td>", text)


def test_report_is_offline_and_has_no_script(run_root):
    text = (run_root / "report.html").read_text()
    assert "<script" not in text.lower()
    assert not re.search(r"(src|href)=\"(https?:)?//", text)  # no request to the network
    assert "default-src 'none'" in text
    images = re.findall(r'<img alt="[^"]*" src="([^"]{0,40})', text)
    assert len(images) >= 10 and all(src.startswith("data:image/svg+xml;base64,") for src in images)


def test_rebuilding_gives_the_same_bytes(run_root, tmp_path):
    rebuilt = tmp_path / "again.html"
    assert main(["report", "-q", str(run_root), "-o", str(rebuilt)]) == 0
    assert rebuilt.read_bytes() == (run_root / "report.html").read_bytes()


def test_report_reads_no_per_customer_file(run_root, tmp_path):
    """The same report from a copy without a single per-customer file: what it reads is
    bounded whatever the number of customers."""
    copy = tmp_path / "out"
    shutil.copytree(run_root, copy)
    removed = [p for pattern in PER_CUSTOMER for p in copy.glob(f"*/{pattern}")]
    assert len(removed) > 20
    for path in removed:
        path.unlink()
    uri, size = build_report(str(copy), str(tmp_path / "report.html"))
    assert uri.endswith("/report.html") and size < 5_000_000
    assert (tmp_path / "report.html").read_bytes() == (run_root / "report.html").read_bytes()


def test_report_of_a_run_with_skipped_stages_says_why(tmp_path):
    root = tmp_path / "out"
    args = ["run", "-q", "-o", str(root), "--customers", "40", "--sales-top-n", "0"]
    assert main(args + ["--k", "60", "--no-mrjob-conf"]) == 0
    record = json.loads((root / "_pipeline.json").read_text())
    skipped = {e["stage"]: e["skipped"] for e in record["stages"] if e["status"] == "skipped"}
    assert "segments" in skipped
    text = (root / "report.html").read_text()
    assert _sections(text) == [anchor for anchor, *_ in SECTIONS]
    segments = text.split('<section id="segments">', 1)[1].split("</section>", 1)[0]
    assert "Not shown: skipped: " in segments
    assert segments.count("<img") == 0
    assert "Stages not run" in text and "could not be drawn" not in text


def test_report_of_a_failed_run_names_the_stage_and_draws_the_rest(run_root, tmp_path):
    copy = tmp_path / "out"
    shutil.copytree(run_root, copy)
    record = json.loads((copy / "_pipeline.json").read_text())
    record["stages"] = [e for e in record["stages"] if e["stage"] not in ("churn", "clv")]
    record.update(status="failed", failed_stage="churn", error="ValueError: no labels")
    (copy / "_pipeline.json").write_text(json.dumps(record))
    for stage in ("churn", "clv"):
        shutil.rmtree(copy / stage)
    (copy / "baskets" / "rules.csv").write_text("not,a,rules,file\n")  # a broken summary
    build_report(str(copy))
    text = (copy / "report.html").read_text()
    assert _sections(text) == [anchor for anchor, *_ in SECTIONS]
    for anchor in ("churn", "clv"):
        section = text.split(f'<section id="{anchor}">', 1)[1].split("</section>", 1)[0]
        assert "the run stopped at the churn stage (failed)" in section
    baskets = text.split('<section id="baskets">', 1)[1].split("</section>", 1)[0]
    assert "This section could not be drawn: KeyError" in baskets
    assert "<img" in text.split('<section id="forecasts">', 1)[1].split("</section>", 1)[0]
    assert '<th>failed stage</th><td class="n">churn</td>' in text
    assert "ValueError: no labels" in text


def test_report_keeps_credentials_out(run_root, tmp_path):
    copy = tmp_path / "out"
    shutil.copytree(run_root, copy)
    record = json.loads((copy / "_pipeline.json").read_text())
    record["parameters"]["webhdfs_password"] = "hunter2-secret"
    record["output_root"] = "hdfs://alice:pa55word@namenode:9870/crm"
    (copy / "_pipeline.json").write_text(json.dumps(record))
    build_report(str(copy))
    text = (copy / "report.html").read_text()
    assert "hunter2" not in text and "webhdfs_password&quot;: &quot;&lt;redacted&gt;" in text
    assert "pa55word" not in text and "namenode:9870/crm" in text


def test_report_of_a_path_that_is_no_output_root_is_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "is not a crm-mr output root" in err and "empty" in err
    assert not (tmp_path / "empty" / "report.html").exists()


# -- in a real browser ------------------------------------------------------------

#: Run first in <head> (before the report's Content-Security-Policy, which forbids
#: scripts): records errors, blocked requests and console errors, and on load writes
#: each image's natural width and the section ids into the DOM that --dump-dom prints.
PROBE = """<script>
window.__problems = [];
window.addEventListener('error', e => __problems.push('error: ' + (e.message || e.target.src
  || e.type).slice(0, 80)), true);
document.addEventListener('securitypolicyviolation', e => __problems.push('blocked: ' +
  e.violatedDirective + ' ' + e.blockedURI));
const consoleError = console.error;
console.error = (...a) => { __problems.push('console: ' + a.join(' ')); consoleError(...a); };
window.addEventListener('load', () => {
  const probe = document.createElement('pre');
  probe.id = 'probe';
  probe.textContent = JSON.stringify({
    images: [...document.images].map(i => [i.alt, i.naturalWidth, i.naturalHeight]),
    sections: [...document.querySelectorAll('section')].map(s => s.id),
    problems: __problems,
  });
  document.body.appendChild(probe);
});
</script>"""


def _chromium():
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    require(found, "Chromium is not installed (Debian: apt-get install chromium)")
    return found


def _probe(chromium, report, tmp_path, extra=""):
    """What the probe saw in ``report`` opened in headless Chromium."""
    page = tmp_path / "probed.html"
    text = report.read_text().replace("<head>", "<head>" + PROBE, 1)
    page.write_text(text.replace("</body>", extra + "</body>", 1))
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
        + [f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
        + ["--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stdout[-2000:]
    return json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<"))


def test_report_opens_in_headless_chromium_with_every_image_decoded(run_root, tmp_path):
    chromium = _chromium()
    seen = _probe(chromium, run_root / "report.html", tmp_path)
    assert seen["sections"] == [anchor for anchor, *_ in SECTIONS]
    assert seen["problems"] == []
    assert len(seen["images"]) >= 10
    assert all(width > 0 and height > 0 for _, width, height in seen["images"]), seen["images"]
    png = tmp_path / "first-screen.png"
    done = subprocess.run(
        [str(SCREENSHOT), str(run_root / "report.html"), str(png)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(png)
    assert pixels.shape[:2] == (900, 1280)
    assert pixels.std() > 0.05  # text and charts, not a blank page


def test_probe_sees_a_broken_image_and_a_blocked_request(run_root, tmp_path):
    """The browser check can fail: an undecodable image has no natural width, and the
    report's policy blocks a request to the network."""
    chromium = _chromium()
    broken = '<img alt="broken" src="data:image/svg+xml;base64,bm90IGFuIGltYWdl">'
    remote = '<img alt="remote" src="http://127.0.0.1:9/x.png">'
    seen = _probe(chromium, run_root / "report.html", tmp_path, extra=broken + remote)
    widths = {alt: width for alt, width, _ in seen["images"]}
    assert widths["broken"] == 0 and widths["remote"] == 0
    assert any(p.startswith("blocked: img-src http://127.0.0.1:9") for p in seen["problems"])


def test_screenshot_script_refuses_a_missing_report(tmp_path):
    done = subprocess.run(
        [str(SCREENSHOT), str(tmp_path / "nothing.html"), str(tmp_path / "x.png")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "nothing.html" in done.stderr
    assert not Path(tmp_path / "x.png").exists()
