"""Peers a user would pick instead of the job, each run in its own virtualenv by
:mod:`bench.peer` (pins in ``bench/peers/*-requirements.txt``). They import nothing from
the project: each is what that tool's documentation leads a user to write."""
