# ophyd-pvcam beamline profile: the RunEngine, the catalog, callbacks and the stall guard.
#
# Runs as an IPython profile (ipython --profile-dir=profile_collection) and as
# the startup code of bluesky-queueserver (start-re-manager --startup-dir
# profile_collection/startup).  Only names meant for users are defined here.
import logging

from bluesky.callbacks.best_effort import BestEffortCallback
from bluesky_queueserver import is_re_worker_active

from ophyd_pvcam.device import log_to_file, make_run_engine
from ophyd_pvcam.paths import data_root

LOG_FILE = log_to_file(data_root() / "logs" / "ophyd-pvcam.log")
logging.getLogger("ophyd_pvcam").info("profile starting")

# The catalog comes from OPHYD_PVCAM_CATALOG (a folder, or a tiled server URI)
# or the per-user default: moving to a shared server changes nothing here.
RE, catalog = make_run_engine(progress_bar=not is_re_worker_active())
bec = BestEffortCallback()
bec.disable_plots()  # call bec.enable_plots() in a session with a display
RE.subscribe(bec)
