"""credit-dagster: batch credit scoring on the Home Credit tables."""

import os

# OpenMP threads (LightGBM's) spin while they wait for work by default: next to another busy
# process they burn the cores the other needs and each fold ran ~10x slower. Passive waiting
# must be chosen before the OpenMP runtime loads, hence here, before anything imports LightGBM.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
