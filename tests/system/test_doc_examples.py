"""Every tutorial runs start to finish on the simulated camera and prints what its page
says it prints.

The pages in ``RUN_PAGES`` are run in that order, in one fresh Python process with
``OPHYD_PVCAM_SIM=1`` and a temporary data folder (so a temporary catalog), each page in a
namespace of its own.  One process, not one per page: the later tutorials replay the runs
the first one records, as a reader who follows them in order would, and starting a
process that imports bluesky, ophyd and tiled and opens a catalog costs seconds the suite
does not have.  On those pages:

- every ```` ```python ```` block is executed, in order;
- a ```` ```text ```` block right after a python block is what that block prints: every
  line must match the output, in order, where ``...`` inside a line matches anything and
  a line that is only ``...`` matches any number of lines (doctest's ELLIPSIS);
- in a ```` ```console ```` block, each ``$ ophyd-pvcam ...`` line is run (through
  :func:`ophyd_pvcam.cli.main`, in the same process) and must exit 0; the lines after it
  are its output, matched the same way;
- ```` ```bash ```` blocks are shown, not run (commands that need a real camera, take
  minutes, or install things).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN_PAGES = [  # relative to the repository
    "docs/tutorials/first-scans.md",
    "docs/tutorials/replaying-runs.md",
    "docs/tutorials/a-stall.md",
    "docs/tutorials/first-day-with-a-camera.md",
]  # README's example is the first tutorial's calls; running it too costs ~4 s more
TIMEOUT_S = 240  # about 15 s alone on 2 cores; the suite runs beside it

FENCE = re.compile(r"^(`{3,})([\w-]*)[^\n]*\n(.*?)^\1\s*$", re.S | re.M)
MARK = "@@doc-block@@"


@dataclass
class Block:
    page: str
    index: int
    language: str  # "python" or "console"
    code: str  # python source, or the console block's text
    expected: str | None  # the output the page shows, if any


def page_blocks(page: str) -> list[Block]:
    """The blocks the runner executes on one page, with the output each should print."""
    fences = [(m.group(2), m.group(3)) for m in FENCE.finditer((ROOT / page).read_text())]
    blocks = []
    for i, (language, body) in enumerate(fences):
        if language == "python":
            following = fences[i + 1] if i + 1 < len(fences) else None
            expected = following[1] if following and following[0] == "text" else None
            blocks.append(Block(page, len(blocks), "python", body, expected))
        elif language == "console":
            blocks.append(Block(page, len(blocks), "console", body, None))
    return blocks


def console_steps(text: str) -> list[tuple[list[str], str]]:
    """The commands of a console block (``$ ophyd-pvcam ...``) with the output under each."""
    import shlex

    steps: list[tuple[list[str], list[str]]] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            words = shlex.split(line[2:])
            assert words[0] == "ophyd-pvcam", f"only ophyd-pvcam commands are run: {line}"
            steps.append((words[1:], []))
        else:
            assert steps, f"output before any command in a console block: {line}"
            steps[-1][1].append(line)
    return [(argv, "\n".join(out)) for argv, out in steps]


def line_pattern(line: str) -> re.Pattern:
    return re.compile(".*".join(re.escape(part) for part in line.split("...")) + r"\Z")


ANSI_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def matches(expected: str, actual: str) -> str | None:
    """None if ``actual`` matches ``expected`` line by line (blank lines and trailing
    spaces ignored, ``...`` a wildcard); else where it first differs."""
    want = [line.rstrip() for line in expected.splitlines() if line.strip()]
    # a progress bar moves the cursor (ESC [ A) before the next line: a terminal shows
    # no text for it, and whether it lands before a line depends on timing
    shown = ANSI_CONTROL.sub("", actual)
    have = [line.rstrip() for line in shown.splitlines() if line.strip()]

    def fit(i: int, j: int) -> bool:
        if i == len(want):
            return j == len(have)
        if want[i] == "...":
            return any(fit(i + 1, k) for k in range(j, len(have) + 1))
        return j < len(have) and bool(line_pattern(want[i]).match(have[j])) and fit(i + 1, j + 1)

    if fit(0, 0):
        return None
    return "expected:\n" + "\n".join(want) + "\n\nprinted:\n" + "\n".join(have)


RUNNER = r"""
import json, sys, time, traceback
started = time.monotonic()
from ophyd_pvcam.cli import main

