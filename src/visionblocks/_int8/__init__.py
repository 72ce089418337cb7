"""The INT8 paths behind :func:`visionblocks.quantize.quantize_int8`, one module each.

``capture`` holds what the paths share (the graph capture that names a failing layer);
``ort``, ``pt2e`` and ``fx`` each turn a float model and calibration batches into a
module that computes float logits with INT8 kernels.
"""
