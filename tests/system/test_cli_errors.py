"""Every expected failure at the command line: the documented exit code, one line on
stderr, no traceback, nothing recorded.

Most invocations run in this process (``cli.main``), where a traceback would be an
exception escaping ``main``; the few that fail while the package is imported run as a
user would.  Exit codes: 0 ok, 1 acquisition failed, 2 bad arguments or settings,
3 no usable camera, 4 catalog or run not found.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import subprocess
import sys

import bluesky.plans as bp
import pytest
from helpers import small_disk

import ophyd_pvcam.cli as cli

BANNER_LINE = "  #"


@pytest.fixture(scope="module")
def recorded(data_dir, tmp_path_factory):
    """A catalog with one small fly scan in it, recorded the way the profile does."""
    from bluesky import RunEngine
    from bluesky_tiled_plugins import TiledWriter

    from ophyd_pvcam import PrimeBSI, open_catalog

    folder = data_dir / "cli-errors-catalog"
    catalog = open_catalog(folder)
    cam = PrimeBSI("cam", sim=True, write_path=data_dir / "frames" / "cli-errors")
    try:
        cam.roi.set((960, 960, 128, 128)).wait(5)
        cam.exposure_time.set(0.002).wait(5)
        cam.num_frames.set(4).wait(5)
        engine = RunEngine({})
        engine.subscribe(TiledWriter(catalog))
        (uid,) = engine(bp.fly([cam]))
    finally:
        cam.close()
    scratch = tmp_path_factory.mktemp("cli-errors")
    (scratch / "a-file").write_text("not a catalog")
    (scratch / "empty").mkdir()
    (scratch / "bad-config.toml").write_text("catalog = [\n")
    (scratch / "damaged").mkdir()
    (scratch / "damaged" / "catalog.db").write_bytes(bytes(range(256)) * 20)
    (scratch / "foreign").mkdir()
    with contextlib.closing(sqlite3.connect(scratch / "foreign" / "catalog.db")) as db:
        db.execute("CREATE TABLE samples (name TEXT)")
        db.commit()
    return {"catalog": folder, "uid": uid, "scratch": scratch}


def run_main(argv, capsys, monkeypatch, **env):
    """``ophyd-pvcam ARGV`` in this process: (exit code, stdout, stderr)."""
    for name in ("OPHYD_PVCAM_CATALOG", "OPHYD_PVCAM_CONFIG", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as stop:  # argparse's own exit
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def error_lines(err: str) -> list[str]:
    """stderr without the simulator's banner."""
    return [line for line in err.splitlines() if line.strip() and not line.startswith(BANNER_LINE)]


