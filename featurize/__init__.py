"""featurize: batch image featurization (MobileNetV2 → StandardScaler → PCA) on Spark.

Importing the package has no side effects: TensorFlow and Spark are imported by the
modules that need them, when they are used.
"""
__version__ = "0.1.0"
