"""``python -m visionblocks`` runs the command line interface."""

from visionblocks.cli import main

raise SystemExit(main())
