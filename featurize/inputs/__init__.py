"""Which files a run reads and their bytes: a prefix walked on the executors
(:mod:`.walk`), an ``--input-list`` or an S3 Inventory (:mod:`.input_list`,
:mod:`.inventory`), or boto3 where Spark has no S3 filesystem; the label from the folder
(:mod:`.listing`), the reader that hands the pass its bytes (:mod:`.read`), and the
embedded sample (:mod:`.sample`).

May import :mod:`featurize.storage` and the root vocabulary; nothing about the model.
"""
