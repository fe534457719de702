"""The simulator in a fresh Python, as a user's script meets it: loaded on request (and
refused once pyvcam is bound), more cameras and faults from the environment, and the
vendor library left in charge unless the simulator is asked for.  Each test runs its
script in a new process: what a process loads first stays loaded."""

from __future__ import annotations

from helpers import run_python


def test_more_cameras_on_request(tmp_path):
    code = (
        "import ophyd_pvcam.sim as sim; sim.load()\n"
        "from pyvcam import pvc\n"
        "from pyvcam.camera import Camera\n"
        "pvc.init_pvcam()\n"
        "cams = list(Camera.detect_camera())\n"
        "for c in cams: c.open()\n"
        "print(sorted(c.name for c in cams), len({c.serial_no for c in cams}))\n"
        "for c in cams: c.start_live(exp_time=1)\n"
        "print([c.poll_frame(timeout_ms=2000)[2] for c in cams])\n"
        "for c in cams: c.finish(); c.close()\n"
    )
    result = run_python(code, OPHYD_PVCAM_SIM_CAMERAS="3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "['pvcamSim_0', 'pvcamSim_1', 'pvcamSim_2'] 3"
    assert lines[1] == "[1, 1, 1]"


def test_the_vendor_library_stays_in_charge_unless_the_simulator_is_asked_for():
    """Without OPHYD_PVCAM_SIM, importing ophyd_pvcam does not load the simulator."""
    code = (
        "import ophyd_pvcam, ophyd_pvcam.sim as sim\n"
        "print(sim.is_loaded())\n"
        "try:\n"
        "    from pyvcam import pvc\n"
        "    print('vendor')\n"
        "except ImportError as error:\n"
        "    print('no vendor library:', 'libpvcam.so.2' in str(error))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "False"
    assert lines[1] in {"vendor", "no vendor library: True"}


def test_loading_the_simulator_after_pyvcam_is_refused():
    code = (
        "import sys, types\n"
        "sys.modules['pyvcam.pvc'] = types.ModuleType('pyvcam.pvc')  # as if vendor-bound\n"
        "import ophyd_pvcam.sim as sim\n"
        "try:\n"
        "    sim.load()\n"
        "except sim.SimulatorError as error:\n"
        "    print(error)\n"
    )
    result = run_python(code)
    assert "Load the simulator first" in result.stdout, result.stderr


def test_without_any_pvcam_library_the_error_says_what_to_do():
    code = (
        "from ophyd_pvcam import PrimeBSI, CameraUnavailableError\n"
        "try:\n"
        "    PrimeBSI('cam')\n"
        "except CameraUnavailableError as error:\n"
        "    print(error)\n"
    )
    result = run_python(code)
    assert "Install the Teledyne Photometrics PVCAM runtime" in result.stdout, result.stderr
    assert "OPHYD_PVCAM_SIM=1" in result.stdout


def test_environment_faults_apply_to_a_whole_script(tmp_path):
    """OPHYD_PVCAM_SIM=1 and OPHYD_PVCAM_SIM_FAULTS make a plain pyvcam script stall."""
    script = tmp_path / "script.py"
    script.write_text(
        "import ophyd_pvcam.sim\n"
        "ophyd_pvcam.sim.load()\n"
        "from pyvcam import pvc\n"
        "from pyvcam.camera import Camera\n"
        "pvc.init_pvcam()\n"
        "cam = next(Camera.detect_camera()); cam.open(); cam.set_roi(0, 0, 64, 64)\n"
        "cam.start_live(exp_time=1)\n"
        "got = 0\n"
        "try:\n"
        "    while True:\n"
        "        cam.poll_frame(timeout_ms=500); got += 1\n"
        "except RuntimeError as error:\n"
        "    print(got, error)\n"
        "cam.finish(); cam.close(); pvc.uninit_pvcam()\n"
    )
    result = run_python(
        script.read_text(), OPHYD_PVCAM_SIM="1", OPHYD_PVCAM_SIM_FAULTS="stall:after=7"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("7 Frame timeout")


def test_param_poll_from_the_environment(tmp_path):
    code = (
        "import ophyd_pvcam.sim as sim\n"
        "sim.load()\n"
        "from pyvcam import pvc\n"
        "from pyvcam.camera import Camera\n"
        "pvc.init_pvcam()\n"
        "cam = next(Camera.detect_camera()); cam.open(); cam.set_roi(0, 0, 64, 64)\n"
        "cam.start_live(exp_time=1)\n"
        "for _ in range(3): cam.poll_frame(timeout_ms=1000)\n"
        "cam.temp\n"
        "try:\n"
        "    cam.poll_frame(timeout_ms=1000)\n"
        "except RuntimeError as error:\n"
        "    print(error, sim.param_calls_mid_stream())\n"
        "cam.finish(); cam.close(); pvc.uninit_pvcam()\n"
    )
    result = run_python(
        code, OPHYD_PVCAM_SIM="1", OPHYD_PVCAM_SIM_FAULTS="param_poll:after_calls=2"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Acquisition not active. 3"