# (arguments, exit code, words the line must hold); {catalog}, {uid}, {scratch} are filled in
TABLE = [
    # arguments
    (["nosuch"], 2, "invalid choice"),
    ([], 2, "required: COMMAND"),
    (["runs", "--last", "-3"], 2, "--last: -3 is too small"),
    (["runs", "--last", "0"], 2, "--last: 0 is too small"),
    (["runs", "--last", "many"], 2, "not a whole number"),
    (["demo", "--frames", "-5"], 2, "--frames: -5 is too small"),
    (["demo", "--frames", "0"], 2, "--frames: 0 is too small"),
    (["demo", "--points", "0"], 2, "--points: 0 is too small"),
    (["demo", "--exposure", "100"], 2, "would take about 8.5 h"),
    (["demo", "--exposure", "nan"], 2, "--exposure: 'nan'"),
    (["demo", "--exposure", "-1"], 2, "--exposure: '-1'"),
    (["demo", "--camera", "film"], 2, "--camera: invalid choice"),
    (["show", ""], 2, "give a run uid"),
    (["show", "   "], 2, "give a run uid"),
    (["show", "{uid}", "--frame", "5"], 2, "--frame applies to the PNG"),
    (["show", "{uid}", "--contrast", "1,99"], 2, "--contrast applies to the PNG"),
    (["show", "{uid}", "--frame", "-1", "--png", "x.png"], 2, "--frame: -1 is too small"),
    (["show", "{uid}", "--png", "x.png", "--contrast", "99,1"], 2, "0 <= LOW < HIGH <= 100"),
    (["show", "{uid}", "--png", "x.png", "--contrast", "5"], 2, "LOW,HIGH"),
    (["show", "{uid}", "--png", "/missing/dir/x.png"], 2, "no folder /missing/dir"),
    (["show", "{uid}", "--png", "{scratch}"], 2, "is a folder"),
    (["show", "{uid}", "--png", ""], 2, "--png needs a file name"),
    (["show", "{uid}", "--png", "/dev/full"], 2, "cannot write --png /dev/full"),
    (["show", "{uid}", "--png", "{scratch}/f.png", "--frame", "4"], 2, "outside 0..3"),
    (["export", "{uid}", "--tiff", "{scratch}/a-file"], 2, "is a file"),
    (["export", "{uid}", "--tiff", ""], 2, "--tiff needs a folder"),
    (["export", "{uid}", "--tiff", "{scratch}/t", "--stream", "nosuch"], 2, "'nosuch'"),
    (["recover", "--idle", "-1"], 2, "--idle: '-1'"),
    (["live", "--roi", "1,2,3"], 2, "X,Y,WIDTH,HEIGHT"),
    (["live", "--binning", "3"], 2, "--binning: invalid choice"),
    (["live"], 2, "DISPLAY is not set"),
    (["catalog-server", "--port", "70000", "--database", "d", "--storage", "s"], 2, "70000"),
    (["catalog-server", "--database", "mysql://h/d", "--storage", "{scratch}"], 2, "postgresql"),
    # catalogs and runs
    (["--catalog", "/nonexistent", "runs"], 4, "no catalog at /nonexistent: no such folder"),
    (["--catalog", "{scratch}/a-file", "runs"], 4, "is a file, not a catalog folder"),
    (["--catalog", "{scratch}/empty", "show", "abc"], 4, "holds no catalog.db"),
    (["--catalog", "{scratch}/damaged", "runs"], 4, "damaged/catalog.db is not a catalog"),
    (["--catalog", "{scratch}/damaged", "demo", "--frames", "2"], 4, "nothing was changed"),
    (["--catalog", "{scratch}/foreign", "runs"], 4, "another program's database (tables samples)"),
    (["--catalog", "{scratch}/foreign", "recover"], 4, "not a tiled catalog"),
    (["--catalog", "ftp://host/x", "runs"], 4, "no catalog at ftp://host/x"),
    (["--catalog", "http://127.0.0.1:9", "runs"], 4, "catalog server at http://127.0.0.1:9"),
    (["--catalog", "http://127.0.0.1:9", "show", "abc"], 4, "http://127.0.0.1:9"),
    (["--catalog", "/proc/no/catalog", "demo", "--frames", "2"], 4, "cannot open the catalog"),
    (["show", "ffffffff"], 4, "no run 'ffffffff'"),
    (["show", "{fulluid}/cam"], 4, "no run"),
    (["show", "zz!"], 4, "no run 'zz!'"),
    (["export", "ffffffff", "--tiff", "{scratch}/t"], 4, "no run 'ffffffff'"),
    (["recover", "ffffffff"], 4, "no run 'ffffffff'"),
    (
        ["catalog-server", "--database", "postgresql://u@127.0.0.1:9/x", "--storage", "{scratch}"],
        4,
        "cannot reach PostgreSQL at 127.0.0.1:9",
    ),
    # a server that accepts connections and never answers: given up on within seconds
    (["--catalog", "http://127.0.0.1:{silent}", "runs"], 4, "did not answer within 5 s"),
    (
        [
            "catalog-server",
            "--database",
            "postgresql://h/d",
            "--storage",
            "s",
            "--port",
            "{silent}",
        ],
        2,
        "cannot listen on 127.0.0.1:",
    ),
    (
        [
            "catalog-server",
            "--database",
            "postgresql://h/d",
            "--storage",
            "s",
            "--host",
            "no.such.host.invalid",
        ],
        2,
        "--host no.such.host.invalid",
    ),
]


