"""Ctrl-C while the command line loads its modules ends the process quietly, not with a traceback.

Imported first by :mod:`s3logfs.cli`: until :func:`s3logfs.cli.main` runs, SIGINT has the
system's default action (the process ends, as any Unix tool does). ``main`` then gives
Python's handler back, so each command turns Ctrl-C into its own clean stop.
"""

from __future__ import annotations

import signal

signal.signal(signal.SIGINT, signal.SIG_DFL)
