"""How a photo becomes 1,280 features: bytes decoded and fitted to the model's input
(:mod:`.decode`, :mod:`.preprocess`), MobileNetV2 and its weights (:mod:`.backbone`,
:mod:`.weights`), the engines that run it on every Python worker (:mod:`.engines`), and
the checks that a finished run and the model about to be used agree (:mod:`.run_checks`).

May import :mod:`featurize.storage` (weights from S3) and the root vocabulary; never
Spark, so one photo and the web page can use it without a JVM.
"""
