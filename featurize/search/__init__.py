"""Similar images: a faiss index over a run's PCA features (:mod:`.index`, no Spark), each
image's nearest neighbours found on the executors (:mod:`.neighbours`), the groups of
near-duplicates (:mod:`.duplicates`), and the index job's spine (:mod:`.job`).

May import :mod:`featurize.storage` and the root vocabulary; :mod:`.index` never imports
Spark, so one photo can search the index without a JVM.
"""
