"""credit-dagster: batch credit scoring on the Home Credit tables."""

import os

# OpenMP threads (LightGBM's) spin while they wait for work by default: next to another busy
# process they burn the cores the other needs and each fold ran ~10x slower. Passive waiting
# must be chosen before the OpenMP runtime loads, hence here, before anything imports LightGBM.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Client data is personal data: everything the platform writes (warehouse, snapshots, inbox copies,
# models, journals, reports, Dagster's files) is its own user's only, folders 0700 and files 0600.
# Every entry point imports this package first (the CLI, the code location Dagster's webserver,
# daemon and runs load, the API, the dashboard, the Celery workers), so the mask is set here.
# CREDIT_UMASK (077) opens it deliberately, e.g. 027 for a group that operates the platform.
from credit_dagster.core import settings as _settings  # noqa: E402 - after OMP_WAIT_POLICY, which must come first

os.umask(int(_settings.current().umask, 8))
