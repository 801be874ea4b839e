"""The pyspark peer: what a user would write from pyspark's own documentation, no project
code.

``binaryFile`` → pyspark's ``predict_batch_udf`` over the file bytes, whose predict
function decodes them with Pillow (RGB, the whole frame resized to 224×224 bilinear, as
the Daft and Ray peers do) and calls Keras MobileNetV2 (ImageNet, ``preprocess_input``,
batch 64; decoding in the UDF, not in a separate one, saves shipping 600 KB of pixels per
image through Arrow twice: that version ran 2.7× slower) → features written to parquet →
read back → Spark ML ``StandardScaler(withMean, withStd)`` → ``PCA(k)`` fitted →
projections written. Run with spark-submit by :mod:`bench.peer`.
"""
from __future__ import annotations

import io
import sys

import numpy as np
from pyspark.ml import Pipeline
from pyspark.ml.feature import PCA, StandardScaler
from pyspark.ml.functions import array_to_vector, predict_batch_udf
from pyspark.sql import SparkSession
from pyspark.sql.types import ArrayType, FloatType

from bench.peers.common import arguments

SIZE = 224


def make_predict_fn():
    from keras.applications import MobileNetV2

    model = MobileNetV2(input_shape=(SIZE, SIZE, 3), include_top=False, pooling="avg",
                        weights="imagenet")

    from keras.applications.mobilenet_v2 import preprocess_input
    from PIL import Image

    def predict(contents: np.ndarray) -> np.ndarray:
        pixels = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB").resize(
            (SIZE, SIZE), Image.BILINEAR), dtype=np.float32) for b in contents])
        return model.predict(preprocess_input(pixels), batch_size=64, verbose=0)

    return predict


def main() -> int:
    args = arguments()
    spark = SparkSession.builder.appName("peer").getOrCreate()

    featurize = predict_batch_udf(make_predict_fn, return_type=ArrayType(FloatType()),
                                  batch_size=64)
    images = (spark.read.format("binaryFile").option("recursiveFileLookup", "true")
              .option("pathGlobFilter", "*.jpg").load(args.input))
    features = images.select("path", featurize("content").alias("features"))
    features.write.mode("overwrite").parquet(args.output + "/features")

    table = spark.read.parquet(args.output + "/features").select(
        "path", array_to_vector("features").alias("vec"))
    model = Pipeline(stages=[
        StandardScaler(inputCol="vec", outputCol="scaled", withMean=True, withStd=True),
        PCA(k=args.k, inputCol="scaled", outputCol="pca"),
    ]).fit(table)
    model.transform(table).select("path", "pca").write.mode("overwrite").parquet(
        args.output + "/pca")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
