# Simulated motors to practise scans with (ophyd.sim).
from ophyd.sim import SynAxis

m1 = SynAxis(name="m1")
m2 = SynAxis(name="m2")
