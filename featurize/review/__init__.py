"""What a person reads after a run: the one-screen summary (:mod:`.summary`), the report's
figures and page (:mod:`.report`, :mod:`.report_clusters`) and the KMeans clusters of the
PCA features (:mod:`.clusters`).

May import :mod:`featurize.model` (to decode the photos it draws), :mod:`featurize.storage`
and the root vocabulary; never the featurize pass or the classifier.
"""
