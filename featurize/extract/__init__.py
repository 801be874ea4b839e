"""The featurize job: list the inputs, prepare the engine, run the pass over partitions
(:mod:`.featurize_pass`, :mod:`.pipeline`, the pandas UDF in :mod:`.udf`, the progress
lines in :mod:`.progress`), resume what a run already holds (:mod:`.resume`), then reduce
and publish (:mod:`.job`, the spine).

May import :mod:`featurize.reduce`, :mod:`featurize.model`, :mod:`featurize.inputs`,
:mod:`featurize.storage` and the root vocabulary.
"""
