"""The sub-commands of ``visionblocks`` (the entry point is :mod:`visionblocks.cli`)."""
