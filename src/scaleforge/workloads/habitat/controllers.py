"""Baseline controllers: random, constant and a tuned rule-based/PID controller.

Every controller maps observations to actions, for one habitat
(``obs.shape == (11,)``) or a batch (``(N, 11)``, e.g. from
:class:`~scaleforge.workloads.habitat.vector.VectorHabitat`), and has
``reset(seed=None)`` to clear its state at the start of an episode.

The PID controller
------------------
Three PI loops with feed-forward plus one rule, read from the observation only:

- O₂: electrolysis duty = crew need (feed-forward, 0.47 of capacity for four
  crew) + 0.5/kPa x (21.3 - ppO₂) + 0.02/kPa·h x ∫error;
- CO₂: scrubber duty = 0.6 + 2.5/kPa x (ppCO₂ - 0.25) + 0.05/kPa·h x ∫error;
- temperature: heater duty = 0.35 + 0.4/K x (20.5 - T) + 0.02/K·h x ∫error;
- load shedding: in the dark, shed the non-critical loads in proportion as the
  state of charge falls from 0.85 to 0.65 (all shed below 0.65); in sunlight
  only below 0.3. Night starts with a full battery in the nominal scenario, so
  the early shedding keeps the habitat powered through the 354 h night.

Integrators are clamped (anti-windup) to ±5 units. Feed-forward terms are the
duties that balance the nominal loads (crew O₂ need over electrolyser
capacity; the scrubber duty that holds 0.25 kPa against four crew's CO₂; the
heater duty of a lunar-day average); gains and the shedding band were tuned by
hand on seeded nominal and dust-storm episodes and checked on 50 nominal seeds
(100 % survival, no hour out of limits; ``benchmarks/bench_habitat.py``). The
set points sit inside the limits with margin for the daily activity swing.
Results per failure scenario are documented in :mod:`.scenarios`.
"""

from __future__ import annotations

import abc
import hashlib
import json
from typing import Any

import numpy as np
import numpy.typing as npt

from scaleforge._validation import check_number
from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.habitat.physics import HabitatConfig, coefficients

__all__ = ["ConstantController", "Controller", "PIDController", "RandomController", "decode_observation"]

FloatArray = npt.NDArray[np.float64]


def decode_observation(obs: npt.ArrayLike, config: HabitatConfig | None = None) -> dict[str, FloatArray]:
    """Raw physical values from (batched) normalised observations.

    Parameters
    ----------
    obs : array-like of shape (11,) or (N, 11)
        Observations of :class:`~scaleforge.workloads.habitat.env.LunarHabitatEnv`.
    config : HabitatConfig, optional
        The env's configuration (for the ppCO₂ scale and battery size).

    Returns
    -------
    dict of str to ndarray
        ``ppo2_kpa``, ``ppco2_kpa``, ``pressure_kpa``, ``temperature_c``, ``soc``, ``solar``.
    """
    cfg = config or HabitatConfig()
    o = np.asarray(obs, dtype=np.float64)
    return {
        "ppo2_kpa": o[..., 0] * 2.0 + 21.3,
        "ppco2_kpa": (o[..., 1] + 1.0) * cfg.ppco2_max_kpa,
        "pressure_kpa": o[..., 2] * 5.0 + 100.5,
        "temperature_c": o[..., 3] * 5.0 + 22.5,
        "soc": (o[..., 4] + 1.0) / 2.0,
        "solar": o[..., 7],
    }


