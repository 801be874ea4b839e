"""``aws s3 cp``, the one AWS CLI command the bootstrap script runs, over boto3.

A rehearsal puts an ``aws`` executable that runs this module first on the bootstrap
script's PATH, so the script runs unchanged against the moto server (boto3 finds it
through ``AWS_ENDPOINT_URL``); this machine need not have the AWS CLI. Only the forms the
script uses are understood::

    aws s3 cp [--only-show-errors] [--recursive] SOURCE DEST
"""
from __future__ import annotations

import os
import sys

from featurize.storage.s3 import S3Uri


def cp(source: str, dest: str, recursive: bool) -> int:
    """Download one object, or (``recursive``) every object under a prefix into the folder
    ``dest``; returns how many. Directory markers (empty keys ending in ``/``, which S3A
    writes for folders) are skipped, as ``aws s3 cp --recursive`` skips them."""
    import boto3

    s3 = boto3.client("s3")
    loc = S3Uri.parse(source)
    if not recursive:
        os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
        s3.download_file(loc.bucket, loc.key, dest)
        return 1
    prefix = loc.key.rstrip("/") + "/"
    n = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith("/"):
                continue
            target = os.path.join(dest, obj["Key"][len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            s3.download_file(loc.bucket, obj["Key"], target)
            n += 1
    return n


def main(argv: list[str]) -> int:
    flags = {a for a in argv if a.startswith("--")}
    words = [a for a in argv if not a.startswith("--")]
    unknown = flags - {"--only-show-errors", "--recursive"}
    if words[:2] != ["s3", "cp"] or len(words) != 4 or unknown:
        print(f"aws (rehearsal shim): only `aws s3 cp [--recursive] SRC DEST` is "
              f"understood, not: aws {' '.join(argv)}", file=sys.stderr)
        return 2
    cp(words[2], words[3], "--recursive" in flags)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
