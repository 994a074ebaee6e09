"""The champion rule and the registry: register a trial's model, move ``champion``/``challenger``.

Rule (applied everywhere): a model beats another when its composite test objective,
``age_mae + 20 * (1 - gender_accuracy)`` (see ``mtl.metrics.composite_objective``), is lower on
the *same* test split (equal ``test_split_key`` tags). Models scored on different splits are not
compared; the new one becomes ``challenger``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import mlflow
from mlflow.exceptions import MlflowException

from mtl.metrics import composite_objective

CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass
class Decision:
    version: str
    alias: str
    reason: str


def _run_score(client: mlflow.MlflowClient, run_id: str) -> tuple[float, str]:
    run = client.get_run(run_id)
    m = run.data.metrics
    if "test_age_mae" not in m or "test_gender_accuracy" not in m:
        raise ValueError(f"run {run_id} has no test metrics")
    return composite_objective(m["test_age_mae"], m["test_gender_accuracy"]), run.data.tags.get("test_split_key", "")


def decide(client: mlflow.MlflowClient, name: str, version: str) -> Decision:
    """Compare ``version`` with the current champion under the documented rule."""
    candidate = client.get_model_version(name, version)
    score, split = _run_score(client, candidate.run_id)
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return Decision(version, CHAMPION, f"no champion yet; v{version} test objective {score:.3f}")
    if champion.version == str(version):
        return Decision(version, CHAMPION, f"v{version} is already the champion")
    champ_score, champ_split = _run_score(client, champion.run_id)
    if champ_split != split:
        return Decision(version, CHALLENGER, f"v{version} was tested on another split ({split}) than champion "
                                             f"v{champion.version} ({champ_split}); not comparable")
    if score < champ_score:
        return Decision(version, CHAMPION, f"v{version} test objective {score:.3f} < champion v{champion.version} "
                                           f"{champ_score:.3f} on the same test split")
    return Decision(version, CHALLENGER, f"v{version} test objective {score:.3f} >= champion v{champion.version} "
                                         f"{champ_score:.3f} on the same test split")


def register_and_promote(run_id: str, *, name: str, tags: dict[str, str] | None = None,
                         client: mlflow.MlflowClient | None = None) -> Decision:
    """Register ``runs:/run_id/model`` as a new version of ``name`` and apply the champion rule."""
    client = client or mlflow.MlflowClient()
    version = mlflow.register_model(f"runs:/{run_id}/model", name, tags=tags).version
    return promote(client, name, version)


def promote(client: mlflow.MlflowClient, name: str, version: str) -> Decision:
    """Apply the champion rule to ``version``: move the alias it earns and record why on the version."""
    decision = decide(client, name, version)
    client.set_registered_model_alias(name, decision.alias, decision.version)
    client.set_model_version_tag(name, decision.version, "promotion_reason", decision.reason)
    return decision


def main(argv: list[str] | None = None) -> Decision:
    parser = argparse.ArgumentParser(prog="python -m tuning.promote", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="utkface-mtl")
    parser.add_argument("--version", required=True)
    args = parser.parse_args(argv)
    decision = promote(mlflow.MlflowClient(), args.name, args.version)
    print(f"{args.name} v{decision.version} -> @{decision.alias}: {decision.reason}")
    return decision
