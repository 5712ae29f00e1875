"""Physical constants, habitat configuration and the derived per-hour coefficients.

Every number that comes from a source says so; numbers that are modelling
choices say that instead. Units are SI except where the name says otherwise
(``_kpa``, ``_kw``, ``_kwh``, ``_h``, ``_c`` for degrees Celsius).

Sources
-------
- Crew metabolic loads: O₂ 0.84 kg and CO₂ 1.00 kg per crew member per day at a
  metabolic rate of 136.7 W (respiratory quotient 0.87), NASA RP-1324 (Wieland,
  *Designing for Human Presence in Space*, 1994); BVAD 2004 (NASA/CR-2004-208941)
  gives 0.835 / 0.998 kg per crew-member-day; BVAD 2015 is NASA/TP-2015-218570.
- Atmosphere limits: ppO₂ 19.5-23.1 kPa for a sea-level atmosphere and cabin
  temperature 18-27 °C (NASA-STD-3001 Vol. 2); the ppCO₂ limit is configurable
  and defaults to 0.4 kPa (3 mmHg), the older 24-h limit; NASA-STD-3001 Rev. C
  is tighter (2.5 mmHg ≈ 0.33 kPa), which ``HabitatConfig(ppco2_max_kpa=0.33)`` models.
- Lunar synodic day 29.53 Earth days: about 14.75 days of light and 14.75 of
  dark at a non-polar site (rounded here to 709 one-hour steps per cycle).
- Electrolysis: 2 H₂O → 2 H₂ + O₂, i.e. 1.126 kg water per kg O₂
  (stoichiometry); about 6.5 kWh per kg O₂, the order of the ISS Oxygen
  Generation Assembly (modelling choice).
- CO₂ scrubber full power 0.9 kW, of the order of the ISS CDRA (≈ 0.86 kW).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import numpy.typing as npt

from scaleforge._validation import check_choice, check_number
from scaleforge.errors import InvalidParameterError

__all__ = [
    "CO2_KG_PER_CREW_DAY",
    "ENV_VERSION",
    "GAS_CONSTANT",
    "HOURS_PER_LUNAR_DAY",
    "METABOLIC_HEAT_W",
    "MOLAR_MASS_CO2",
    "MOLAR_MASS_O2",
    "O2_KG_PER_CREW_DAY",
    "SITES",
    "WATER_KG_PER_KG_O2",
    "Coefficients",
    "HabitatConfig",
    "SiteTables",
    "activity_profile",
    "coefficients",
    "moles_from_kpa",
    "partial_pressure_kpa",
    "site_tables",
]

#: Bumped whenever dynamics, reward or observation change: part of every evaluation cache key.
ENV_VERSION = "2"

#: Molar gas constant, J/(mol K) (CODATA 2018, exact).
GAS_CONSTANT = 8.314462618
#: Molar masses, kg/mol.
MOLAR_MASS_O2 = 0.0319988
MOLAR_MASS_CO2 = 0.0440095
MOLAR_MASS_H2O = 0.01801528
#: O₂ consumed per crew member per day, kg (NASA RP-1324; BVAD 2004: 0.835).
O2_KG_PER_CREW_DAY = 0.84
#: CO₂ produced per crew member per day, kg (NASA RP-1324; BVAD 2004: 0.998).
CO2_KG_PER_CREW_DAY = 1.00
#: Average metabolic heat per crew member, W (NASA RP-1324, at the loads above).
METABOLIC_HEAT_W = 136.7
#: Water electrolysed per kg of O₂ produced (2 H₂O -> 2 H₂ + O₂).
WATER_KG_PER_KG_O2 = 2 * MOLAR_MASS_H2O / MOLAR_MASS_O2
#: One lunar synodic day (29.53 d) in whole hourly steps.
HOURS_PER_LUNAR_DAY = 709
#: Hours of sunlight per lunar day at a non-polar site (≈ 14.75 d).
_DAYLIGHT_H = 354
#: Site illumination profiles.
SITES = ("equatorial", "polar")

_KELVIN = 273.15


def activity_profile() -> tuple[float, ...]:
    """Metabolic-load multiplier for each hour of the crew's day (mean exactly 1 up to rounding).

    Modelling choice: 8 h of sleep at 0.75x, 2 h of exercise at 1.75x, and the
    other 14 h at the value that makes the daily total equal the NASA daily
    figure, so a day of crew activity consumes 0.84 kg O₂ per person.

    Returns
    -------
    tuple of float
        24 multipliers, hour 0 = 00:00 habitat time.
    """
    awake = (24.0 - 8 * 0.75 - 2 * 1.75) / 14.0
    return tuple(0.75 if h < 8 else 1.75 if h in (17, 18) else awake for h in range(24))


def partial_pressure_kpa(moles: float, temperature_c: float, volume_m3: float) -> float:
    """Ideal-gas partial pressure ``n R T / V`` in kPa.

    Parameters
    ----------
    moles : float
        Amount of the gas, mol.
    temperature_c : float
        Cabin temperature, °C.
    volume_m3 : float
        Free cabin volume, m³.

    Returns
    -------
    float
        The partial pressure, kPa.
    """
    return moles * GAS_CONSTANT * (temperature_c + _KELVIN) / volume_m3 / 1000.0


def moles_from_kpa(pressure_kpa: float, temperature_c: float, volume_m3: float) -> float:
    """Inverse of :func:`partial_pressure_kpa`: moles of a gas at a partial pressure.

    Parameters
    ----------
    pressure_kpa : float
        Partial pressure, kPa.
    temperature_c : float
        Cabin temperature, °C.
    volume_m3 : float
        Free cabin volume, m³.

    Returns
    -------
    float
        Amount of the gas, mol.
    """
    return pressure_kpa * 1000.0 * volume_m3 / (GAS_CONSTANT * (temperature_c + _KELVIN))


@dataclasses.dataclass(frozen=True, slots=True)
class HabitatConfig:
    """Design of the habitat and of the task; validated at construction.

    Parameters
    ----------
    crew : int, default=4
        Crew members (>= 1).
    volume_m3 : float, default=100.0
        Free cabin volume, m³ (> 0).
    site : {"equatorial", "polar"}, default="equatorial"
        ``"equatorial"``: ≈ 14.75 days of light then ≈ 14.75 of dark;
        ``"polar"``: illustrative crater-rim profile, 70-100 % output with one
        three-day terrain shadow per lunar day.
    max_steps : int, default=720
        Episode length in hourly steps (30 days).
    solar_peak_kw : float, default=12.0
        Solar array output in full sun (sun-tracking array).
    battery_kwh : float, default=2200.0
        Usable energy storage (batteries or regenerative fuel cells), kWh.
    charge_efficiency, discharge_efficiency : float, default=0.95
        One-way storage efficiencies in (0, 1].
    base_load_kw : float, default=0.8
        Critical avionics, fans and pumps; dissipated in the cabin.
    noncritical_load_kw : float, default=2.0
        Sheddable external loads (ISRU plant, rover charging); not dissipated in the cabin.
    electrolysis_max_o2_kg_h : float, default=0.3
        Electrolyser capacity, kg O₂ per hour (≈ 2x the need of four crew).
    electrolysis_kwh_per_kg_o2 : float, default=6.5
        Electrical energy per kg of O₂.
    scrubber_max_kw : float, default=0.9
        CO₂ scrubber power at full duty.
    scrubber_flow_m3_h : float, default=62.0
        Effective cabin volume cleared of CO₂ per hour at full duty.
    heater_max_kw : float, default=3.0
        Cabin heater power at full duty.
    conductance_kw_k : float, default=0.10
        Cabin-to-environment thermal conductance (insulation plus radiators).
    heat_capacity_kwh_k : float, default=3.5
        Effective thermal mass of air, structure and equipment.
    env_day_c, env_night_c : float, default=-5.0, -25.0
        Effective sink temperature of the heat rejection in sunlight and in the dark.
    ppco2_max_kpa : float, default=0.4
        Upper ppCO₂ limit of the reward (see module docstring).
    violation_weight : float, default=1.0
        Penalty per fully violated quantity per hour.
    energy_weight : float, default=0.005
        Penalty per kWh drawn from the power system.
    shed_weight : float, default=0.02
        Penalty per hour of fully shed non-critical load (the lost ISRU and
        science output). It exceeds the energy saved (2 kW x 0.005), so
        shedding pays only when it keeps the habitat powered.
    death_penalty : float, default=100.0
        Penalty when crew health reaches zero.

    Raises
    ------
    InvalidParameterError
        For a value of the wrong type or out of range; the message names it.
    """

    crew: int = 4
    volume_m3: float = 100.0
    site: str = "equatorial"
    max_steps: int = 720
    solar_peak_kw: float = 12.0
    battery_kwh: float = 2200.0
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95
    base_load_kw: float = 0.8
    noncritical_load_kw: float = 2.0
    electrolysis_max_o2_kg_h: float = 0.3
    electrolysis_kwh_per_kg_o2: float = 6.5
    scrubber_max_kw: float = 0.9
    scrubber_flow_m3_h: float = 62.0
    heater_max_kw: float = 3.0
    conductance_kw_k: float = 0.10
    heat_capacity_kwh_k: float = 3.5
    env_day_c: float = -5.0
    env_night_c: float = -25.0
    ppco2_max_kpa: float = 0.4
    violation_weight: float = 1.0
    energy_weight: float = 0.005
    shed_weight: float = 0.02
    death_penalty: float = 100.0

    def __post_init__(self) -> None:
        owner = "HabitatConfig"
        check_number(self.crew, "crew", owner, minimum=1, maximum=100, integer=True)
        check_number(self.max_steps, "max_steps", owner, minimum=1, integer=True)
        check_choice(self.site, "site", owner, SITES)
        positive = (
            "volume_m3",
            "battery_kwh",
            "electrolysis_max_o2_kg_h",
            "electrolysis_kwh_per_kg_o2",
            "scrubber_max_kw",
            "scrubber_flow_m3_h",
            "heater_max_kw",
            "conductance_kw_k",
            "heat_capacity_kwh_k",
            "ppco2_max_kpa",
        )
        for name in positive:
            check_number(getattr(self, name), name, owner, minimum=0, exclusive_minimum=True)
        for name in ("solar_peak_kw", "base_load_kw", "noncritical_load_kw"):
            check_number(getattr(self, name), name, owner, minimum=0)
        for name in ("violation_weight", "energy_weight", "shed_weight", "death_penalty"):
            check_number(getattr(self, name), name, owner, minimum=0)
        for name in ("charge_efficiency", "discharge_efficiency"):
            check_number(getattr(self, name), name, owner, minimum=0, maximum=1, exclusive_minimum=True)
        check_number(self.env_day_c, "env_day_c", owner, minimum=-273.15)
        check_number(self.env_night_c, "env_night_c", owner, minimum=-273.15)
        if self.env_night_c > self.env_day_c:
            raise InvalidParameterError(
                f"The 'env_night_c' parameter of HabitatConfig must not exceed 'env_day_c' "
                f"({self.env_day_c}). Got {self.env_night_c} instead."
            )

    @classmethod
    def from_kwargs(cls, config: HabitatConfig | None = None, **overrides: object) -> HabitatConfig:
        """Build a config from an optional base config and keyword overrides.

        Parameters
        ----------
        config : HabitatConfig or None
            Base configuration (default: the defaults).
        **overrides
            Field values to change.

        Returns
        -------
        HabitatConfig
            The new, validated configuration.

        Raises
        ------
        InvalidParameterError
            For an unknown field name (the message lists the known ones) or an invalid value.
        """
        if config is not None and not isinstance(config, HabitatConfig):
            raise InvalidParameterError(
                f"The 'config' parameter of LunarHabitatEnv must be a HabitatConfig or None. "
                f"Got {type(config).__name__} instead."
            )
        base = config if config is not None else cls()
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InvalidParameterError(
                f"Unknown habitat configuration field(s) {unknown}. Known fields: {sorted(known)}."
            )
        return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True, slots=True)
class SiteTables:
    """Per-hour tables of one lunar day, shared by the single and the vectorised env.

    Tables rather than per-step ``sin``/``cos`` keep ``step`` cheap and make the
    two implementations bit-identical (no libm versus SIMD rounding differences).

    Attributes
    ----------
    solar : tuple of float
        Solar array output as a fraction of peak, per hour of the lunar day.
    env_c : tuple of float
        Heat-rejection sink temperature, °C.
    phase_sin, phase_cos : tuple of float
        The lunar-day phase as (sin, cos), for the observation.
    solar_array, env_array, sin_array, cos_array : ndarray of shape (709,)
        The same tables as arrays (for the vectorised env).
    """

    solar: tuple[float, ...]
    env_c: tuple[float, ...]
    phase_sin: tuple[float, ...]
    phase_cos: tuple[float, ...]
    solar_array: npt.NDArray[np.float64]
    env_array: npt.NDArray[np.float64]
    sin_array: npt.NDArray[np.float64]
    cos_array: npt.NDArray[np.float64]


@functools.lru_cache(maxsize=16)
def site_tables(site: str, env_day_c: float, env_night_c: float) -> SiteTables:
    """Illumination and sink-temperature tables of one lunar day (hour 0 = local sunrise).

    Parameters
    ----------
    site : {"equatorial", "polar"}
        Illumination profile.
    env_day_c, env_night_c : float
        Sink temperatures in full sun and in the dark, °C.

    Returns
    -------
    SiteTables
        The tables (cached per arguments).
    """
    n = HOURS_PER_LUNAR_DAY
    solar: list[float] = []
    for h in range(n):
        if site == "equatorial":
            # tracking array: full output once the sun clears the horizon terrain (~19 h ramp)
            s = min(1.0, 6.0 * math.sin(math.pi * h / _DAYLIGHT_H)) if h < _DAYLIGHT_H else 0.0
        else:
            # illustrative crater rim: the sun circles the horizon, one ~3-day terrain shadow
            s = 0.0 if 400 <= h < 472 else 0.85 + 0.15 * math.sin(2.0 * math.pi * h / n)
        solar.append(max(0.0, s))
    env = [env_night_c + (env_day_c - env_night_c) * s for s in solar]
    sins = [math.sin(2.0 * math.pi * h / n) for h in range(n)]
    coss = [math.cos(2.0 * math.pi * h / n) for h in range(n)]
    return SiteTables(
        solar=tuple(solar),
        env_c=tuple(env),
        phase_sin=tuple(sins),
        phase_cos=tuple(coss),
        solar_array=np.array(solar, dtype=np.float64),
        env_array=np.array(env, dtype=np.float64),
        sin_array=np.array(sins, dtype=np.float64),
        cos_array=np.array(coss, dtype=np.float64),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Coefficients:
    """Per-hour coefficients derived from a :class:`HabitatConfig` (all plain floats).

    Attributes
    ----------
    o2_use_mol_h, co2_gen_mol_h : float
        Crew O₂ consumption and CO₂ production at activity 1.0, mol/h.
    metabolic_heat_kw : float
        Crew metabolic heat, kW.
    el_max_mol_h : float
        Electrolyser capacity, mol O₂/h.
    el_kw_max : float
        Electrolyser power at full duty, kW.
    water_kg_per_mol : float
        Water electrolysed per mol of O₂, kg.
    scrub_k_max : float
        Fraction of the cabin's CO₂ removed per hour at full duty (first-order removal).
    kpa_per_mol_k : float
        ``R / V / 1000``: kPa per mol per kelvin.
    """

    o2_use_mol_h: float
    co2_gen_mol_h: float
    metabolic_heat_kw: float
    el_max_mol_h: float
    el_kw_max: float
    water_kg_per_mol: float
    scrub_k_max: float
    kpa_per_mol_k: float


@functools.lru_cache(maxsize=64)
def coefficients(config: HabitatConfig) -> Coefficients:
    """Derive the per-hour coefficients of ``config``.

    Parameters
    ----------
    config : HabitatConfig
        The habitat design.

    Returns
    -------
    Coefficients
        Plain-float coefficients used by both env implementations.
    """
    return Coefficients(
        o2_use_mol_h=config.crew * O2_KG_PER_CREW_DAY / 24.0 / MOLAR_MASS_O2,
        co2_gen_mol_h=config.crew * CO2_KG_PER_CREW_DAY / 24.0 / MOLAR_MASS_CO2,
        metabolic_heat_kw=config.crew * METABOLIC_HEAT_W / 1000.0,
        el_max_mol_h=config.electrolysis_max_o2_kg_h / MOLAR_MASS_O2,
        el_kw_max=config.electrolysis_max_o2_kg_h * config.electrolysis_kwh_per_kg_o2,
        water_kg_per_mol=WATER_KG_PER_KG_O2 * MOLAR_MASS_O2,
        scrub_k_max=config.scrubber_flow_m3_h / config.volume_m3,
        kpa_per_mol_k=GAS_CONSTANT / config.volume_m3 / 1000.0,
    )