class Controller(abc.ABC):
    """A policy for the habitat: observations in, actions in [0, 1]⁴ out."""

    name = "controller"

    def reset(self, seed: int | None = None) -> None:  # noqa: B027 - optional hook, default: stateless
        """Clear per-episode state (integrators, random streams). Default: nothing to clear.

        Parameters
        ----------
        seed : int, optional
            Seed for stochastic controllers.
        """

    @abc.abstractmethod
    def act(self, obs: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
        """Return the action(s) for ``obs`` of shape (11,) or (N, 11)."""

    @abc.abstractmethod
    def get_params(self) -> dict[str, Any]:
        """The parameters that define the controller (JSON-serialisable)."""

    def __call__(self, obs: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
        return self.act(obs)

    def checksum(self) -> str:
        """A content checksum of the controller: class name and parameters.

        Returns
        -------
        str
            Hex BLAKE2b digest; part of the evaluation cache key.
        """
        text = json.dumps({"class": type(self).__name__, "params": self.get_params()}, sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


class RandomController(Controller):
    """Uniformly random duties: the lower reference of the normalised score.

    Parameters
    ----------
    seed : int, default=0
        Seed of its own generator (re-seeded by ``reset(seed)``).
    """

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        check_number(seed, "seed", "RandomController", minimum=0, integer=True)
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        """Re-seed the generator (with ``seed`` if given, else the constructor's)."""
        self._rng = np.random.default_rng(self.seed if seed is None else seed)

    def act(self, obs: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
        """Uniform random action(s) shaped like the batch of ``obs``."""
        shape = (4,) if np.ndim(obs) == 1 else (np.shape(obs)[0], 4)
        return self._rng.random(shape, dtype=np.float32)

    def get_params(self) -> dict[str, Any]:
        """``{"seed": ...}``."""
        return {"seed": self.seed}


class ConstantController(Controller):
    """The same duties every hour (open loop).

    Parameters
    ----------
    action : sequence of 4 floats, default=(0.47, 0.6, 0.35, 0.0)
        Electrolysis, scrubber, heater and shedding duties in [0, 1].

    Raises
    ------
    InvalidParameterError
        For a wrong length or a value outside [0, 1].
    """

    name = "constant"

    def __init__(
        self, action: tuple[float, float, float, float] | list[float] = (0.47, 0.6, 0.35, 0.0)
    ) -> None:
        arr = np.asarray(action, dtype=np.float64)
        if arr.shape != (4,) or not np.all((arr >= 0.0) & (arr <= 1.0)):
            raise InvalidParameterError(
                f"The 'action' parameter of ConstantController must be 4 numbers in [0, 1]. Got {action!r} instead."
            )
        self.action = tuple(float(x) for x in arr)
        self._action = arr.astype(np.float32)

    def act(self, obs: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
        """The constant action (tiled over a batch)."""
        if np.ndim(obs) == 1:
            return self._action.copy()
        return np.tile(self._action, (np.shape(obs)[0], 1))

    def get_params(self) -> dict[str, Any]:
        """``{"action": [...]}``."""
        return {"action": list(self.action)}


class PIDController(Controller):
    """Rule-based/PID life-support controller (see the module docstring for the design).

    Parameters
    ----------
    config : HabitatConfig, optional
        The env's configuration: the O₂ feed-forward follows its crew size and
        electrolyser capacity.
    o2_setpoint_kpa : float, default=21.3
    co2_setpoint_kpa : float, default=0.25
    temp_setpoint_c : float, default=20.5
    shed_soc_night : tuple of float, default=(0.85, 0.65)
        State of charge where night-time shedding starts and where it is complete.
    shed_soc_day : float, default=0.3
        Daytime shedding threshold.
    gains : dict, optional
        Overrides of ``{"o2_kp", "o2_ki", "co2_ff", "co2_kp", "co2_ki", "t_ff", "t_kp", "t_ki"}``.

    Raises
    ------
    InvalidParameterError
        For an unknown gain or a setpoint out of range.
    """

    name = "pid"
    DEFAULT_GAINS: dict[str, float] = {  # noqa: RUF012 - read-only defaults
        "o2_kp": 0.5,
        "o2_ki": 0.02,
        "co2_ff": 0.6,
        "co2_kp": 2.5,
        "co2_ki": 0.05,
        "t_ff": 0.35,
        "t_kp": 0.4,
        "t_ki": 0.02,
    }
    WINDUP = 5.0

    def __init__(
        self,
        config: HabitatConfig | None = None,
        *,
        o2_setpoint_kpa: float = 21.3,
        co2_setpoint_kpa: float = 0.25,
        temp_setpoint_c: float = 20.5,
        shed_soc_night: tuple[float, float] = (0.85, 0.65),
        shed_soc_day: float = 0.3,
        gains: dict[str, float] | None = None,
    ) -> None:
        owner = "PIDController"
        self.config = config or HabitatConfig()
        check_number(o2_setpoint_kpa, "o2_setpoint_kpa", owner, minimum=10.0, maximum=40.0)
        check_number(co2_setpoint_kpa, "co2_setpoint_kpa", owner, minimum=0.0, maximum=5.0)
        check_number(temp_setpoint_c, "temp_setpoint_c", owner, minimum=0.0, maximum=40.0)
        check_number(shed_soc_day, "shed_soc_day", owner, minimum=0.0, maximum=1.0)
        if len(shed_soc_night) != 2 or not 0.0 <= shed_soc_night[1] < shed_soc_night[0] <= 1.0:
            raise InvalidParameterError(
                f"The 'shed_soc_night' parameter of PIDController must be (start, full) with "
                f"0 <= full < start <= 1. Got {shed_soc_night!r} instead."
            )
        unknown = sorted(set(gains or {}) - set(self.DEFAULT_GAINS))
        if unknown:
            raise InvalidParameterError(
                f"Unknown gain(s) {unknown} for PIDController; known: {sorted(self.DEFAULT_GAINS)}."
            )
        self.o2_setpoint_kpa = float(o2_setpoint_kpa)
        self.co2_setpoint_kpa = float(co2_setpoint_kpa)
        self.temp_setpoint_c = float(temp_setpoint_c)
        self.shed_soc_night = (float(shed_soc_night[0]), float(shed_soc_night[1]))
        self.shed_soc_day = float(shed_soc_day)
        self.gains = {**self.DEFAULT_GAINS, **(gains or {})}
        co = coefficients(self.config)
        self._o2_ff = co.o2_use_mol_h / co.el_max_mol_h
        self._integ: FloatArray | None = None

    def reset(self, seed: int | None = None) -> None:
        """Clear the integrators."""
        self._integ = None

    def act(self, obs: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
        """PI duties and the shedding rule for ``obs`` of shape (11,) or (N, 11)."""
        raw = decode_observation(obs, self.config)
        g = self.gains
        e_o2 = self.o2_setpoint_kpa - raw["ppo2_kpa"]
        e_co2 = raw["ppco2_kpa"] - self.co2_setpoint_kpa
        e_t = self.temp_setpoint_c - raw["temperature_c"]
        err = np.stack([e_o2, e_co2, e_t], axis=-1)
        if self._integ is None or self._integ.shape != err.shape:
            self._integ = np.zeros_like(err)
        self._integ = np.clip(self._integ + err, -self.WINDUP, self.WINDUP)
        i = self._integ
        u_el = self._o2_ff + g["o2_kp"] * e_o2 + g["o2_ki"] * i[..., 0]
        u_sc = g["co2_ff"] + g["co2_kp"] * e_co2 + g["co2_ki"] * i[..., 1]
        u_ht = g["t_ff"] + g["t_kp"] * e_t + g["t_ki"] * i[..., 2]
        start, full = self.shed_soc_night
        soc = raw["soc"]
        night = (start - soc) / (start - full)
        day = (self.shed_soc_day - soc) / 0.1
        shed = np.where(raw["solar"] < 0.2, night, day)
        out = np.stack([u_el, u_sc, u_ht, shed], axis=-1)
        action: npt.NDArray[np.float32] = np.clip(out, 0.0, 1.0).astype(np.float32)
        return action

    def get_params(self) -> dict[str, Any]:
        """Set points, shedding thresholds, gains and the config's crew/capacity."""
        return {
            "o2_setpoint_kpa": self.o2_setpoint_kpa,
            "co2_setpoint_kpa": self.co2_setpoint_kpa,
            "temp_setpoint_c": self.temp_setpoint_c,
            "shed_soc_night": list(self.shed_soc_night),
            "shed_soc_day": self.shed_soc_day,
            "gains": dict(sorted(self.gains.items())),
            "o2_feedforward": self._o2_ff,
        }
