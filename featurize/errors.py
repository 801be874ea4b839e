"""Every exception the project raises on purpose, and what each one means for the exit
status; plus the one table of hints for AWS error codes (used by the jobs and by ``emr/``).

Two kinds, decided by base class only (``featurize.entry.submit`` and ``python -m emr``
map them to exit codes)::

    FeaturizeError
    ├── UsageError        exit 2: bad flags or settings, found before anything was written
    │   ├── ConfigError     a flag, path or run directory that cannot be used
    │   ├── WeightsError    --weights cannot be resolved
    │   ├── S3AccessError   an S3 location cannot be read or checked (before any work)
    │   └── SettingsError   python -m emr: a make variable to change
    └── RunFailure        exit 1: the run began and failed; its manifest says "failed"
        ├── JobError        the run's own checks failed (e.g. inputs changed mid-run)
        ├── ReducerError    PCA cannot be fitted on what was featurized
        ├── ClassifierError the classifier cannot be trained on the run
        ├── S3WriteError    writing, uploading or deleting on S3 failed
        │   └── UploadError   a staged run's upload failed: kept, and how to finish it
        └── CommandError    python -m emr: a command cannot go on

``python -m emr`` raises ``SettingsError`` (a UsageError: a make variable to change) and
``CommandError`` (a RunFailure: the command could not go on), with the same statuses.
Anything else (a Spark or Python failure) is a traceback and exit 1.
"""
from __future__ import annotations


class FeaturizeError(Exception):
    """Base of every error this project raises on purpose; the message says what to do."""

    exit_status = 1


class UsageError(FeaturizeError, ValueError):
    """Bad input from the user, found before anything was written: exit status 2."""

    exit_status = 2


class RunFailure(FeaturizeError, RuntimeError):
    """The run began and failed (a ``failed`` manifest is written): exit status 1."""

    exit_status = 1


class ConfigError(UsageError):
    """Bad configuration: raised before any Spark work, with what to change."""


class WeightsError(UsageError):
    """The weights spec cannot be resolved; the message says what to do."""


class JobError(RunFailure):
    """The job stopped; the message says why and what to do."""


class ReducerError(RunFailure):
    """StandardScaler + PCA cannot be fitted on the featurized rows."""


class ClassifierError(RunFailure):
    """The classifier cannot be trained or evaluated on the run."""


class SettingsError(UsageError):
    """``python -m emr``: a setting is missing or wrong; the message names the make
    variable to change."""


class CommandError(RunFailure):
    """``python -m emr``: a command cannot go on (e.g. no cluster, artifacts missing)."""


class S3Error(FeaturizeError):
    """An S3 call failed; the message says what to do. Raised as one of the two below."""


class S3AccessError(S3Error, ConfigError):
    """An S3 location cannot be listed, checked or read before the run: exit status 2."""


class S3WriteError(S3Error, RunFailure):
    """Writing, uploading or deleting on S3 failed after the run began: exit status 1."""


class UploadError(S3WriteError):
    """A staged run could not be uploaded after every retry; it is kept, and the message
    gives its folder and the command that finishes the upload."""


#: What to do about an AWS error code, whichever service and tool met it.
AWS_HINTS: dict[str, str] = {}
for _codes, _hint in [
    (("NoSuchBucket",),
     "the bucket does not exist (or is in another account): check the bucket name, or "
     "create it (aws s3 mb s3://BUCKET)"),
    (("NoSuchKey", "404", "NotFound"), "not found: check the bucket and key"),
    (("AccessDenied", "403", "AllAccessDisabled", "AccountProblem"),
     "access denied: the credentials in use need this permission (s3:ListBucket and "
     "s3:GetObject to read, s3:PutObject and s3:DeleteObject to write)"),
    (("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
      "TokenRefreshRequired", "UnrecognizedClientException", "ExpiredTokenException"),
     "the AWS credentials were rejected: refresh or fix them"),
    (("ValidationException",), "EMR rejected the request: check the variables it names"),
    (("InvalidRequestException",),
     "EMR rejected the request (wrong or finished CLUSTER_ID?)"),
    (("ThrottlingException", "Throttling", "SlowDown", "RequestLimitExceeded"),
     "throttled by AWS: retry in a minute"),
]:
    AWS_HINTS.update(dict.fromkeys(_codes, _hint))


def explain_aws(exc: BaseException) -> str:
    """One line for an AWS failure: what happened and, where known, what to change.

    Examples
    --------
    >>> from botocore.exceptions import ClientError
    >>> explain_aws(ClientError({"Error": {"Code": "NoSuchBucket", "Message": "x"}},
    ...                         "ListObjectsV2"))  # doctest: +ELLIPSIS
    'ListObjectsV2 failed: NoSuchBucket: x (the bucket does not exist ...)'
    """
    from botocore.exceptions import (
        BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError,
        NoRegionError,
    )

    if not isinstance(exc, (ClientError, BotoCoreError)) and isinstance(
            exc.__context__, (ClientError, BotoCoreError)):
        # boto3's managed transfers wrap the call's error (S3UploadFailedError)
        return explain_aws(exc.__context__)

    if isinstance(exc, NoRegionError):
        return ("no AWS region: give REGION=us-east-1 (or --region), or set "
                "AWS_DEFAULT_REGION / a region in your AWS profile")
    if isinstance(exc, NoCredentialsError):
        return ("no AWS credentials found: configure them the usual way (aws configure, "
                "AWS_PROFILE, AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY, SSO, or an "
                "instance role)")
    if isinstance(exc, EndpointConnectionError):
        return (f"cannot reach the AWS endpoint ({exc}): check AWS_ENDPOINT_URL, the "
                f"region and the network")
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code, message = err.get("Code", ""), err.get("Message", "")
        hint = AWS_HINTS.get(code)
        return (f"{exc.operation_name} failed: {code}: {message}"
                + (f" ({hint})" if hint else ""))
    if isinstance(exc, BotoCoreError):
        return f"AWS call failed: {exc}"
    return str(exc)
