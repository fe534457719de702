"""Whole processes: the command line, scripts, servers, terminals, the live window; the
simulator is loaded here too, for the tests that also drive the device in this process."""

from __future__ import annotations

import ophyd_pvcam.sim as sim

sim.load()  # before anything imports pyvcam.pvc

from simulated import cam, camera, no_faults_left_behind  # noqa: E402, F401  (fixtures)
