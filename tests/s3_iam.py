"""AWS's own reading of an identity policy for S3 requests, for tests: moto enforces IAM but
ignores conditions such as ``s3:prefix``, so a policy it accepts may still be refused by S3.

:func:`authorizations` maps one recorded REST request (as ``tests.refusing_proxy`` records
it) to the IAM actions S3 authorizes it as, each with its resource ARN and, for listings,
its ``s3:prefix``; :func:`allowed` evaluates one such action against a policy document:
an Allow statement whose Action and Resource patterns match (``*`` and ``?`` wildcards,
actions case-insensitive) and whose every condition holds, where a condition on a key the
request does not carry fails, as IAM evaluates ``StringLike``/``StringEquals`` on a
missing key. No Deny statement is printed by the project, so none is weighed.

Sources: the Amazon S3 API Reference (each operation's "Permissions"), and the Service
Authorization Reference, "Actions, resources, and condition keys for Amazon S3"
(``s3:prefix`` is a condition key of ListBucket and ListBucketVersions only).
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit


@dataclass(frozen=True)
class Authorization:
    action: str
    resource: str
    context: dict[str, str] = field(default_factory=dict)


def authorizations(method: str, path: str, copy_source: str | None = None,
                   deleted: list[str] | None = None) -> list[Authorization]:
    """The IAM actions S3 checks for one path-style request ``METHOD /bucket[/key]?query``
    (``deleted``: the keys a DeleteObjects body names, each checked as s3:DeleteObject)."""
    parts = urlsplit(path)
    bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    bucket_arn, object_arn = f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/{key}"
    if not key:
        if method == "GET" and "uploads" in query:
            return [Authorization("s3:ListBucketMultipartUploads", bucket_arn)]
        if method == "GET" and "location" in query:
            return [Authorization("s3:GetBucketLocation", bucket_arn)]
        if method in ("GET", "HEAD") and not (set(query) - {
                "list-type", "prefix", "delimiter", "max-keys", "continuation-token",
                "start-after", "encoding-type", "marker", "fetch-owner"}):
            # ListObjects(V2) carries s3:prefix (empty when none is given); HeadBucket
            # needs s3:ListBucket and carries none
            context = {"s3:prefix": query.get("prefix", "")} if method == "GET" else {}
            return [Authorization("s3:ListBucket", bucket_arn, context)]
        if method == "POST" and "delete" in query:
            return [Authorization("s3:DeleteObject", f"{bucket_arn}/{k}") for k in deleted or []]
        raise ValueError(f"an S3 bucket request this mapping does not know: {method} {path}")
    if method in ("GET", "HEAD"):
        if "uploadId" in query:
            return [Authorization("s3:ListMultipartUploadParts", object_arn)]
        return [Authorization("s3:GetObject", object_arn)]
    if method in ("PUT", "POST"):  # put, multipart create/part/complete
        found = [Authorization("s3:PutObject", object_arn)]
        if copy_source:
            source = unquote(copy_source).lstrip("/").split("?")[0]
            found.append(Authorization("s3:GetObject", f"arn:aws:s3:::{source}"))
        return found
    if method == "DELETE":
        if "uploadId" in query:
            return [Authorization("s3:AbortMultipartUpload", object_arn)]
        return [Authorization("s3:DeleteObject", object_arn)]
    raise ValueError(f"an S3 object request this mapping does not know: {method} {path}")


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _condition_holds(condition: dict[str, Any], context: dict[str, str]) -> bool:
    for operator, tests in condition.items():
        for key, patterns in tests.items():
            if key not in context:
                return False
            value = context[key]
            if operator == "StringLike":
                ok = any(fnmatch.fnmatchcase(value, p) for p in _listed(patterns))
            elif operator == "StringEquals":
                ok = value in _listed(patterns)
            else:
                raise ValueError(f"condition operator {operator} is not evaluated here")
            if not ok:
                return False
    return True


def allowed(policy: dict[str, Any], auth: Authorization) -> bool:
    """Whether an Allow statement of ``policy`` grants ``auth``."""
    statements = policy["Statement"]
    for st in statements if isinstance(statements, list) else [statements]:
        if st.get("Effect") != "Allow":
            continue
        if not any(fnmatch.fnmatchcase(auth.action.lower(), a.lower())
                   for a in _listed(st.get("Action", []))):
            continue
        if not any(fnmatch.fnmatchcase(auth.resource, r) for r in _listed(st.get("Resource", []))):
            continue
        if _condition_holds(st.get("Condition", {}), auth.context):
            return True
    return False
