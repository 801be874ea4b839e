"""``python -m emr upload`` (and the rehearsal's first step): dist/ and the weights file put
under s3://BUCKET/PREFIX/, the wheelhouse kept to what its list names, an object whose
sha256 S3 already holds left alone.
"""
from __future__ import annotations

import argparse
import os

from emr import aws, package, requests
from emr.args import settings_from
from emr.logs import out as _out
from featurize.errors import CommandError, SettingsError
from featurize.storage.s3 import S3Uri


def local_weights_file(spec: str) -> str | None:
    """The local file ``upload`` puts under PREFIX/weights/, or None (random, s3://)."""
    if spec == "random" or spec.startswith(("s3://", "s3a://")):
        return None
    if spec == "imagenet":
        from featurize.model.weights import imagenet_weights_file

        return imagenet_weights_file()  # Keras' cache; downloads once when online
    if not os.path.isfile(spec):
        raise SettingsError(f"WEIGHTS={spec!r}: no such file (give imagenet, a Keras "
                            f"weights file, s3://... or random)")
    return spec


def upload(args: argparse.Namespace) -> None:
    """dist/'s artifacts and the weights file (``args.weights``) under
    s3://BUCKET/PREFIX/, each object skipped when S3 holds the same sha256 already."""
    settings = settings_from(args)
    missing = [r for r in package.artifacts(args.dist)
               if not os.path.isfile(os.path.join(args.dist, r))]
    if missing:
        raise CommandError(f"{args.dist}/ lacks {', '.join(missing)}: run `make package` "
                           f"(python -m emr package) first")
    weights_file = local_weights_file(args.weights)
    c = aws.clients(args.profile, args.region)
    aws.head_bucket(c.s3, settings.bucket)
    uploads = [(os.path.join(args.dist, r), settings.key("dist", r))
               for r in package.artifacts(args.dist)]
    if weights_file:
        uploads.append((weights_file,
                        S3Uri.parse(requests.weights_uri(settings, args.weights)).key))
    skipped = 0
    wheel_prefix = settings.key("dist", package.WHEELS) + "/"
    listed = {key for _, key in uploads if key.startswith(wheel_prefix)}
    for path, key in uploads:
        if key == settings.key("dist", package.WHEEL_SUMS):
            # the bootstrap refuses a wheelhouse holding wheels its list does not name:
            # the ones an upload before a pin change left go before the new list
            for stale in aws.delete_unlisted(c.s3, settings.bucket, wheel_prefix, listed):
                _out(f"removed s3://{settings.bucket}/{stale}: not in this wheels.sha256")
        # An object uploaded from the same bytes is left alone: the wheelhouse is 400 MB.
        digest = package.sha256_file(path)
        if aws.object_sha256(c.s3, settings.bucket, key) == digest:
            skipped += 1
            continue
        aws.upload_file(c.s3, path, settings.bucket, key, sha256=digest)
        _out(f"uploaded {path} -> s3://{settings.bucket}/{key}")
    if skipped:
        _out(f"{skipped} file(s) already in s3://{settings.bucket}/{settings.key()} with the "
             f"same sha256: not uploaded again")
