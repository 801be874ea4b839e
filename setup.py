"""Packaging for featurize-images.

Versions are pinned in constraints.txt (one place, shared with the EMR bootstrap);
here only the names. pyspark is an extra: on EMR the cluster provides Spark.
"""
from setuptools import find_packages, setup

setup(
    name="featurize-images",
    version="0.1.0",
    description="Batch image featurization (MobileNetV2 + StandardScaler + PCA) on Spark/EMR",
    python_requires=">=3.11",
    packages=find_packages(include=["featurize", "featurize.*", "emr", "emr.*"]),
    package_data={"featurize.photo.web": ["*.html"]},
    install_requires=[
        "numpy",
        "pandas",
        "pyarrow",
        "pillow",
        "h5py",
        "tensorflow-cpu",
        "keras",
        "openvino",
        "boto3",
        "faiss-cpu",
    ],
    extras_require={
        "local": ["pyspark[sql,ml]", "scikit-learn", "matplotlib"],
        "serve": ["flask", "waitress"],
        "test": ["pytest", "import-linter", "selenium", "scikit-learn", "nbclient", "nbformat", "ipykernel", "moto[server]"],
    },
)
