"""stable-baselines3 PPO smoke training (CPU, a few thousand steps), checkpoints and resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.habitat.controllers import RandomController
from scaleforge.workloads.habitat.evaluate import SB3Policy, evaluate, run_episode
from scaleforge.workloads.habitat.rl import latest_checkpoint, train


def test_ppo_smoke_run_improves_over_random_and_resumes(tmp_path: Path) -> None:
    small = {"n_steps": 256, "batch_size": 128, "n_epochs": 4}
    result = train(
        "ppo",
        1024,
        scenario="nominal,dust_storm",  # a scenario mix: env 0 nominal, env 1 dust storm
        output_dir=tmp_path,
        n_envs=2,
        hyperparams=small,
        checkpoint_every=512,
        eval_every=512,
        eval_episodes=1,
    )
    assert result.model_path.is_file() and result.total_steps >= 1024
    assert result.resumed_from is None and len(result.curve) >= 2
    assert result.best_path is not None and result.best_path.is_file()
    assert latest_checkpoint(tmp_path / "checkpoints", "ppo") is not None
    policy = SB3Policy(result.model_path)
    seeds = [100, 101]
    ppo = np.mean([run_episode(policy, s, "nominal").episode_return for s in seeds])
    rand = np.mean([run_episode(RandomController(), s, "nominal").episode_return for s in seeds])
    assert ppo > rand
    # resume: continue from the latest checkpoint to 1536 steps
    more = train(
        "ppo", 1536, output_dir=tmp_path, n_envs=2, hyperparams=small, checkpoint_every=512, eval_every=0
    )
    assert more.resumed_from is not None and more.total_steps >= 1536
    # a trained model is a policy for evaluate(), cached by its file's content
    report = evaluate(more.model_path, [0], "nominal", executor="threads", cache=False)
    assert report.policy == "ppo_final" and report.scenarios["nominal"].n_episodes == 1


def test_train_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="'algo'"):
        train("dqn", 100, output_dir=tmp_path)
    with pytest.raises(InvalidParameterError, match="'scenario'"):
        train("ppo", 100, scenario="meteor", output_dir=tmp_path)
    with pytest.raises(InvalidParameterError, match="'steps'"):
        train("ppo", 0, output_dir=tmp_path)


def test_sac_trains_and_loads_as_a_policy(tmp_path: Path) -> None:
    result = train(
        "sac",
        200,
        output_dir=tmp_path,
        hyperparams={"learning_starts": 100, "batch_size": 32, "buffer_size": 1000},
        eval_every=0,
    )
    policy = SB3Policy(result.model_path)
    episode = run_episode(policy, 0, "nominal")
    assert episode.steps > 0
    obs = np.zeros(11, dtype=np.float32)
    action = policy.act(obs)
    assert action.shape == (4,) and action.dtype == np.float32
    assert ((action >= 0.0) & (action <= 1.0)).all()


def test_sweep_runs_one_training_per_configuration(tmp_path: Path) -> None:
    from scaleforge.workloads.habitat.rl import sweep

    configs = [{"n_steps": 256, "batch_size": 64, "n_epochs": 1, "learning_rate": lr} for lr in (1e-4, 1e-3)]
    results = sweep(configs, steps=1024, output_dir=tmp_path, eval_seeds=[0], executor="threads")
    assert [r.hyperparams["learning_rate"] for r in results] == [1e-4, 1e-3]
    assert all(Path(r.model_path).is_file() for r in results)
    assert len({r.model_path for r in results}) == 2
    with pytest.raises(InvalidParameterError, match="'configurations'"):
        sweep([], steps=10)
