"""One photo without Spark: a run's exported classifier answers for a file
(:mod:`.predict_one`) and the web page with its JSON API serves it (:mod:`.serve`,
``web/index.html``).

May import :mod:`featurize.model`, :mod:`featurize.classifier.export` and the root
vocabulary; never pyspark (``.importlinter`` checks it, indirect imports included).
"""
