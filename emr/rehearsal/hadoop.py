"""The client configuration a rehearsal's steps run with, written as EMR would have it.

* ``core-site.xml``: ``s3://`` served by Hadoop's S3A connector (EMR 7.10+ does the same:
  AWS's "Migration guide: EMRFS to S3A"), pointed at the moto server with path-style
  access and moto's dummy credentials, where EMR uses the instance profile.
* ``spark-defaults.conf`` and ``spark-env.sh``: the cluster's own ``spark-defaults`` and
  ``spark-env`` classifications from :func:`emr.requests.configurations`, the nodes'
  Python path swapped for the rehearsal's node venv, and Spark's classpath given the S3A
  jars (on EMR they are part of the cluster's Hadoop).
"""
from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from emr.settings import NODE_PYTHON

#: moto accepts any key pair; these are its documented test values, not secrets.
MOTO_ACCESS_KEY = "testing"
MOTO_SECRET_KEY = "testing"
MOTO_REGION = "us-east-1"


def s3a_properties(endpoint: str) -> dict[str, str]:
    """Hadoop properties that serve ``s3://`` and ``s3a://`` from ``endpoint`` via S3A."""
    return {
        "fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "fs.AbstractFileSystem.s3.impl": "org.apache.hadoop.fs.s3a.S3A",
        "fs.s3a.endpoint": endpoint,
        "fs.s3a.endpoint.region": MOTO_REGION,
        "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": str(endpoint.startswith("https:")).lower(),
        "fs.s3a.aws.credentials.provider":
            "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        "fs.s3a.access.key": MOTO_ACCESS_KEY,
        "fs.s3a.secret.key": MOTO_SECRET_KEY,
    }


def container_env(env: dict[str, str]) -> dict[str, str]:
    """Spark confs that give the driver's and the executors' containers the moto
    endpoint and credentials (boto3 there, e.g. for the weights). On EMR the instance
    profile provides credentials and there is no endpoint to set: the one difference in
    the steps' environment."""
    names = [k for k in env if k.startswith("AWS_")]
    return {f"{prefix}.{k}": env[k] for k in names
            for prefix in ("spark.yarn.appMasterEnv", "spark.executorEnv")}


def site_xml(properties: dict[str, str]) -> str:
    rows = "".join(f"  <property><name>{escape(k)}</name><value>{escape(v)}</value>"
                   f"</property>\n" for k, v in properties.items())
    return f'<?xml version="1.0"?>\n<configuration>\n{rows}</configuration>\n'


def _classification(configurations: Sequence[dict[str, Any]], name: str) -> dict[str, Any]:
    for c in configurations:
        if c["Classification"] == name:
            return c
    return {"Classification": name, "Properties": {}, "Configurations": []}


def _node_python(value: str, python: str) -> str:
    return value.replace(NODE_PYTHON, python)


def write_client_conf(conf_dir: Path, endpoint: str, configurations: Sequence[dict[str, Any]],
                      node_python: str, classpath: Sequence[Path],
                      extra_spark: dict[str, str] | None = None) -> None:
    """Write core-site.xml into ``conf_dir`` (beside YARN's yarn-site.xml) and
    spark-defaults.conf + spark-env.sh (``conf_dir`` serves as SPARK_CONF_DIR too)."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "core-site.xml").write_text(site_xml(s3a_properties(endpoint)))
    defaults = {k: _node_python(v, node_python) for k, v in
                _classification(configurations, "spark-defaults")["Properties"].items()}
    defaults.update(extra_spark or {})
    (conf_dir / "spark-defaults.conf").write_text(
        "".join(f"{k} {v}\n" for k, v in defaults.items()))
    exports = {}
    for sub in _classification(configurations, "spark-env").get("Configurations", []):
        if sub["Classification"] == "export":
            exports.update({k: _node_python(v, node_python)
                            for k, v in sub["Properties"].items()})
    exports["SPARK_DIST_CLASSPATH"] = ":".join(map(str, classpath))
    (conf_dir / "spark-env.sh").write_text(
        "".join(f"export {k}={shlex.quote(v)}\n" for k, v in exports.items()))