blocks = json.load(open(sys.argv[1]))
namespaces = {}
for block in blocks:
    print(MARK, block["page"], block["index"], flush=True)
    try:
        if block["language"] == "python":
            namespace = namespaces.setdefault(block["page"], {"__name__": "__main__"})
            exec(compile(block["code"], f"{block['page']} block {block['index']}", "exec"),
                 namespace)
        else:
            for n, (argv, _) in enumerate(block["steps"]):
                if n:
                    print(MARK, block["page"], block["index"], n, flush=True)
                code = main(argv)
                if code:
                    raise SystemExit(f"ophyd-pvcam {' '.join(argv)} exited {code}")
    except BaseException:
        traceback.print_exc()
        print(f"FAILED in {block['page']} block {block['index']}", file=sys.stderr)
        sys.exit(1)
    sys.stdout.flush()
    print(f"{block['page']} block {block['index']}: {time.monotonic() - started:.1f} s",
          file=sys.stderr)
""".replace("MARK", repr(MARK))


def test_the_tutorials_run_on_the_simulator_and_print_what_they_show(tmp_path):
    blocks = [block for page in RUN_PAGES for block in page_blocks(page)]
    for page in RUN_PAGES:
        assert any(b.page == page for b in blocks), f"{page} has no code to run"
    payload = []
    for block in blocks:
        entry = {"page": block.page, "index": block.index, "language": block.language}
        if block.language == "python":
            entry["code"] = block.code
        else:
            entry["steps"] = console_steps(block.code)
        payload.append(entry)
    (tmp_path / "blocks.json").write_text(json.dumps(payload))
    (tmp_path / "runner.py").write_text(RUNNER)
    env = dict(os.environ)
    for name in list(env):
        if name.startswith(("OPHYD_PVCAM_", "TILED_")):
            del env[name]  # only what the tutorials tell a reader to set
    env.update(
        OPHYD_PVCAM_SIM="1",
        OPHYD_PVCAM_DATA=str(tmp_path / "data"),
        OPHYD_PVCAM_CONFIG=str(tmp_path / "no-config.toml"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        MPLBACKEND="Agg",
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "runner.py", "blocks.json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    print(f"the tutorials ran in {time.monotonic() - started:.1f} s")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]

    # what each block printed, by (page, index, step)
    printed: dict[tuple[str, int, int], str] = {}
    key = None
    for line in result.stdout.splitlines():
        if line.startswith(MARK):
            _, page, index, *step = line.split()
            key = (page, int(index), int(step[0]) if step else 0)
            printed[key] = ""
        elif key is not None:
            printed[key] += line + "\n"
    checked = 0
    for block in blocks:
        if block.language == "python":
            expectations = [(0, block.expected)] if block.expected is not None else []
        else:
            expectations = [(n, out) for n, (_, out) in enumerate(console_steps(block.code))]
        for step, expected in expectations:
            actual = printed.get((block.page, block.index, step))
            assert actual is not None, f"{block.page} block {block.index} never ran"
            difference = matches(expected, actual)
            assert difference is None, f"{block.page} block {block.index}:\n{difference}"
            checked += 1
    assert checked >= len(RUN_PAGES), f"only {checked} outputs checked"


def test_the_output_matcher_is_strict():
    """The matcher the test above relies on: a wildcard matches, a difference does not."""
    assert matches("a ...\n...\nz", "a b\nc\nd\nz") is None
    assert matches("run ... frames", "run 1a2b 50 frames") is None
    assert matches("50 frames", "49 frames") is not None
    assert matches("a\nb", "a\nb\nc") is not None  # an extra line the page does not show
    assert matches("a\n...", "a\nb\nc") is None
    # a progress bar's cursor movement is not text (it landed before a summary line in
    # one run in two, depending on timing); the text itself still has to match
    assert matches("bar\ncam: fly scan", "bar\n\x1b[Acam: fly scan") is None
    assert matches("bar\ncam: fly scan", "bar\n\x1b[Acam: step scan") is not None
