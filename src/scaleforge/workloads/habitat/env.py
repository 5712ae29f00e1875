"""``LunarHabitatEnv``: hourly life-support control of a crewed lunar habitat (Gymnasium).

State (raw values in ``info``): O₂, CO₂ and total pressure (kPa), cabin
temperature (°C), battery state of charge, water reserve (kg), crew health.
Actions (``Box(0, 1, (4,))``): electrolysis duty (O₂ generation; costs power
and water), CO₂ scrubber duty, heater duty, fraction of non-critical load shed.

Dynamics, per one-hour step (see :mod:`.physics` for the numbers and sources):

- gas moles: ``n' = (n + sources) / (1 + sinks)`` — implicit Euler, stable for
  any duty, and free of transcendental functions so that the single and the
  vectorised implementations agree bit for bit; crew O₂ use and CO₂ production
  follow NASA's 0.84 / 1.00 kg per crew member per day, shaped by a daily
  activity profile; the scrubber removes CO₂ in proportion to its
  concentration; a leak removes every gas in proportion;
- power: solar input (lunar-day table x dust) charges the battery with
  ``charge_efficiency``; a deficit discharges it with ``discharge_efficiency``;
  an empty battery browns out every load by the same fraction;
- heat: crew metabolic heat, the loads dissipated inside, the heater, and
  conduction ``UA (T - T_env)`` to a sink that is colder at night (implicit Euler);
- crew health drops under hypoxia (ppO₂ < 16 kPa), hypercapnia (ppCO₂ > 1 kPa)
  and cold or heat (T < 10 °C or > 32 °C), recovers 1 %/h otherwise; the
  episode terminates when it reaches zero (these thresholds are modelling
  choices, well outside the reward's NASA limits).

Reward per hour: +1 if every quantity is inside its limits (ppO₂ 19.5-23.1 kPa,
ppCO₂ below ``ppco2_max_kpa``, total pressure 95-106 kPa, temperature
18-27 °C), minus ``violation_weight`` per quantity out of limits (scaled by
how far, saturating at one tolerance), minus ``energy_weight`` per kWh, minus
``shed_weight`` x the shed fraction (lost productive work), minus
``death_penalty`` on termination.
"""

from __future__ import annotations

import logging
from typing import Any, SupportsFloat

import gymnasium
import numpy as np
import numpy.typing as npt
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.habitat.physics import (
    HOURS_PER_LUNAR_DAY,
    HabitatConfig,
    activity_profile,
    coefficients,
    moles_from_kpa,
    site_tables,
)
from scaleforge.workloads.habitat.scenarios import SCENARIOS, EpisodeDraw, draw_episode

__all__ = [
    "ACTION_NAMES",
    "ELECTROLYSIS_HEAT_FRACTION",
    "LIMITS",
    "OBSERVATION_NAMES",
    "QUANTITIES",
    "LunarHabitatEnv",
    "check_action",
]

logger = logging.getLogger(__name__)

ACTION_NAMES = ("electrolysis", "scrubber", "heater", "shed")
OBSERVATION_NAMES = (
    "ppo2",
    "ppco2",
    "pressure",
    "temperature",
    "soc",
    "water",
    "health",
    "solar",
    "phase_sin",
    "phase_cos",
    "time",
)
#: The quantities with limits, in the order of ``hours_out_of_limits``.
QUANTITIES = ("o2", "co2", "pressure", "temperature")
#: Limits (low, high) and the tolerance over which a violation saturates. CO₂'s high limit is in the config.
LIMITS = {
    "o2": (19.5, 23.1, 1.0),
    "co2": (0.0, float("nan"), 0.2),
    "pressure": (95.0, 106.0, 5.0),
    "temperature": (18.0, 27.0, 3.0),
}
#: Share of the electrolyser's electrical power released as heat in the cabin (the rest leaves as H₂/O₂ enthalpy).
ELECTROLYSIS_HEAT_FRACTION = 0.3
KELVIN = 273.15
OBS_CLIP = 10.0
WATER_REF_KG = 150.0
# health model (modelling choices; see the module docstring)
HYPOXIA_KPA, HYPOXIA_RATE = 16.0, 0.05
HYPERCAPNIA_KPA, HYPERCAPNIA_RATE = 1.0, 0.1
COLD_C, HOT_C, THERMAL_RATE = 10.0, 32.0, 0.01
RECOVERY_RATE = 0.01


