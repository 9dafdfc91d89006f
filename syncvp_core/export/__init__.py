"""Deployment: ONNX export of the three static graphs, TensorRT engine building and its cache.

Optional dependencies (onnx, onnxruntime, tensorrt) are imported lazily through :mod:`.deps`, so importing
this package never fails on a machine without them.
"""
