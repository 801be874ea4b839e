"""Run the featurize jobs on Amazon EMR: package, upload, cluster, steps, logs, teardown.

``emr.settings`` validates what the user asked for (before any AWS call);
``emr.requests`` builds the boto3 request dicts (pure functions, printed by
``--dry-run``); ``emr.aws`` holds one small function per AWS call, client passed in;
``emr.package`` builds ``dist/``; ``emr.cli`` is ``python -m emr``, which the Makefile
calls. AWS access goes only through boto3's own configuration (credential chain,
``AWS_PROFILE``/``--profile``, region, ``AWS_ENDPOINT_URL*``).
"""