def check_action(action: object) -> tuple[float, float, float, float]:
    """Validate one action and return it as four plain floats.

    Parameters
    ----------
    action : array-like of shape (4,)
        Duties in [0, 1]: electrolysis, scrubber, heater, shed.

    Returns
    -------
    tuple of float
        The four duties.

    Raises
    ------
    InvalidParameterError
        For a wrong shape, a non-numeric or NaN entry, or a value outside [0, 1].
    """
    if type(action) is np.ndarray and action.shape == (4,) and action.dtype.kind == "f":
        vals = action.tolist()
    else:
        try:
            arr = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(
                f"The action of LunarHabitatEnv.step must be 4 numbers in [0, 1] "
                f"({', '.join(ACTION_NAMES)}). Got {action!r} instead."
            ) from exc
        if arr.shape != (4,):
            raise InvalidParameterError(
                f"The action of LunarHabitatEnv.step must have shape (4,) ({', '.join(ACTION_NAMES)}). "
                f"Got shape {arr.shape} instead; pass e.g. np.array([0.5, 0.5, 0.2, 0.0])."
            )
        vals = arr.tolist()
    a, b, c, d = vals
    if not (0.0 <= a <= 1.0 and 0.0 <= b <= 1.0 and 0.0 <= c <= 1.0 and 0.0 <= d <= 1.0):
        raise InvalidParameterError(
            f"Every entry of the action of LunarHabitatEnv.step must be a number in [0, 1] "
            f"({', '.join(ACTION_NAMES)}); NaN is not allowed. Got {vals} instead. "
            "Clip policy outputs with np.clip(action, 0, 1)."
        )
    return a, b, c, d


