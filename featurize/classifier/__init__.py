"""The classifier on a run's PCA features: split and folds (:mod:`.split`), fit and score
(:mod:`.classify`), temperature scaling (:mod:`.calibration`), the chain exported for
NumPy (:mod:`.export`), and the train and predict jobs (:mod:`.train`, :mod:`.predict`;
predict runs the featurize pass on new images).

May import :mod:`featurize.extract` and everything below it.
"""
