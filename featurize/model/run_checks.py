"""What a trained run must agree on before its models answer: the weights that reproduce
its features, its preprocessing, and a classifier that fits its PCA model. Shared by the
predict job and by ``predict_one``/``serve``; no Spark here, so a single photo's start-up
does not import it.
"""
from __future__ import annotations

from typing import Any

from featurize.errors import ConfigError
from featurize.model.preprocess import Preprocessing
from featurize.model.weights import ResolvedWeights


def run_weights_spec(manifest: dict[str, Any]) -> str:
    """The ``--weights`` that reproduces a run's weights: the recorded absolute path (or
    s3:// URI), not the spec as typed, so that a relative path still resolves from
    another folder."""
    w = manifest["weights"]
    return w["path"] if w["source"] == "file" and w.get("path") else w["spec"]


def run_preprocessing(manifest: dict[str, Any]) -> Preprocessing:
    """The preprocessing a run was featurized with, as this code would apply it.

    Raises
    ------
    ConfigError
        The run recorded a preprocessing this code cannot reproduce: another version's
        name, or an unknown mode or size.
    """
    section = manifest.get("preprocessing") or {}
    try:
        pre = Preprocessing.from_manifest(section)
    except ValueError as exc:
        raise ConfigError(f"the run's preprocessing {section!r}: {exc}") from exc
    if section.get("name") != pre.name:
        raise ConfigError(
            f"the run was featurized with preprocessing {section.get('name')!r}, this code "
            f"does {pre.name!r} for {pre.mode} at {pre.size}: features would not be "
            f"comparable. Re-featurize the training images with this version, then retrain.")
    return pre


def check_compatible(
    manifest: dict[str, Any], metrics: dict[str, Any], pca_model_id: str,
    weights: ResolvedWeights,
) -> None:
    """Refuse to mix a run's models with features made differently; ``pca_model_id`` is
    the fingerprint of the PCA model predict would use (``models/pca``, or the one in
    ``models/classifier.npz``).

    Raises
    ------
    ConfigError
        The classifier was trained on another PCA model, or the preprocessing or weights
        now differ from those the run was featurized with.
    """
    run_preprocessing(manifest)
    check_weights(manifest, weights)
    check_classifier(metrics, pca_model_id)


def check_weights(manifest: dict[str, Any], weights: ResolvedWeights) -> None:
    """The weights resolve to the arrays the run was featurized with.

    Raises
    ------
    ConfigError
    """
    recorded = manifest["weights"]
    if weights.to_manifest()["arrays_sha256"] != recorded.get("arrays_sha256"):
        raise ConfigError(
            f"the weights resolved from {recorded['spec']!r} differ from those the run "
            f"used (sha256 {recorded.get('sha256')}); point KERAS_HOME / the weights path "
            f"at the same file, or re-featurize and retrain.")


def check_classifier(metrics: dict[str, Any], pca_model_id: str) -> None:
    """The part of :func:`check_compatible` about the classifier: it is not
    stale and was trained on this PCA model (``predict_one`` checks it before it prepares
    an engine, which may mean a TensorFlow conversion).

    Raises
    ------
    ConfigError
    """
    if metrics.get("stale"):
        raise ConfigError(
            f"the classifier is stale: {metrics['stale'].get('reason', '')} "
            f"(make train RUN=<run>).")
    if metrics.get("pca_model_id") != pca_model_id:
        raise ConfigError(
            "the classifier in models/classifier was trained on a different PCA model "
            "than the one in models/pca (the run was re-featurized after training); "
            "retrain it: make train RUN=<run>.")
