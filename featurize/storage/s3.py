"""S3 where Spark has no S3 filesystem (open-source pyspark): boto3 lists, fetches, uploads.

On EMR, Spark reads and writes ``s3://`` itself and nothing here runs. Elsewhere the job
lists objects on the driver, fetches their bytes on the executors (one client per task)
and writes the run directory locally before uploading it, manifest last. boto3 is
configured only by its own chain: credentials, region, profile and the standard
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` variables.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from featurize.config import S3_SCHEMES
from featurize.errors import S3AccessError, S3Error, S3WriteError, explain_aws
from featurize.rundir import MANIFEST

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class S3Uri:
    scheme: str
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> "S3Uri":
        """
        Examples
        --------
        >>> S3Uri.parse("s3a://bucket/a/b/")
        S3Uri(scheme='s3a', bucket='bucket', key='a/b/')
        """
        parts = urlsplit(uri)
        if parts.scheme not in S3_SCHEMES or not parts.netloc:
            raise S3AccessError(f"{uri}: not an s3://bucket/prefix URI")
        return cls(parts.scheme, parts.netloc, parts.path.lstrip("/"))

    @property
    def prefix(self) -> str:
        """The key as a folder prefix ('' for the bucket root, else ending in '/')."""
        return self.key if not self.key or self.key.endswith("/") else self.key + "/"

    def uri(self, key: str) -> str:
        return f"{self.scheme}://{self.bucket}/{key}"

    @property
    def root(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.prefix}".rstrip("/")


def is_s3(uri: str) -> bool:
    return urlsplit(uri).scheme in S3_SCHEMES


#: botocore's retries where the environment sets none (AWS_RETRY_MODE, AWS_MAX_ATTEMPTS
#: win): the "standard" mode (throttling and transient errors, exponential backoff with
#: jitter), 6 attempts per call instead of legacy's 5 without SlowDown handling.
DEFAULT_RETRY_MODE = "standard"
DEFAULT_MAX_ATTEMPTS = 6


def client() -> Any:
    """A boto3 S3 client from boto3's own configuration (env, profile, endpoint URLs),
    with standard retries unless the environment chooses.

    A new Session each time: boto3's default session caches the credentials it first
    resolved, which would hide a changed environment.
    """
    import boto3
    from botocore.config import Config

    retries: dict[str, Any] = {}
    if not os.environ.get("AWS_RETRY_MODE"):
        retries["mode"] = DEFAULT_RETRY_MODE
    if not os.environ.get("AWS_MAX_ATTEMPTS"):
        retries["max_attempts"] = DEFAULT_MAX_ATTEMPTS
    return boto3.session.Session().client("s3", config=Config(retries=retries or None))


def explain(exc: Exception, what: str,
            kind: type[S3Error] = S3AccessError) -> S3Error:
    """A boto3/botocore failure as ``kind`` (:class:`S3AccessError` before the run,
    :class:`S3WriteError` for its outputs), with what to do from the shared hints."""
    return kind(f"{what}: {explain_aws(exc)}")


def extension_of(path: str) -> str:
    """Lower-case extension of a path's file name, with its dot; ``(none)`` without one.

    >>> extension_of("s3://b/x/IMG_1.WebP"), extension_of("a/b/README"), extension_of("a/.x")
    ('.webp', '(none)', '(none)')
    """
    name = path.rsplit("/", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    return f".{ext.lower()}" if dot and stem and ext else "(none)"


def _hidden(relative_key: str) -> bool:
    """Spark's file index skips names starting with '_' or '.'; so does this listing."""
    return any(part.startswith(("_", ".")) for part in relative_key.split("/") if part)


