"""utkface-mtl: one multi-task model (age + gender) for face crops, tracked with MLflow."""

__version__ = "0.1.0"
