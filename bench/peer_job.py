"""The peer: what a user would write from pyspark's own documentation, no project code
but the shared preprocessing function (so both sides decode the same way).

``binaryFile`` → a pandas UDF that decodes to ``array<float>`` → pyspark's
``predict_batch_udf`` around Keras MobileNetV2 (ImageNet, batch 64) → features written
to parquet → read back → Spark ML ``StandardScaler(withMean, withStd)`` → ``PCA(k)``
fitted → projections written. Run with spark-submit by :mod:`bench.peer`.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
from pyspark.ml import Pipeline
from pyspark.ml.feature import PCA, StandardScaler
from pyspark.ml.functions import array_to_vector, predict_batch_udf
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType

SIZE = 224


def make_predict_fn():
    from keras.applications import MobileNetV2

    model = MobileNetV2(input_shape=(SIZE, SIZE, 3), include_top=False, pooling="avg",
                        weights="imagenet")

    def predict(pixels: np.ndarray) -> np.ndarray:
        return model.predict(pixels, batch_size=64, verbose=0)

    return predict


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--k", type=int, required=True)
    args = p.parse_args()
    spark = SparkSession.builder.appName("peer").getOrCreate()

    @F.pandas_udf(ArrayType(FloatType()))
    def decode(content: pd.Series) -> pd.Series:
        from featurize.images import preprocess_image

        return content.map(lambda b: preprocess_image(b).ravel())

    featurize = predict_batch_udf(make_predict_fn, return_type=ArrayType(FloatType()),
                                  batch_size=64, input_tensor_shapes=[[SIZE, SIZE, 3]])
    images = (spark.read.format("binaryFile").option("recursiveFileLookup", "true")
              .option("pathGlobFilter", "*.jpg").load(args.input))
    features = images.select("path", decode("content").alias("pixels")).select(
        "path", featurize("pixels").alias("features"))
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
