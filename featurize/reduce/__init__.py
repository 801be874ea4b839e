"""StandardScaler + PCA over the features without collecting them: moments summed on the
executors and merged in a tree (:mod:`.moments`), the fit, its choice of k and the
projection written by the executors (:mod:`.pca`).

May import only the root vocabulary.
"""