@pytest.fixture
def silent_port():
    """A port where something accepts connections and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_every_bad_invocation_is_one_line_with_its_exit_code(
    recorded, silent_port, capsys, monkeypatch
):
    failures = []
    for arguments, code, words in TABLE:
        fill = {"uid": recorded["uid"][:8], "fulluid": recorded["uid"], "silent": silent_port}
        argv = [a.format(scratch=recorded["scratch"], **fill) for a in arguments]
        if argv and argv[0] != "--catalog":
            argv = ["--catalog", str(recorded["catalog"]), *argv]
        got, _out, err = run_main(argv, capsys, monkeypatch, TILED_API_KEY="abc123abc123")
        lines = error_lines(err)
        ok = (
            got == code
            and len(lines) == 1
            and lines[0].startswith("ophyd-pvcam: error: ")
            and words in lines[0]
        )
        if not ok:
            failures.append(f"{' '.join(arguments)!r}: exit {got}, stderr {err!r}")
    assert not failures, "\n".join(failures)
    for name in ("damaged", "foreign"):  # refused, and left exactly as they were
        assert sorted(p.name for p in (recorded["scratch"] / name).iterdir()) == ["catalog.db"]


def test_refused_demos_record_nothing(recorded, capsys, monkeypatch, tmp_path):
    """Arguments and settings are checked before the first run: a refused demo leaves
    no run and no frame file behind."""
    catalog = tmp_path / "catalog"
    for arguments in (
        ["demo", "--frames", "-5"],
        ["demo", "--points", "0"],
        ["demo", "--exposure", "100"],
        ["demo", "--exposure", "1e-9", "--frames", "2", "--points", "1"],  # the camera refuses
    ):
        code, _out, err = run_main(
            ["--catalog", catalog, *arguments],
            capsys,
            monkeypatch,
            OPHYD_PVCAM_DATA=str(tmp_path / "data"),
        )
        lines = error_lines(err)
        assert code == 2 and len(lines) == 1, err
    assert "exposure_time=1e-09 s" in lines[0]
    assert not list((tmp_path / "data").rglob("*.h5"))
    if (catalog / "catalog.db").exists():
        from ophyd_pvcam import open_catalog

        assert len(open_catalog(catalog)) == 0


def test_a_demo_the_disk_cannot_hold_is_refused_before_it_records(capsys, monkeypatch, tmp_path):
    with small_disk(tmp_path / "disk", "16m") as disk:
        code, _out, err = run_main(
            ["--catalog", tmp_path / "catalog", "demo", "--frames", "100", "--points", "1"],
            capsys,
            monkeypatch,
            OPHYD_PVCAM_DATA=str(disk),
        )
        lines = error_lines(err)
        assert code == 1 and len(lines) == 1, err
        assert "MiB free" in lines[0] and "for 101 frames" in lines[0]
        assert not list(disk.rglob("*.h5"))


def test_the_default_catalog_not_made_yet_is_not_an_error(capsys, monkeypatch, tmp_path):
    """A new user's 'ophyd-pvcam runs': no runs yet, exit 0; but 'show' has nothing to
    show (exit 4), and a catalog someone named must exist (the table)."""
    data = str(tmp_path / "data")
    code, out, _err = run_main(["runs"], capsys, monkeypatch, OPHYD_PVCAM_DATA=data)
    assert code == 0 and "'ophyd-pvcam demo' makes one" in out
    code, _out, err = run_main(["show", "abc"], capsys, monkeypatch, OPHYD_PVCAM_DATA=data)
    assert code == 4 and error_lines(err) == [
        f"ophyd-pvcam: error: no catalog at {data}/catalog yet: 'ophyd-pvcam demo' makes one"
    ]


def test_a_malformed_config_file_is_a_bad_setting(recorded, capsys, monkeypatch):
    code, _out, err = run_main(
        ["runs"],
        capsys,
        monkeypatch,
        OPHYD_PVCAM_CONFIG=str(recorded["scratch"] / "bad-config.toml"),
    )
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1 and "cannot read the config file" in lines[0]


@pytest.mark.parametrize(
    ("environment", "words"),
    [
        ({"OPHYD_PVCAM_SIM_FAULTS": "stall:after=x"}, "cannot read 'after=x'"),
        ({"OPHYD_PVCAM_SIM_FAULTS": "stal:after=3"}, "unknown fault kind 'stal'"),
        ({"OPHYD_PVCAM_SIM_FAULTS": "stall:after=-1"}, "after_frames=-1"),
        # with OPHYD_PVCAM_SIM=1 the simulator loads while the package is imported
        ({"OPHYD_PVCAM_SIM": "1", "OPHYD_PVCAM_SIM_FAULTS": "drop:every=x"}, "'every=x'"),
    ],
)
def test_a_malformed_fault_spec_is_one_line_exit_2(environment, words, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPHYD_PVCAM")}
    env.update(environment, OPHYD_PVCAM_DATA=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "ophyd_pvcam.cli", "info"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = error_lines(result.stderr)
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("ophyd-pvcam: error: OPHYD_PVCAM_SIM_FAULTS")
    assert words in lines[0]


def test_a_library_user_still_gets_the_exception(tmp_path):
    """Only the command turns a bad OPHYD_PVCAM_SIM_FAULTS into one line; a script
    loading the simulator gets FaultSpecError, a ValueError.  Importing the package
    loads nothing, so it neither raises nor exits."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPHYD_PVCAM")}
    env.update(OPHYD_PVCAM_SIM="1", OPHYD_PVCAM_SIM_FAULTS="stall:after=x")
    code = (
        "import ophyd_pvcam, ophyd_pvcam.sim as sim\nprint(sim.is_loaded())\n"
        "try:\n    sim.load()\nexcept ValueError as error:\n"
        "    print(type(error).__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split() == ["False", "FaultSpecError"], result.stderr


def test_a_stalled_demo_reports_the_diagnosis_once_without_a_traceback(tmp_path):
    """The stall is an acquisition failure, exit 1: the summary line once, then the
    diagnosis once as the command's error, its lines kept; no 'Run aborted' traceback
    and no second copy from the library's log."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPHYD_PVCAM")}
    env.update(OPHYD_PVCAM_DATA=str(tmp_path / "data"), OPHYD_PVCAM_SIM_FAULTS="stall:after=40")
    result = subprocess.run(
        [sys.executable, "-m", "ophyd_pvcam.cli", "--catalog", str(tmp_path / "catalog"),
         "demo", "--camera", "sim", "--points", "2", "--frames", "100", "--exposure", "0.005"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    both = result.stdout + result.stderr
    assert result.returncode == 1, both
    assert both.count("frames stopped during a fly scan") == 1, both
    assert both.count("frames written to") == 1, both
    assert "Traceback" not in both and "Run aborted" not in both, both
    error = result.stderr[result.stderr.index("ophyd-pvcam: error: ") :].splitlines()
    assert error[0].startswith("ophyd-pvcam: error: cam: frames stopped"), both
    assert any(line.startswith("  Data: ") for line in error[1:]), both