class LunarHabitatEnv(gymnasium.Env[npt.NDArray[np.float32], npt.NDArray[np.float32]]):
    """Life-support control of a crewed lunar habitat, one step per hour.

    Parameters
    ----------
    config : HabitatConfig, optional
        Habitat design and reward weights (defaults: 4 crew, 100 m³, equatorial site).
    scenario : str, default="nominal"
        Scenario used when ``reset`` gets none: one of ``"nominal"``,
        ``"scrubber_failure"``, ``"slow_leak"``, ``"dust_storm"``.
    render_mode : None
        Rendering is done offline by :func:`scaleforge.workloads.habitat.plots.plot_episode`.
    **overrides
        Individual :class:`HabitatConfig` fields, e.g. ``crew=6``.

    Attributes
    ----------
    observation_space : Box of shape (11,), float32
        Normalised ppO₂, ppCO₂, total pressure, temperature, state of charge,
        water, health, solar availability, lunar phase (sin, cos), episode time;
        clipped to [-10, 10].
    action_space : Box(0, 1, (4,), float32)
        Electrolysis, scrubber, heater and shedding duties.

    Raises
    ------
    InvalidParameterError
        For an invalid configuration (e.g. ``crew=-1``, ``volume_m3=0``) or scenario.

    Examples
    --------
    >>> import gymnasium, numpy as np
    >>> import scaleforge.workloads.habitat  # registers the env
    >>> env = gymnasium.make("scaleforge/LunarHabitat-v0")
    >>> obs, info = env.reset(seed=0, options={"scenario": "dust_storm"})
    >>> obs.shape
    (11,)
    >>> obs, reward, terminated, truncated, info = env.step(np.array([0.5, 0.5, 0.3, 0.0], dtype=np.float32))
    >>> 19.0 < info["ppo2_kpa"] < 23.5
    True
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - gymnasium convention

    def __init__(
        self,
        config: HabitatConfig | None = None,
        *,
        scenario: str = "nominal",
        render_mode: str | None = None,
        **overrides: Any,
    ) -> None:
        self.config = HabitatConfig.from_kwargs(config, **overrides)
        if scenario not in SCENARIOS:
            raise InvalidParameterError(
                f"The 'scenario' parameter of LunarHabitatEnv must be one of {SCENARIOS}. Got {scenario!r} instead."
            )
        if render_mode is not None:
            raise InvalidParameterError(
                f"The 'render_mode' parameter of LunarHabitatEnv must be None (plot episodes with "
                f"scaleforge.workloads.habitat.plots.plot_episode). Got {render_mode!r} instead."
            )
        self.render_mode = None
        self.scenario = scenario
        self.observation_space = spaces.Box(-OBS_CLIP, OBS_CLIP, shape=(11,), dtype=np.float32)
        self.action_space = spaces.Box(0.0, 1.0, shape=(4,), dtype=np.float32)
        cfg = self.config
        self._co = coefficients(cfg)
        tables = site_tables(cfg.site, cfg.env_day_c, cfg.env_night_c)
        self._solar = tables.solar
        self._env_c = tables.env_c
        self._sin = tables.phase_sin
        self._cos = tables.phase_cos
        self._activity = activity_profile()
        self._draw: EpisodeDraw | None = None
        self._done = True
        self._started = False
        self._t = 0
        self._n_o2 = self._n_co2 = self._n_n2 = 0.0
        self._temp = self._energy = self._water = self._health = 0.0
        self._solar_frac = 0.0
        self._last: dict[str, Any] = {}

    # -- gymnasium API -------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
        """Start an episode.

        Parameters
        ----------
        seed : int, optional
            Seeds ``self.np_random``; the episode's draws then repeat bit for bit.
        options : dict, optional
            ``{"scenario": name}`` picks the scenario for this episode (else the constructor's).

        Returns
        -------
        observation : ndarray of shape (11,), float32
        info : dict
            Raw state values (see :meth:`step`).

        Raises
        ------
        InvalidParameterError
            For an unknown scenario or option.
        """
        super().reset(seed=seed)
        scenario = self.scenario
        if options:
            unknown = sorted(set(options) - {"scenario"})
            if unknown:
                raise InvalidParameterError(
                    f"LunarHabitatEnv.reset accepts options={{'scenario': ...}} only. Got unknown keys {unknown}."
                )
            scenario = options.get("scenario", scenario)
        draw = draw_episode(self.np_random, scenario, self.config)
        self._start(draw)
        return self._observation(), self._info_reset()

    def _start(self, draw: EpisodeDraw) -> None:
        cfg = self.config
        self._draw = draw
        self._t = 0
        self._temp = draw.temp_c
        self._n_o2 = moles_from_kpa(draw.o2_kpa, draw.temp_c, cfg.volume_m3)
        self._n_co2 = moles_from_kpa(draw.co2_kpa, draw.temp_c, cfg.volume_m3)
        self._n_n2 = moles_from_kpa(draw.n2_kpa, draw.temp_c, cfg.volume_m3)
        self._energy = draw.soc * cfg.battery_kwh
        self._water = draw.water_kg
        self._health = 1.0
        self._solar_frac = self._solar_at(draw, 0)
        self._done = False
        self._started = True

    def step(
        self, action: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.float32], SupportsFloat, bool, bool, dict[str, Any]]:
        """Advance the habitat by one hour.

        Parameters
        ----------
        action : ndarray of shape (4,)
            Duties in [0, 1]: electrolysis, scrubber, heater, shed.

        Returns
        -------
        observation : ndarray of shape (11,), float32
        reward : float
        terminated : bool
            Crew health reached zero.
        truncated : bool
            ``max_steps`` hours elapsed.
        info : dict
            Raw values ``ppo2_kpa``, ``ppco2_kpa``, ``pressure_kpa``,
            ``temperature_c``, ``soc``, ``water_kg``, ``health``, ``solar_kw``,
            ``energy_kwh`` (drawn this hour), ``brownout``, and the booleans
            ``o2_out``, ``co2_out``, ``pressure_out``, ``temperature_out``.

        Raises
        ------
        InvalidParameterError
            For an action of the wrong shape, NaN, or outside [0, 1].
        gymnasium.error.ResetNeeded
            When called before ``reset`` or after the episode ended.
        """
        if self._done:
            raise ResetNeeded(
                "LunarHabitatEnv.step was called "
                + ("after the episode ended" if self._started else "before reset")
                + "; call env.reset() first."
            )
        u_el, u_sc, u_ht, u_shed = check_action(action)
        cfg = self.config
        co = self._co
        d = self._draw
        assert d is not None  # set by reset (guarded by _done above)
        t = self._t
        h = (d.start_hour + t) % HOURS_PER_LUNAR_DAY
        solar_kw = cfg.solar_peak_kw * self._solar_frac  # solar table x dust, set for this hour
        # -- power ---------------------------------------------------------------------
        p_el = u_el * co.el_kw_max
        p_sc = u_sc * cfg.scrubber_max_kw
        p_ht = u_ht * cfg.heater_max_kw
        load = cfg.base_load_kw + p_el + p_sc + p_ht + cfg.noncritical_load_kw * (1.0 - u_shed)
        net = solar_kw - load
        energy = self._energy
        f = 1.0
        if net >= 0.0:
            energy = energy + cfg.charge_efficiency * net
            if energy > cfg.battery_kwh:
                energy = cfg.battery_kwh
        else:
            need = -net / cfg.discharge_efficiency
            if need <= energy:
                energy = energy - need
            else:
                f = (energy * cfg.discharge_efficiency + solar_kw) / load
                energy = 0.0
        used = load * f
        # -- gases -----------------------------------------------------------------------
        gen = u_el * f * co.el_max_mol_h
        water = self._water
        if gen * co.water_kg_per_mol > water:
            gen = water / co.water_kg_per_mol
        water = water - gen * co.water_kg_per_mol
        act = self._activity[(d.start_hour + t) % 24]
        leak = d.leak_rate_h if t >= d.leak_start else 0.0
        capacity = d.scrub_capacity if t >= d.scrub_fail_hour else 1.0
        k_sc = u_sc * f * co.scrub_k_max * capacity
        n_o2 = (self._n_o2 + gen - co.o2_use_mol_h * act) / (1.0 + leak)
        if n_o2 < 0.0:
            n_o2 = 0.0
        n_co2 = (self._n_co2 + co.co2_gen_mol_h * act) / (1.0 + k_sc + leak)
        n_n2 = self._n_n2 / (1.0 + leak)
        # -- heat --------------------------------------------------------------------------
        q_in = co.metabolic_heat_kw + f * (cfg.base_load_kw + p_sc + p_ht + ELECTROLYSIS_HEAT_FRACTION * p_el)
        ua = cfg.conductance_kw_k
        temp = (cfg.heat_capacity_kwh_k * self._temp + q_in + ua * self._env_c[h]) / (
            cfg.heat_capacity_kwh_k + ua
        )
        kt = co.kpa_per_mol_k * (temp + KELVIN)
        p_o2 = n_o2 * kt
        p_co2 = n_co2 * kt
        p_tot = p_o2 + p_co2 + n_n2 * kt
        # -- crew health ---------------------------------------------------------------
        damage = 0.0
        if p_o2 < HYPOXIA_KPA:
            damage += HYPOXIA_RATE * (HYPOXIA_KPA - p_o2)
        if p_co2 > HYPERCAPNIA_KPA:
            damage += HYPERCAPNIA_RATE * (p_co2 - HYPERCAPNIA_KPA)
        if temp < COLD_C:
            damage += THERMAL_RATE * (COLD_C - temp)
        elif temp > HOT_C:
            damage += THERMAL_RATE * (temp - HOT_C)
        health = self._health
        if damage > 0.0:
            health = health - damage
            if health < 0.0:
                health = 0.0
        else:
            health = health + RECOVERY_RATE
            if health > 1.0:
                health = 1.0
        terminated = health <= 0.0
        # -- reward --------------------------------------------------------------------
        penalty = 0.0
        if p_o2 < 19.5:
            x = (19.5 - p_o2) / 1.0
            penalty += x if x < 1.0 else 1.0
        elif p_o2 > 23.1:
            x = (p_o2 - 23.1) / 1.0
            penalty += x if x < 1.0 else 1.0
        o2_out = p_o2 < 19.5 or p_o2 > 23.1
        co2_out = p_co2 > cfg.ppco2_max_kpa
        if co2_out:
            x = (p_co2 - cfg.ppco2_max_kpa) / 0.2
            penalty += x if x < 1.0 else 1.0
        if p_tot < 95.0:
            x = (95.0 - p_tot) / 5.0
            penalty += x if x < 1.0 else 1.0
        elif p_tot > 106.0:
            x = (p_tot - 106.0) / 5.0
            penalty += x if x < 1.0 else 1.0
        p_out = p_tot < 95.0 or p_tot > 106.0
        if temp < 18.0:
            x = (18.0 - temp) / 3.0
            penalty += x if x < 1.0 else 1.0
        elif temp > 27.0:
            x = (temp - 27.0) / 3.0
            penalty += x if x < 1.0 else 1.0
        t_out = temp < 18.0 or temp > 27.0
        ok = not (o2_out or co2_out or p_out or t_out)
        reward = (
            (1.0 if ok else 0.0)
            - cfg.violation_weight * penalty
            - cfg.energy_weight * used
            - cfg.shed_weight * u_shed
        )
        if terminated:
            reward -= cfg.death_penalty
        # -- commit ----------------------------------------------------------------------
        t += 1
        self._t = t
        self._n_o2, self._n_co2, self._n_n2 = n_o2, n_co2, n_n2
        self._temp, self._energy, self._water, self._health = temp, energy, water, health
        self._solar_frac = self._solar_at(d, t)
        truncated = (not terminated) and t >= cfg.max_steps
        self._done = terminated or truncated
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
        return self._obs_from(p_o2, p_co2, p_tot, temp), reward, terminated, truncated, info

    # -- helpers -------------------------------------------------------------------------
    def _solar_at(self, d: EpisodeDraw, t: int) -> float:
        """Solar output fraction at episode hour ``t``: the lunar-day table times the dust factor."""
        if t < d.storm_start:
            dust = 1.0
        elif t < d.storm_end:
            dust = d.storm_factor
        else:
            dust = d.post_storm_factor
        return self._solar[(d.start_hour + t) % HOURS_PER_LUNAR_DAY] * dust

    def _raw(self) -> tuple[float, float, float, float]:
        kt = self._co.kpa_per_mol_k * (self._temp + KELVIN)
        p_o2 = self._n_o2 * kt
        p_co2 = self._n_co2 * kt
        return p_o2, p_co2, p_o2 + p_co2 + self._n_n2 * kt, self._temp

    def _observation(self) -> npt.NDArray[np.float32]:
        return self._obs_from(*self._raw())

    def _obs_from(self, p_o2: float, p_co2: float, p_tot: float, temp: float) -> npt.NDArray[np.float32]:
        d = self._draw
        assert d is not None
        h = (d.start_hour + self._t) % HOURS_PER_LUNAR_DAY
        c = OBS_CLIP
        vals = [
            (p_o2 - 21.3) / 2.0,
            p_co2 / self.config.ppco2_max_kpa - 1.0,
            (p_tot - 100.5) / 5.0,
            (temp - 22.5) / 5.0,
            2.0 * self._energy / self.config.battery_kwh - 1.0,
            self._water / WATER_REF_KG - 1.0,
            2.0 * self._health - 1.0,
            self._solar_frac,
            self._sin[h],
            self._cos[h],
            2.0 * self._t / self.config.max_steps - 1.0,
        ]
        return np.array([c if v > c else (-c if v < -c else v) for v in vals], dtype=np.float32)

    def _info_reset(self) -> dict[str, Any]:
        p_o2, p_co2, p_tot, temp = self._raw()
        d = self._draw
        assert d is not None
        return {
            "ppo2_kpa": p_o2,
            "ppco2_kpa": p_co2,
            "pressure_kpa": p_tot,
            "temperature_c": temp,
            "soc": self._energy / self.config.battery_kwh,
            "water_kg": self._water,
            "health": self._health,
            "scenario": d.scenario,
            "start_hour": d.start_hour,
        }

    @property
    def draw(self) -> EpisodeDraw | None:
        """The current episode's initial state and event schedule (None before ``reset``)."""
        return self._draw
