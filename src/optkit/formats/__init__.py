"""Recognise a model file by its bytes or layout, without importing any framework or unpickling.

Below sources/, scan/ and registry.py, which all need to tell formats apart: onnx_format (ONNX bytes),
torch_format (TorchScript / torch.export / torch.save archives), paddle_format (program + params).
"""
