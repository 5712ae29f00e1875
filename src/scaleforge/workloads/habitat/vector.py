"""N habitats stepped as numpy arrays in one call, and its Gymnasium ``VectorEnv`` wrapper.

:class:`VectorHabitat` implements exactly the arithmetic of
:meth:`LunarHabitatEnv.step <scaleforge.workloads.habitat.env.LunarHabitatEnv.step>`
on arrays of shape (N,): the same operations in the same order, branches as
``np.where``, the same per-hour tables, and the same per-episode draws (habitat
``i`` reset with seed ``s`` draws from ``gymnasium.utils.seeding.np_random(s)``
like the single env). Trajectories therefore agree bit for bit with N single
envs (tested). :class:`HabitatVectorEnv` adds Gymnasium's vector API with
next-step autoreset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np
import numpy.typing as npt
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode

from scaleforge._validation import check_number
from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.habitat.env import (
    COLD_C,
    ELECTROLYSIS_HEAT_FRACTION,
    HOT_C,
    HYPERCAPNIA_KPA,
    HYPERCAPNIA_RATE,
    HYPOXIA_KPA,
    HYPOXIA_RATE,
    KELVIN,
    OBS_CLIP,
    RECOVERY_RATE,
    THERMAL_RATE,
    WATER_REF_KG,
)
from scaleforge.workloads.habitat.physics import (
    GAS_CONSTANT,
    HOURS_PER_LUNAR_DAY,
    HabitatConfig,
    activity_profile,
    coefficients,
    site_tables,
)
from scaleforge.workloads.habitat.scenarios import SCENARIOS, EpisodeDraw, draw_episode

__all__ = ["HabitatVectorEnv", "VectorHabitat"]

F64 = npt.NDArray[np.float64]
_DRAW_FIELDS = (
    "start_hour",
    "storm_start",
    "storm_end",
    "storm_factor",
    "post_storm_factor",
    "scrub_fail_hour",
    "scrub_capacity",
    "leak_start",
    "leak_rate_h",
)


def _excess(x: F64) -> F64:
    return np.minimum(x, 1.0)


class VectorHabitat:
    """N independent habitats advanced together (numpy, one core).

    Parameters
    ----------
    num_envs : int
        Number of habitats (>= 1).
    config : HabitatConfig, optional
        Shared habitat design.
    **overrides
        Individual :class:`HabitatConfig` fields.

    Raises
    ------
    InvalidParameterError
        For a bad ``num_envs`` or configuration.

    Examples
    --------
    >>> import numpy as np
    >>> vec = VectorHabitat(3)
    >>> obs, info = vec.reset(seeds=[0, 1, 2], scenarios="dust_storm")
    >>> obs.shape
    (3, 11)
    >>> obs, reward, terminated, truncated, info = vec.step(np.full((3, 4), 0.5))
    >>> reward.shape
    (3,)
    """

    def __init__(self, num_envs: int, config: HabitatConfig | None = None, **overrides: Any) -> None:
        check_number(num_envs, "num_envs", "VectorHabitat", minimum=1, integer=True)
        self.num_envs = num_envs
        self.config = HabitatConfig.from_kwargs(config, **overrides)
        cfg = self.config
        self._co = coefficients(cfg)
        tables = site_tables(cfg.site, cfg.env_day_c, cfg.env_night_c)
        self._solar = tables.solar_array
        self._env_c = tables.env_array
        self._sin = tables.sin_array
        self._cos = tables.cos_array
        self._activity = np.array(activity_profile(), dtype=np.float64)
        n = num_envs
        z = np.zeros(n, dtype=np.float64)
        self.t = np.zeros(n, dtype=np.int64)
        self.n_o2, self.n_co2, self.n_n2 = z.copy(), z.copy(), z.copy()
        self.temp, self.energy, self.water, self.health = z.copy(), z.copy(), z.copy(), z.copy()
        self.solar_frac = z.copy()
        self.ev: dict[str, F64] = {name: z.copy() for name in _DRAW_FIELDS}
        self.start_hour = np.zeros(n, dtype=np.int64)
        self.scenarios: list[str] = ["nominal"] * n
        self.done = np.ones(n, dtype=bool)

    # -- reset -----------------------------------------------------------------------------
    def reset(
        self,
        seeds: Sequence[int | None] | int | None = None,
        scenarios: str | Sequence[str] = "nominal",
        *,
        mask: npt.NDArray[np.bool_] | None = None,
        rngs: Sequence[np.random.Generator] | None = None,
    ) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
        """Start new episodes in all habitats (or those in ``mask``).

        Parameters
        ----------
        seeds : int, sequence of int, or None
            An int ``s`` seeds habitat ``i`` with ``s + i``; a sequence gives one seed each.
        scenarios : str or sequence of str, default="nominal"
            One scenario for all, or one per habitat.
        mask : ndarray of bool, optional
            Reset only these habitats.
        rngs : sequence of numpy.random.Generator, optional
            Draw from these generators instead of seeding new ones (one per habitat).

        Returns
        -------
        observation : ndarray of shape (N, 11), float32
        info : dict
            ``{"scenario": list of str}``.

        Raises
        ------
        InvalidParameterError
            For a wrong number of seeds or scenarios, or an unknown scenario.
        """
        n = self.num_envs
        idx = np.arange(n) if mask is None else np.flatnonzero(mask)
        if isinstance(scenarios, str):
            scen = [scenarios] * n
        else:
            scen = list(scenarios)
            if len(scen) != n:
                raise InvalidParameterError(
                    f"The 'scenarios' parameter of VectorHabitat.reset needs one name per habitat ({n}). "
                    f"Got {len(scen)} instead."
                )
        for s in scen:
            if s not in SCENARIOS:
                raise InvalidParameterError(
                    f"The 'scenarios' parameter of VectorHabitat.reset must hold names from {SCENARIOS}. "
                    f"Got {s!r} instead."
                )
        if seeds is None or isinstance(seeds, (int, np.integer)):
            seed_list: list[int | None] = [None if seeds is None else int(seeds) + i for i in range(n)]
        else:
            seed_list = list(seeds)
            if len(seed_list) != n:
                raise InvalidParameterError(
                    f"The 'seeds' parameter of VectorHabitat.reset needs one seed per habitat ({n}). "
                    f"Got {len(seed_list)} instead."
                )
        draws: list[EpisodeDraw] = []
        for i in idx.tolist():
            rng = rngs[i] if rngs is not None else seeding.np_random(seed_list[i])[0]
            draws.append(draw_episode(rng, scen[i], self.config))
        self._start(idx, draws)
        return self.observation(), {"scenario": list(self.scenarios)}

    def _start(self, idx: npt.NDArray[np.intp], draws: list[EpisodeDraw]) -> None:
        cfg = self.config
        if not draws:
            return
        col = {name: np.array([getattr(d, name) for d in draws], dtype=np.float64) for name in _DRAW_FIELDS}
        for name in _DRAW_FIELDS:
            self.ev[name][idx] = col[name]
        self.start_hour[idx] = [d.start_hour for d in draws]
        temp = np.array([d.temp_c for d in draws])
        # the single env's moles_from_kpa, operation for operation
        denom = GAS_CONSTANT * (temp + KELVIN)
        self.n_o2[idx] = np.array([d.o2_kpa for d in draws]) * 1000.0 * cfg.volume_m3 / denom
        self.n_co2[idx] = np.array([d.co2_kpa for d in draws]) * 1000.0 * cfg.volume_m3 / denom
        self.n_n2[idx] = np.array([d.n2_kpa for d in draws]) * 1000.0 * cfg.volume_m3 / denom
        self.temp[idx] = temp
        self.energy[idx] = np.array([d.soc for d in draws]) * cfg.battery_kwh
        self.water[idx] = [d.water_kg for d in draws]
        self.health[idx] = 1.0
        self.t[idx] = 0
        self.solar_frac[idx] = self._solar_at(self.t)[idx]
        self.done[idx] = False
        for i, d in zip(idx, draws, strict=True):
            self.scenarios[i] = d.scenario

    def _solar_at(self, t: npt.NDArray[np.int64]) -> F64:
        ev = self.ev
        tf = t.astype(np.float64)
        dust = np.where(
            tf < ev["storm_start"],
            1.0,
            np.where(tf < ev["storm_end"], ev["storm_factor"], ev["post_storm_factor"]),
        )
        frac: F64 = self._solar[(self.start_hour + t) % HOURS_PER_LUNAR_DAY] * dust
        return frac

    # -- step --------------------------------------------------------------------------------
    def step(
        self, actions: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float32], F64, npt.NDArray[np.bool_], npt.NDArray[np.bool_], dict[str, Any]]:
        """Advance every habitat by one hour (finished habitats are advanced too; mask them yourself).

        Parameters
        ----------
        actions : array-like of shape (N, 4)
            Duties in [0, 1] per habitat.

        Returns
        -------
        observation : ndarray of shape (N, 11), float32
        reward : ndarray of shape (N,)
        terminated, truncated : ndarray of shape (N,), bool
        info : dict of str to ndarray
            The single env's ``info`` keys, as arrays.

        Raises
        ------
        InvalidParameterError
            For a wrong shape, NaN or values outside [0, 1].
        """
        a = np.asarray(actions, dtype=np.float64)
        if a.shape != (self.num_envs, 4):
            raise InvalidParameterError(
                f"The 'actions' parameter of VectorHabitat.step must have shape ({self.num_envs}, 4). "
                f"Got shape {a.shape} instead."
            )
        if not (a.min() >= 0.0 and a.max() <= 1.0):  # NaN fails both
            raise InvalidParameterError(
                "Every entry of the 'actions' parameter of VectorHabitat.step must be in [0, 1] (NaN is not "
                "allowed). Clip policy outputs with np.clip(actions, 0, 1)."
            )
        u_el, u_sc, u_ht, u_shed = a[:, 0], a[:, 1], a[:, 2], a[:, 3]
        cfg, co, ev = self.config, self._co, self.ev
        t = self.t
        tf = t.astype(np.float64)
        h = (self.start_hour + t) % HOURS_PER_LUNAR_DAY
        solar_kw = cfg.solar_peak_kw * self.solar_frac
        p_el = u_el * co.el_kw_max
        p_sc = u_sc * cfg.scrubber_max_kw
        p_ht = u_ht * cfg.heater_max_kw
        load = cfg.base_load_kw + p_el + p_sc + p_ht + cfg.noncritical_load_kw * (1.0 - u_shed)
        net = solar_kw - load
        energy = self.energy
        with np.errstate(divide="ignore", invalid="ignore"):
            charged = np.minimum(energy + cfg.charge_efficiency * net, cfg.battery_kwh)
            need = -net / cfg.discharge_efficiency
            short = (net < 0.0) & (need > energy)
            f = np.where(short, (energy * cfg.discharge_efficiency + solar_kw) / load, 1.0)
        energy = np.where(net >= 0.0, charged, np.where(short, 0.0, energy - need))
        used = load * f
        gen = u_el * f * co.el_max_mol_h
        water = self.water
        gen = np.where(gen * co.water_kg_per_mol > water, water / co.water_kg_per_mol, gen)
        water = water - gen * co.water_kg_per_mol
        act = self._activity[(self.start_hour + t) % 24]
        leak = np.where(tf >= ev["leak_start"], ev["leak_rate_h"], 0.0)
        capacity = np.where(tf >= ev["scrub_fail_hour"], ev["scrub_capacity"], 1.0)
        k_sc = u_sc * f * co.scrub_k_max * capacity
        n_o2 = np.maximum((self.n_o2 + gen - co.o2_use_mol_h * act) / (1.0 + leak), 0.0)
        n_co2 = (self.n_co2 + co.co2_gen_mol_h * act) / (1.0 + k_sc + leak)
        n_n2 = self.n_n2 / (1.0 + leak)
        q_in = co.metabolic_heat_kw + f * (cfg.base_load_kw + p_sc + p_ht + ELECTROLYSIS_HEAT_FRACTION * p_el)
        ua = cfg.conductance_kw_k
        c = cfg.heat_capacity_kwh_k
        temp = (c * self.temp + q_in + ua * self._env_c[h]) / (c + ua)
        kt = co.kpa_per_mol_k * (temp + KELVIN)
        p_o2 = n_o2 * kt
        p_co2 = n_co2 * kt
        p_tot = p_o2 + p_co2 + n_n2 * kt
        zero = 0.0
        damage = (
            np.where(p_o2 < HYPOXIA_KPA, HYPOXIA_RATE * (HYPOXIA_KPA - p_o2), zero)
            + np.where(p_co2 > HYPERCAPNIA_KPA, HYPERCAPNIA_RATE * (p_co2 - HYPERCAPNIA_KPA), zero)
            + np.where(
                temp < COLD_C,
                THERMAL_RATE * (COLD_C - temp),
                np.where(temp > HOT_C, THERMAL_RATE * (temp - HOT_C), zero),
            )
        )
        health = np.where(
            damage > 0.0, np.maximum(self.health - damage, 0.0), np.minimum(self.health + RECOVERY_RATE, 1.0)
        )
        terminated = health <= 0.0
        # excess beyond a limit band: at most one side is positive, so max(lo - x, x - hi, 0) is exactly
        # the single env's branch; adding 0.0 for quantities inside their limits leaves the sum unchanged
        x_o2 = np.maximum(np.maximum(19.5 - p_o2, p_o2 - 23.1), zero)
        x_co2 = np.maximum(p_co2 - cfg.ppco2_max_kpa, zero)
        x_p = np.maximum(np.maximum(95.0 - p_tot, p_tot - 106.0), zero)
        x_t = np.maximum(np.maximum(18.0 - temp, temp - 27.0), zero)
        # same summation order as the single env: o2, co2, pressure, temperature
        penalty = _excess(x_o2 / 1.0) + _excess(x_co2 / 0.2) + _excess(x_p / 5.0) + _excess(x_t / 3.0)
        o2_out, co2_out, p_out, t_out = x_o2 > 0.0, x_co2 > 0.0, x_p > 0.0, x_t > 0.0
        ok = ~(o2_out | co2_out | p_out | t_out)
        reward = (
            np.where(ok, 1.0, 0.0)
            - cfg.violation_weight * penalty
            - cfg.energy_weight * used
            - cfg.shed_weight * u_shed
        )
        reward = np.where(terminated, reward - cfg.death_penalty, reward)
        t = t + 1
        self.t = t
        self.n_o2, self.n_co2, self.n_n2 = n_o2, n_co2, n_n2
        self.temp, self.energy, self.water, self.health = temp, energy, water, health
        self.solar_frac = self._solar_at(t)
        truncated = ~terminated & (t >= cfg.max_steps)
        self.done = self.done | terminated | truncated
        info = {
            "ppo2_kpa": p_o2,
            "ppco2_kpa": p_co2,
            "pressure_kpa": p_tot,
            "temperature_c": temp,
            "soc": energy / cfg.battery_kwh,
            "water_kg": water,
            "health": health,
            "solar_kw": solar_kw,
            "energy_kwh": used,
            "brownout": f < 1.0,
            "o2_out": o2_out,
            "co2_out": co2_out,
            "pressure_out": p_out,
            "temperature_out": t_out,
        }
        return self._obs(p_o2, p_co2, p_tot, temp), reward, terminated, truncated, info

    # -- observation -----------------------------------------------------------------
    def observation(self) -> npt.NDArray[np.float32]:
        """The current observations, shape (N, 11), float32."""
        kt = self._co.kpa_per_mol_k * (self.temp + KELVIN)
        p_o2 = self.n_o2 * kt
        p_co2 = self.n_co2 * kt
        return self._obs(p_o2, p_co2, p_o2 + p_co2 + self.n_n2 * kt, self.temp)

    def _obs(self, p_o2: F64, p_co2: F64, p_tot: F64, temp: F64) -> npt.NDArray[np.float32]:
        cfg = self.config
        h = (self.start_hour + self.t) % HOURS_PER_LUNAR_DAY
        out = np.empty((self.num_envs, 11), dtype=np.float64)
        out[:, 0] = (p_o2 - 21.3) / 2.0
        out[:, 1] = p_co2 / cfg.ppco2_max_kpa - 1.0
        out[:, 2] = (p_tot - 100.5) / 5.0
        out[:, 3] = (temp - 22.5) / 5.0
        out[:, 4] = 2.0 * self.energy / cfg.battery_kwh - 1.0
        out[:, 5] = self.water / WATER_REF_KG - 1.0
        out[:, 6] = 2.0 * self.health - 1.0
        out[:, 7] = self.solar_frac
        out[:, 8] = self._sin[h]
        out[:, 9] = self._cos[h]
        out[:, 10] = 2.0 * self.t / cfg.max_steps - 1.0
        np.clip(out, -OBS_CLIP, OBS_CLIP, out=out)
        return out.astype(np.float32)


class HabitatVectorEnv(gymnasium.vector.VectorEnv[Any, Any, Any]):
    """Gymnasium vector API over :class:`VectorHabitat`, with next-step autoreset.

    Parameters
    ----------
    num_envs : int, default=8
        Number of habitats.
    config : HabitatConfig, optional
        Shared design.
    scenario : str, default="nominal"
        Scenario of every episode, unless ``reset(options={"scenario": ...})`` says otherwise.
    **overrides
        :class:`HabitatConfig` fields.

    Notes
    -----
    Habitat ``i`` of ``reset(seed=s)`` follows the episode of
    ``LunarHabitatEnv().reset(seed=s + i)``. After a habitat finishes, the next
    ``step`` resets it and returns its first observation with reward 0
    (``AutoresetMode.NEXT_STEP``, Gymnasium's default); later episodes draw from
    that habitat's own generator.

    Examples
    --------
    >>> import numpy as np
    >>> envs = HabitatVectorEnv(num_envs=4)
    >>> obs, info = envs.reset(seed=0)
    >>> obs, rew, term, trunc, info = envs.step(envs.action_space.sample())
    >>> obs.shape
    (4, 11)
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP}  # noqa: RUF012

    def __init__(
        self,
        num_envs: int = 8,
        config: HabitatConfig | None = None,
        *,
        scenario: str = "nominal",
        **overrides: Any,
    ) -> None:
        if scenario not in SCENARIOS:
            raise InvalidParameterError(
                f"The 'scenario' parameter of HabitatVectorEnv must be one of {SCENARIOS}. Got {scenario!r} instead."
            )
        self.core = VectorHabitat(num_envs, config, **overrides)
        self.num_envs = num_envs
        self.scenario = scenario
        self.single_observation_space = spaces.Box(-OBS_CLIP, OBS_CLIP, shape=(11,), dtype=np.float32)
        self.single_action_space = spaces.Box(0.0, 1.0, shape=(4,), dtype=np.float32)
        self.observation_space = gymnasium.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gymnasium.vector.utils.batch_space(self.single_action_space, num_envs)
        self._rngs = [seeding.np_random(None)[0] for _ in range(num_envs)]
        self._autoreset = np.zeros(num_envs, dtype=bool)
        self._scenarios = [scenario] * num_envs

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
        """Reset every habitat (see :meth:`VectorHabitat.reset` for seeds; ``options={"scenario": ...}``)."""
        if options:
            unknown = sorted(set(options) - {"scenario"})
            if unknown:
                raise InvalidParameterError(
                    f"HabitatVectorEnv.reset accepts options={{'scenario': ...}} only. Got unknown keys {unknown}."
                )
            scen = options.get("scenario", self.scenario)
            self._scenarios = [scen] * self.num_envs if isinstance(scen, str) else list(scen)
        n = self.num_envs
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds: list[int | None] = [None if seed is None else int(seed) + i for i in range(n)]
        else:
            seeds = list(seed)
        if len(seeds) != n:
            raise InvalidParameterError(
                f"The 'seed' parameter of HabitatVectorEnv.reset needs one seed per habitat ({n}). Got {len(seeds)}."
            )
        self._rngs = [seeding.np_random(s)[0] for s in seeds]
        self._autoreset[:] = False
        return self.core.reset(scenarios=self._scenarios, rngs=self._rngs)

    def step(
        self, actions: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float32], F64, npt.NDArray[np.bool_], npt.NDArray[np.bool_], dict[str, Any]]:
        """Step every habitat; habitats that finished at the previous step are reset instead."""
        obs, reward, terminated, truncated, info = self.core.step(actions)
        if self._autoreset.any():
            mask = self._autoreset
            obs_reset, _ = self.core.reset(scenarios=self._scenarios, mask=mask, rngs=self._rngs)
            obs = np.where(mask[:, None], obs_reset, obs)
            reward = np.where(mask, 0.0, reward)
            terminated = np.where(mask, False, terminated)
            truncated = np.where(mask, False, truncated)
        self._autoreset = terminated | truncated
        return obs, reward, terminated, truncated, info
