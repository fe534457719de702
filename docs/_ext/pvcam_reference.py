"""Reference pages generated from the code at every build, so that they cannot drift.

At ``builder-inited`` this extension writes Markdown into ``docs/_generated/`` (ignored
by git and excluded from the build as pages of their own); the hand-written pages under
``docs/reference/`` include it.  What each file holds and where it comes from:

- ``settings.md``: every setting of :class:`~ophyd_pvcam.device.PrimeBSI` (the fields of
  :class:`~ophyd_pvcam.acquisition.Settings`) with its unit, its default on the simulated
  Prime BSI and what is allowed.  The allowed values are formatted from the constants and
  the camera's capabilities the settings checker uses, and each is then *probed*: the
  values the page says are allowed must pass the device's own check and the values just
  outside must be refused, or the build fails.  A setting without an entry here fails it
  too.
- ``signals.md``: the device's read-only signals.
- ``cli.md``: the ``ophyd-pvcam`` command from its argparse parser, and the exit codes
  from ``ophyd_pvcam.cli._errors.EXIT_CODES``.
- ``faults.md``: the simulator's fault kinds, from ``ophyd_pvcam.sim`` (the kinds, what
  each counts, which options apply, and what each does from the docstring of
  :func:`~ophyd_pvcam.sim.inject_fault`).
- ``phases-step.md``, ``phases-fly.md``: the session tables,
  :func:`ophyd_pvcam.acquisition.as_markdown`.
- ``layers.md``: the layers contract in ``pyproject.toml`` that import-linter enforces,
  with each package's own summary.

A file is rewritten only when its text changes, so an unchanged build stays incremental.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GENERATED = Path(__file__).resolve().parent.parent / "_generated"


class ReferenceError(Exception):
    """The code and what this generator knows about it disagree: the build stops."""


# ---- Markdown helpers ---------------------------------------------------------------


def rst_to_md(text: str) -> str:
    """Docstring text (reStructuredText literals and roles) as MyST Markdown."""
    text = inspect.cleandoc(text)
    text = re.sub(r":(?:func|class|meth|attr|exc|data):`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def cell(text: Any) -> str:
    """A value as a Markdown table cell: one line, pipes and angle brackets escaped."""
    text = " ".join(str(text).split())
    return text.replace("|", "\\|").replace("<", "&lt;")


def code(value: Any) -> str:
    """A Python value as inline code, as a user would type it."""
    return f"`{value!r}`" if not isinstance(value, float) else f"`{value:g}`"


def table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ---- settings -----------------------------------------------------------------------


@dataclass
class SettingDoc:
    """What the page says of one setting, and the values that check it against the code."""

    unit: str
    meaning: str
    allowed: str
    accept: list[Any] = field(default_factory=list)
    refuse: list[Any] = field(default_factory=list)


def _setting_docs(caps, defaults) -> dict[str, SettingDoc]:
    """One entry per setting, formatted from the limits the checker applies."""
    from ophyd_pvcam.acquisition import _settings as limits
    from ophyd_pvcam.storage import COMPRESSIONS

    width, height = caps.sensor_width, caps.sensor_height
    port = caps.port(defaults.readout_port)
    speed = port.speeds[defaults.speed_index]
    low_t, high_t = caps.temperature_setpoint_range
    most_buffers = max(2, limits.MAX_BUFFER_BYTES // defaults.frame_bytes)
    speeds = "; ".join(
        f"{p.name}: " + ", ".join(f"{s.index} ({s.name})" for s in p.speeds) for p in caps.ports
    )
    gains = "; ".join(
        f"{p.name} at {s.index}: "
        + ", ".join(f"{g.index} ({g.name}, {g.bit_depth}-bit)" for g in s.gains)
        for p in caps.ports
        for s in p.speeds
    )

    def names(options: Iterable[str]) -> str:
        return ", ".join(f"`{name!r}`" for name in options)

    def choice(options: dict[str, int] | Iterable[str], meaning: str) -> SettingDoc:
        return SettingDoc("", meaning, names(options), accept=list(options), refuse=["nothing"])

    return {
        "exposure_time": SettingDoc(
            "s",
            "How long each frame is exposed.",
            f"more than 0 and at most {caps.max_exposure_s:g}, in steps of 1 µs",
            accept=[1e-6, caps.max_exposure_s],
            refuse=[0, 4e-7, caps.max_exposure_s * 1.001, float("nan")],
        ),
        "roi": SettingDoc(
            "unbinned pixels",
            "The region of the sensor read out: (x, y, width, height).",
            f"x, y ≥ 0; width, height ≥ 1; x + width ≤ {width}, y + height ≤ {height}; "
            "width and height multiples of the binning",
            accept=[(0, 0, width, height), (width - 1, height - 1, 1, 1)],
            refuse=[(1, 0, width, height), (0, 0, 0, 1), (0, 0, width, height + 1)],
        ),
        "binning": SettingDoc(
            "pixels",
            "Pixels summed into one, the same in x and y; the ROI must be a multiple of it.",
            ", ".join(str(b) for b in caps.binnings),
            accept=list(caps.binnings),
            refuse=[max(caps.binnings) + 1, True],
        ),
        "readout_port": choice(
            [p.name for p in caps.ports], "The readout port, by its name (see speed_index)."
        ),
        "speed_index": SettingDoc(
            "",
            "The readout speed, an index into the port's speeds.",
            speeds,
            accept=[s.index for s in port.speeds],
            refuse=[len(port.speeds), -1],
        ),
        "gain_index": SettingDoc(
            "",
            "The gain, an index into the speed's gains; it sets the bit depth.",
            gains,
            accept=[g.index for g in speed.gains],
            refuse=[max(g.index for g in speed.gains) + 1],
        ),
        "clear_mode": choice(caps.clear_modes, "When the sensor is cleared (PVCAM's names)."),
        "trigger_mode": choice(
            caps.trigger_modes,
            "What starts an exposure (PVCAM's names); step scans trigger in software "
            "whatever is set unless a hardware trigger mode is chosen.",
        ),
        "expose_out_mode": choice(
            caps.expose_out_modes, "What the camera's expose-out line signals (PVCAM's names)."
        ),
        "frames_per_point": SettingDoc(
            "frames",
            "Frames each trigger() of a step scan takes.",
            f"1 to {limits.MAX_SEQUENCE_FRAMES}",
            accept=[1, limits.MAX_SEQUENCE_FRAMES],
            refuse=[0, limits.MAX_SEQUENCE_FRAMES + 1, 1.5],
        ),
        "num_frames": SettingDoc(
            "frames",
            "Frames of a fly scan; 0: until complete().",
            f"0 to {limits.MAX_FLY_FRAMES}",
            accept=[0, limits.MAX_FLY_FRAMES],
            refuse=[-1, limits.MAX_FLY_FRAMES + 1],
        ),
        "buffer_frames": SettingDoc(
            "frames",
            "Frames in the camera's circular buffer; 0: chosen from the frame size.",
            f"0, or 2 to {most_buffers} at the default ROI (at most "
            f"{limits.MAX_BUFFER_BYTES} bytes of frames)",
            accept=[0, 2, most_buffers],
            refuse=[1, most_buffers + 1],
        ),
        "temperature_setpoint": SettingDoc(
            "degC",
            "The sensor temperature the camera regulates to.",
            f"{low_t:g} to {high_t:g}",
            accept=[low_t, high_t],
            refuse=[low_t - 0.5, high_t + 0.5],
        ),
        "fan_speed": choice(caps.fan_speeds, "The camera's fan (PVCAM's names)."),
        "stall_timeout": SettingDoc(
            "s",
            "How long without a frame before the acquisition is declared stalled; 0: "
            "automatic, from the frame period (stall_timeout_in_force shows it).",
            f"0 to {limits.MAX_STALL_TIMEOUT_S:g}",
            accept=[0, limits.MAX_STALL_TIMEOUT_S],
            refuse=[-1, limits.MAX_STALL_TIMEOUT_S + 1],
        ),
        "memory_buffer": SettingDoc(
            "MiB",
            "Memory for frames waiting for the disk; 0: a quarter of the memory available "
            f"at the first acquisition, between {limits.MIN_MEMORY_BUFFER_MIB} and "
            f"{limits.AUTO_MEMORY_BUFFER_MAX_MIB} MiB.",
            f"0, or {limits.MIN_MEMORY_BUFFER_MIB} up to half the memory available when "
            "set, and enough for two frames",
            accept=[0, limits.MIN_MEMORY_BUFFER_MIB],
            refuse=[limits.MIN_MEMORY_BUFFER_MIB - 1, 2**40],
        ),
        "compression": SettingDoc(
            "",
            "How frames are stored: 'bslz4' is bitshuffle + LZ4 (HDF5 filter 32008, read "
            "with hdf5plugin); 'none' is plain chunks.",
            names(COMPRESSIONS),
            accept=list(COMPRESSIONS),
            refuse=["gzip"],
        ),
    }


def _probe(check: Callable[[str, Any], Any], name: str, doc: SettingDoc) -> None:
    """The page's claims about ``name`` against the device's own check."""
    for value in doc.accept:
        try:
            check(name, value)
        except ValueError as error:
            raise ReferenceError(
                f"settings reference: {name}={value!r} is documented as allowed but the "
                f"device refuses it: {error}"
            ) from None
    for value in doc.refuse:
        try:
            check(name, value)
        except ValueError:
            continue
        raise ReferenceError(
            f"settings reference: {name}={value!r} is documented as refused but the "
            "device accepts it"
        )


def settings_markdown() -> tuple[str, str]:
    """The settings table and the read-only signals table of a simulated Prime BSI."""
    from ophyd import Component

    from ophyd_pvcam.acquisition import Settings
    from ophyd_pvcam.device import PrimeBSI
    from ophyd_pvcam.device._prime_bsi import FREE_WHILE_ACQUIRING

    names = [f.name for f in dataclasses.fields(Settings)]
    with tempfile.TemporaryDirectory() as folder:
        cam = PrimeBSI("cam", sim=True, write_path=folder)
        try:
            defaults = cam.settings()
            docs = _setting_docs(cam.capabilities, defaults)
            missing = sorted(set(names) - set(docs))
            stale = sorted(set(docs) - set(names))
            if missing or stale:
                raise ReferenceError(
                    f"settings reference (docs/_ext/pvcam_reference.py): add {missing}, "
                    f"remove {stale}"
                )
            check = cam._checks.check  # the device's own check, as a put() makes it
            for name in names:
                _probe(check, name, docs[name])
            rows, sections = [], []
            for name in names:
                doc = docs[name]
                default = code(getattr(defaults, name))
                free = "yes" if name in FREE_WHILE_ACQUIRING else "no"
                rows.append([f"[`{name}`](setting-{name})", doc.unit, default, free])
                sections += [
                    f"(setting-{name})=",
                    f"### {name}",
                    "",
                    doc.meaning,
                    "",
                    f"**Unit:** {doc.unit or 'none'} · **default:** {default} · **while "
                    f"acquiring:** {'may change' if free == 'yes' else 'refused'}",
                    "",
                    f"**Allowed:** {cell(doc.allowed)}",
                    "",
                ]
            settings = "\n".join(
                [
                    table(["setting", "unit", "default", "may change while acquiring"], rows),
                    "",
                    "## Each setting",
                    "",
                    *sections,
                ]
            )
            signals = []
            for name in cam.component_names:
                component = getattr(PrimeBSI, name)
                if name in names or not isinstance(component, Component):
                    continue
                signals.append(
                    [
                        f"`{name}`",
                        component.kind.name,
                        component.doc if component.doc and "Component" not in component.doc else "",
                    ]
                )
            readonly = table(["signal", "kind", "unit or note"], signals)
        finally:
            cam.destroy()
    return settings, readonly


# ---- command line -------------------------------------------------------------------


def _options(parser: argparse.ArgumentParser) -> str:
    formatter = parser._get_formatter()
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.option_strings:
            metavar = (
                formatter._format_args(action, action.dest.upper()) if action.nargs != 0 else ""
            )
            usage = ", ".join(
                f"`{o}{' ' + metavar if metavar else ''}`" for o in action.option_strings
            )
        else:
            usage = f"`{formatter._metavar_formatter(action, action.dest)(1)[0]}`"
        text = formatter._expand_help(action) if action.help else ""
        if action.choices and action.metavar is not None:  # the usage does not show them
            text = text.rstrip(".") + ". Choices: " + ", ".join(f"`{c}`" for c in action.choices)
        default = (
            code(action.default)
            if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings
            else ""
        )
        rows.append([usage, default, text])
    if not rows:
        return "No options."
    return table(["argument", "default", "meaning"], rows)


def cli_markdown() -> str:
    """The command, each subcommand in ``--help`` order, and the exit codes."""
    from ophyd_pvcam.cli._app import build_parser
    from ophyd_pvcam.cli._errors import EXIT_CODES

    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "64"  # argparse wraps to the terminal: the page's width, every build
    try:
        return _cli_markdown(build_parser(), EXIT_CODES)
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns


def _cli_markdown(parser: argparse.ArgumentParser, exit_codes) -> str:
    out = [
        "## ophyd-pvcam",
        "",
        cell(parser.description or ""),
        "",
        "```text",
        parser.format_usage().strip(),
        "```",
        "",
        "Options that come before the command:",
        "",
        _options(parser),
        "",
    ]
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    summaries = {a.dest: a.help for a in sub._choices_actions}
    for name, command in sub.choices.items():
        out += [f"## ophyd-pvcam {name}", ""]
        summary = summaries.get(name) or ""
        out += [cell(summary[:1].upper() + summary[1:]) + ("." if summary else ""), ""]
        if command.description and command.description != summary:
            out += [rst_to_md(command.description), ""]
        out += ["```text", command.format_usage().strip(), "```", "", _options(command), ""]
        if command.epilog:
            out += [rst_to_md(command.epilog), ""]
    out += [
        "(exit-codes)=",
        "## Exit codes",
        "",
        "Every expected failure is one line on stderr, `ophyd-pvcam: error: ...`, and one of "
        "these codes:",
        "",
        table(["code", "meaning", "when"], ([str(c), s, w] for c, (s, w) in exit_codes.items())),
        "",
    ]
    return "\n".join(out)


# ---- faults -------------------------------------------------------------------------


def _fault_descriptions(doc: str) -> dict[str, str]:
    """The bullets ``- ``"kind"``: ...`` of :func:`~ophyd_pvcam.sim.inject_fault`'s
    docstring, by kind."""
    described: dict[str, str] = {}
    current = None
    for line in inspect.cleandoc(doc).splitlines():
        match = re.match(r'- ``"(\w+)"``: (.*)', line)
        if match:
            current = match.group(1)
            described[current] = match.group(2)
        elif current and line.startswith("  "):
            described[current] += " " + line.strip()
        else:
            current = None
    return {kind: rst_to_md(text) for kind, text in described.items()}


def faults_markdown() -> str:
    from ophyd_pvcam import sim
    from ophyd_pvcam.sim import _control

    described = _fault_descriptions(sim.inject_fault.__doc__ or "")
    missing = sorted(set(sim.FAULT_KINDS) - set(described))
    if missing:
        raise ReferenceError(
            f"faults reference: inject_fault's docstring does not describe {missing}"
        )
    rows = []
    for kind in sim.FAULT_KINDS:
        if kind in _control._AFTER_FRAMES_DEFAULT:
            when = f"`after_frames` (default {_control._AFTER_FRAMES_DEFAULT[kind]})"
        elif kind == "param_poll":
            when = "`after_calls` (default 1)"
        else:
            when = "`bytes` (required)"
        options = [when]
        if kind in _control._DURATION_KINDS:
            options.append("`duration`")
        if kind == "drop":
            options.append("`every` (required)")
        rows.append([f"`{kind}`", ", ".join(options), described[kind]])
    return "\n".join(
        [
            table(["kind", "options", "what the simulated camera does"], rows),
            "",
            "Every kind also takes `times` (the next N acquisitions it fires in; default: "
            "until cleared) and `camera` (an index; default: every camera).",
            "",
            "## From the environment",
            "",
            rst_to_md(sim.parse_fault_spec.__doc__ or ""),
            "",
        ]
    )


# ---- layers -------------------------------------------------------------------------


def layers_markdown(pyproject: Path = GENERATED.parent.parent / "pyproject.toml") -> str:
    """The layers contract import-linter enforces (``pyproject.toml``), top first, each
    package with the first sentence of its own docstring."""
    import importlib
    import tomllib

    contracts = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers")["layers"]
    rows = []
    for layer in layers:
        for name in (part.strip() for part in layer.split("|")):
            module = importlib.import_module(f"ophyd_pvcam.{name}")
            doc = inspect.cleandoc(module.__doc__ or "")
            first = re.split(r"(?<=\.)\s", " ".join(doc.split("\n\n")[0].split()), maxsplit=1)
            siblings = [p.strip() for p in layer.split("|") if p.strip() != name]
            rows.append(
                [
                    f"`{name}`",
                    ", ".join(f"`{s}`" for s in siblings),
                    rst_to_md(first[0]).rstrip("."),
                ]
            )
    return table(["layer (top first)", "beside it, not imported", "what it is"], rows)


# ---- the frame file and the documents ----------------------------------------------

# What each thing in a frame file means.  The page lists what a real file, written at
# build time, holds: something in the file without an entry here, or an entry for
# something no file has (outside OPTIONAL), stops the build.
FILE_ITEMS = {
    "/entry/data/data": "the images the run references, one row per frame, in the order "
    "the run's events reference them (a step scan's point `i` is rows "
    "`i * frames_per_point` onwards); one chunk per frame",
    "/entry/data/unreferenced": "frames acquired that no event points at (a step point "
    "that never completed, frames after a fly scan's last collect), kept apart",
    "/entry/instrument/NDAttributes/frame_number": "the camera's frame number (from 1 in "
    "each acquisition: after a pause the camera numbers from 1 again)",
    "/entry/instrument/NDAttributes/timestamp_bof": "beginning of the frame, camera clock (s)",
    "/entry/instrument/NDAttributes/timestamp_eof": "end of the frame, camera clock (s)",
    "/entry/instrument/NDAttributes/frame_time": "end of the frame: the camera's clock "
    "mapped to wall time (s since the epoch)",
    "/entry/instrument/NDAttributes/lost_before": "how many frames were lost just before this one",
    "/entry/instrument/NDAttributes/lost_frame_numbers": "the camera numbers of the frames "
    "counted lost",
    "/entry/instrument/NDAttributes/unreferenced_frame_numbers": "the camera numbers of the "
    "frames in `/entry/data/unreferenced`",
}
ENTRY_ATTRIBUTES = {
    "created": "when the file was created (ISO 8601, local time with its offset)",
    "device": "the device's name (`cam`)",
    "kind": "`step` or `fly`",
    "run_uid": "the uid of the run the file belongs to (empty outside a run)",
    "camera_settings": "JSON: the camera's identity and every setting of the acquisition",
    "lost_frames": "JSON: how many frames were lost, by reason (below); `{}` if none",
    "pauses": "JSON: `[paused at, resumed at]` pairs, wall clock (s), one per pause",
}
OPTIONAL = {  # only in some files: what makes them appear
    "/entry/data/unreferenced": "frames were acquired that the run does not reference",
    "/entry/instrument/NDAttributes/unreferenced_frame_numbers": "frames were acquired "
    "that the run does not reference",
    "pauses": "the run was paused",
}


def _record_runs() -> tuple[list[tuple[str, dict]], dict[str, list[str]], dict[str, dict]]:
    """A count of two points and a fly scan of three frames, on the pure-Python fake
    camera, as :func:`~ophyd_pvcam.device.make_run_engine` records them (with the stall
    guard): their documents, and the items and entry attributes of each frame file."""
    import h5py
    from bluesky import RunEngine
    from bluesky import plans as bp

    from ophyd_pvcam.device import PrimeBSI, StallGuard
    from ophyd_pvcam.testing import FakeBackend

    documents: list[tuple[str, dict]] = []
    items: dict[str, list[str]] = {}
    attributes: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder:
        cam = PrimeBSI("cam", write_path=folder, backend=lambda: FakeBackend(period_s=0.002))
        try:
            engine = RunEngine({})
            engine.preprocessors.append(StallGuard())
            engine.subscribe(lambda name, doc: documents.append((name, doc)))
            cam.roi.set((0, 0, 64, 64)).wait(10)
            engine(bp.count([cam], num=2))
            cam.num_frames.set(3).wait(10)
            engine(bp.fly([cam]))
        finally:
            cam.close()
        for path in sorted(Path(folder).rglob("*.h5")):
            kind = path.stem.split("_")[-1]
            with h5py.File(path, "r") as f:
                found: list[str] = []
                f.visititems(
                    lambda name, obj, found=found: (
                        found.append("/" + name) if isinstance(obj, h5py.Dataset) else None
                    )
                )
                items[kind] = found
                attributes[kind] = dict(f["entry"].attrs)
    return documents, items, attributes


def layout_markdown(items: dict[str, list[str]], attributes: dict[str, dict]) -> str:
    from ophyd_pvcam.acquisition import _ledger
    from ophyd_pvcam.storage import _layout

    seen = {name for found in items.values() for name in found}
    seen_attributes = {name for found in attributes.values() for name in found}
    unknown = sorted((seen - set(FILE_ITEMS)) | (seen_attributes - set(ENTRY_ATTRIBUTES)))
    absent = sorted(
        ((set(FILE_ITEMS) - seen) | (set(ENTRY_ATTRIBUTES) - seen_attributes)) - set(OPTIONAL)
    )
    if unknown or absent:
        raise ReferenceError(
            f"HDF5 layout reference: undocumented in the file {unknown}; documented but "
            f"not in the file {absent}"
        )
    if _layout.DATA_PATH not in seen or not all(
        _layout.record_path(name) in seen for name in _layout.RECORD_DTYPES
    ):
        raise ReferenceError("HDF5 layout reference: the file disagrees with storage._layout")
    dtypes = {_layout.DATA_PATH: "uint16", _layout.UNREFERENCED_PATH: "uint16"}
    dtypes.update({_layout.record_path(n): np_name(t) for n, t in _layout.RECORD_DTYPES.items()})
    dtypes[_layout.record_path(_layout.LOST_NUMBERS)] = "int64"
    dtypes[_layout.record_path(_layout.UNREFERENCED_NUMBERS)] = "int64"
    shapes = {
        _layout.DATA_PATH: "(rows, height, width)",
        _layout.UNREFERENCED_PATH: "(unreferenced, height, width)",
        _layout.record_path(_layout.LOST_NUMBERS): "(lost,)",
        _layout.record_path(_layout.UNREFERENCED_NUMBERS): "(unreferenced,)",
    }

    def when(name: str) -> str:
        return f"; only when {OPTIONAL[name]}" if name in OPTIONAL else ""

    groups: dict[str, list[list[str]]] = {}
    for name in FILE_ITEMS:
        group, _, leaf = name.rpartition("/")
        groups.setdefault(group, []).append(
            [f"`{leaf}`", dtypes[name], shapes.get(name, "(rows,)"), FILE_ITEMS[name] + when(name)]
        )
    datasets: list[str] = []
    for group, rows in groups.items():
        datasets += [
            f"In `{group}`:",
            "",
            table(["dataset", "type", "shape", "what it holds"], rows),
            "",
        ]
    attribute_rows = [[f"`{name}`", text + when(name)] for name, text in ENTRY_ATTRIBUTES.items()]
    reasons = [
        [f"`{getattr(_ledger, name)}`"]
        for name in ("GAP", "TORN", "MEMORY", "WRITE", "INTERRUPTED", "RETAKEN")
    ]
    return "\n".join(
        [
            f"Layout `{_layout.SPEC}`. Datasets (`rows`: one per frame; the records have "
            "one value per row of `/entry/data/data`).",
            "",
            *datasets,
            "Attributes of `/entry`:",
            "",
            table(["attribute", "what it holds"], attribute_rows),
            "",
            "The reasons a frame is counted lost, as `lost_frames` names them:",
            "",
            table(["reason"], reasons),
            "",
        ]
    )


def np_name(dtype: Any) -> str:
    import numpy as np

    return np.dtype(dtype).name


def _document_sequence(documents: list[tuple[str, dict]]) -> str:
    """``start, descriptor, resource, (datum, event) x 2, stop``: runs of repeats folded."""
    names = [name for name, _ in documents]
    parts: list[str] = []
    i = 0
    while i < len(names):
        same = 1
        while i + same < len(names) and names[i + same] == names[i]:
            same += 1
        pair = names[i : i + 2]
        pairs = 1
        while len(pair) == 2 and names[i + 2 * pairs : i + 2 * pairs + 2] == pair:
            pairs += 1
        if same == 1 and pairs > 1:
            parts.append(f"({', '.join(pair)}) x {pairs}")
            i += 2 * pairs
        else:
            parts.append(names[i] if same == 1 else f"{names[i]} x {same}")
            i += same
    return ", ".join(parts)


def documents_markdown(documents: list[tuple[str, dict]]) -> str:
    runs: list[list[tuple[str, dict]]] = []
    for name, doc in documents:
        if name == "start":
            runs.append([])
        runs[-1].append((name, doc))
    out = []
    for title, run in zip(
        ("A step scan: `count([cam], num=2)`", "A fly scan: `fly([cam])` with `cam.num_frames` 3"),
        runs,
        strict=True,
    ):
        descriptor = next(doc for name, doc in run if name == "descriptor")
        locations = {
            doc["data_key"]: doc["parameters"]["dataset"]
            for name, doc in run
            if name == "stream_resource"
        }
        resource = next((doc for name, doc in run if name == "resource"), None)
        rows = []
        for key, spec in descriptor["data_keys"].items():
            if spec.get("external") and key in locations:
                where = f"file: `{locations[key]}`"
            elif spec.get("external") and resource is not None:
                where = f"file: `{resource['spec']}` Resource, one Datum per point"
            else:
                where = "in the event"
            rows.append([f"`{key}`", spec["dtype"], str(spec["shape"]), where, spec.get("doc", "")])
        out += [
            f"## {title}",
            "",
            f"Documents, in order: {_document_sequence(run)}.",
            "",
            f"Stream `{descriptor['name']}`:",
            "",
            table(["data key", "dtype", "shape", "where the value is", "note"], rows),
            "",
        ]
    return "\n".join(out)


# ---- the extension ------------------------------------------------------------------


def generate() -> dict[str, str]:
    """Every generated file's text, by name."""
    from ophyd_pvcam.acquisition import as_markdown

    settings, signals = settings_markdown()
    documents, items, attributes = _record_runs()
    return {
        "layout.md": layout_markdown(items, attributes),
        "documents.md": documents_markdown(documents),
        "settings.md": settings + "\n",
        "signals.md": signals + "\n",
        "cli.md": cli_markdown(),
        "faults.md": faults_markdown(),
        "phases-step.md": as_markdown("step") + "\n",
        "phases-fly.md": as_markdown("fly") + "\n",
        "layers.md": layers_markdown() + "\n",
    }


def write(folder: Path = GENERATED) -> list[Path]:
    """Write the generated files that changed; returns them."""
    folder.mkdir(exist_ok=True)
    written = []
    for name, text in generate().items():
        path = folder / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written


def _on_builder_inited(app) -> None:
    write(Path(app.srcdir) / "_generated")


def setup(app) -> dict[str, Any]:
    app.connect("builder-inited", _on_builder_inited)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
