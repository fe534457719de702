"""The C simulator in this process: the real pyvcam on the simulated SDK, the device on it."""

from __future__ import annotations

import ophyd_pvcam.sim as sim

sim.load()  # before anything imports pyvcam.pvc

from simulated import cam, camera, no_faults_left_behind  # noqa: E402, F401  (fixtures)
