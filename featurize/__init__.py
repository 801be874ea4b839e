"""featurize: batch image featurization (MobileNetV2 → StandardScaler → PCA) on Spark.

The sub-packages follow a run's flow, from the bottom up: :mod:`~featurize.storage`
(where bytes live), :mod:`~featurize.inputs` (which files a run reads) and
:mod:`~featurize.model` (how a photo becomes features), :mod:`~featurize.reduce` (PCA),
:mod:`~featurize.extract` (the featurize job), :mod:`~featurize.classifier` (train and
predict), and on top :mod:`~featurize.photo` (one photo, the web page) and
:mod:`~featurize.review` (what a person reads after a run). A package imports only from
the ones below it; the modules at this root are the vocabulary every room shares (the
options, the errors, the run directory's layout, the manifest, encryption, the entry of
a job) and import nothing above them. ``.importlinter`` holds the rule; CI checks it.

Importing the package has no side effects: TensorFlow and Spark are imported by the
modules that need them, when they are used.
"""
__version__ = "0.1.0"