def list_images(s3: Any, uri: str, extensions: tuple[str, ...],
                skipped: dict[str, int] | None = None) -> list[tuple[str, int, int]]:
    """``(s3://bucket/key, size, last_modified_ms)`` for matching objects under a prefix.

    Paginated and recursive; extension match is case-insensitive. Objects the extension
    filter leaves out are counted by extension into ``skipped`` when given.

    Raises
    ------
    S3Error
        Bucket missing, access denied, credentials absent.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    loc = S3Uri.parse(uri)
    found = []
    suffixes = tuple("." + e.lower() for e in extensions)
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket,
                                                                 Prefix=loc.prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.endswith("/") or _hidden(key[len(loc.prefix):]):
                    continue
                if key.lower().endswith(suffixes):
                    found.append((loc.uri(key), int(obj["Size"]),
                                  int(obj["LastModified"].timestamp() * 1000)))
                elif skipped is not None:
                    ext = extension_of(key)
                    skipped[ext] = skipped.get(ext, 0) + 1
    except (ClientError, BotoCoreError) as exc:
        raise explain(exc, f"listing {uri}") from exc
    return found


def prefix_is_empty(s3: Any, uri: str) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    loc = S3Uri.parse(uri)
    try:
        page = s3.list_objects_v2(Bucket=loc.bucket, Prefix=loc.prefix, MaxKeys=1)
    except (ClientError, BotoCoreError) as exc:
        raise explain(exc, f"checking {uri}") from exc
    return page.get("KeyCount", 0) == 0


#: The object the write probe puts and deletes under an output prefix before any work.
WRITE_PROBE = "_featurize_write_probe"


def probe_write(s3: Any, uri: str, extra_args: dict[str, str] | None = None) -> None:
    """Put and delete one empty object under the output prefix, so that a write the
    credentials may not do fails now (exit 2, nothing done) rather than after the run.

    ``extra_args`` (the run's encryption) go on the probe too: a bucket policy that
    refuses unencrypted puts, or a KMS key the caller may not use, fails here."""
    from botocore.exceptions import BotoCoreError, ClientError

    loc = S3Uri.parse(uri)
    key = f"{loc.prefix.rstrip('/')}/{WRITE_PROBE}"
    try:
        s3.put_object(Bucket=loc.bucket, Key=key, Body=b"", **(extra_args or {}))
        s3.delete_object(Bucket=loc.bucket, Key=key)
    except (ClientError, BotoCoreError) as exc:
        raise explain(exc, f"writing under {uri} (a probe before the run)") from exc


def delete_prefix(s3: Any, uri: str) -> int:
    """Delete every object under a prefix; returns how many."""
    from botocore.exceptions import BotoCoreError, ClientError

    loc = S3Uri.parse(uri)
    n = 0
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket,
                                                                 Prefix=loc.prefix):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                done = s3.delete_objects(Bucket=loc.bucket,
                                         Delete={"Objects": keys, "Quiet": True})
                if done.get("Errors"):
                    first = done["Errors"][0]
                    raise S3WriteError(f"deleting {uri}: {len(done['Errors'])} objects could not be "
                                  f"deleted (first: {first.get('Key')}: {first.get('Code')})")
                n += len(keys)
    except (ClientError, BotoCoreError) as exc:
        raise explain(exc, f"deleting {uri}", S3WriteError) from exc
    return n


def delete_key(s3: Any, uri: str) -> None:
    """Delete one object (no error when it does not exist)."""
    from botocore.exceptions import BotoCoreError, ClientError

    loc = S3Uri.parse(uri)
    try:
        s3.delete_object(Bucket=loc.bucket, Key=loc.key)
    except (ClientError, BotoCoreError) as exc:
        raise explain(exc, f"deleting {uri}", S3WriteError) from exc


#: Whole-file attempts of an upload, on top of botocore's own retries of each call, and
#: the first pause between them (doubled each time): 2 + 4 + 8 s by default.
#: FEATURIZE_UPLOAD_ATTEMPTS and FEATURIZE_UPLOAD_BACKOFF_SECONDS override them.
UPLOAD_ATTEMPTS = 4
UPLOAD_BACKOFF_SECONDS = 2.0


def _upload_file(s3: Any, path: str, bucket: str, key: str,
                 extra_args: dict[str, str] | None) -> None:
    """One file, retried whole with exponential backoff; the last error propagates."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    attempts = max(int(os.environ.get("FEATURIZE_UPLOAD_ATTEMPTS", UPLOAD_ATTEMPTS)), 1)
    pause = float(os.environ.get("FEATURIZE_UPLOAD_BACKOFF_SECONDS", UPLOAD_BACKOFF_SECONDS))
    for attempt in range(1, attempts + 1):
        try:
            s3.upload_file(path, bucket, key, ExtraArgs=extra_args or None)
            return
        except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
            if attempt == attempts:
                raise
            logger.warning("upload of s3://%s/%s failed (attempt %d of %d: %s); again in "
                           "%.1f s", bucket, key, attempt, attempts, explain_aws(exc), pause)
            time.sleep(pause)
            pause *= 2


def upload_tree(s3: Any, local_dir: str, uri: str, last: str = MANIFEST,
                extra_args: dict[str, str] | None = None) -> int:
    """Make the S3 prefix hold exactly a local folder, ``last`` written after everything.

    Each file is retried whole (:func:`_upload_file`). Objects under the prefix that the
    folder does not hold (a partial upload of an earlier attempt, old part files) are
    deleted before ``last`` is written, and ``last`` is first deleted, so the prefix never
    looks finished while it is not. Hadoop's ``.crc`` side files are skipped;
    ``extra_args`` (e.g. the run's encryption) go on every object. Returns the number of
    objects written.
    """
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    loc = S3Uri.parse(uri)
    files = []
    for dirpath, _, names in os.walk(local_dir):
        for name in names:
            if name.endswith(".crc"):
                continue
            files.append(os.path.join(dirpath, name))
    keys = {p: loc.prefix + os.path.relpath(p, local_dir).replace(os.sep, "/")
            for p in sorted(files)}
    last_key = loc.prefix + last
    try:
        s3.delete_object(Bucket=loc.bucket, Key=last_key)
        for path, key in keys.items():
            if key != last_key:
                _upload_file(s3, path, loc.bucket, key, extra_args)
        orphans = [k for k in list_keys(s3, uri) if k not in set(keys.values())]
        for start in range(0, len(orphans), 1000):
            s3.delete_objects(Bucket=loc.bucket, Delete={"Objects": [
                {"Key": k} for k in orphans[start:start + 1000]], "Quiet": True})
        if orphans:
            logger.info("deleted %d objects under %s that the run does not hold",
                        len(orphans), uri)
        for path, key in keys.items():
            if key == last_key:
                _upload_file(s3, path, loc.bucket, key, extra_args)
    except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
        raise explain(exc, f"uploading to {uri}", S3WriteError) from exc
    return len(files)


def list_keys(s3: Any, uri: str) -> list[str]:
    """Every key under a prefix."""
    loc = S3Uri.parse(uri)
    return [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=loc.bucket, Prefix=loc.prefix) for o in page.get("Contents", [])]


def download(s3: Any, uri: str, dest: str) -> str:
    """Download one object to a local path."""
    from botocore.exceptions import BotoCoreError, ClientError

    loc = S3Uri.parse(uri)
    try:
        s3.download_file(loc.bucket, loc.key, dest)
    except (ClientError, BotoCoreError) as exc:
        raise explain(exc, f"downloading {uri}") from exc
    return dest


def read_bytes(s3: Any, uri: str) -> bytes:
    """A small object's bytes."""
    from botocore.exceptions import BotoCoreError, ClientError

    loc = S3Uri.parse(uri)
    try:
        return s3.get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read()
    except (ClientError, BotoCoreError) as exc:
        raise explain(exc, f"reading {uri}") from exc


def read_text(s3: Any, uri: str) -> str:
    """A small UTF-8 object's text."""
    return read_bytes(s3, uri).decode("utf-8")


