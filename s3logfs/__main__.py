"""``python -m s3logfs`` runs the command-line interface."""

from .cli import main

raise SystemExit(main())
