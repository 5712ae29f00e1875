"""Scenarios: nominal operations and three failures, drawn from the env's own generator.

Each episode draws its initial state and its events once, at ``reset``, from
the environment's ``np_random`` (never the global random state), in a fixed
order shared by the single and the vectorised environment. The initial state is
drawn first, so one seed gives the same starting habitat in every scenario and
scenarios can be compared seed by seed.

Scenarios
---------
``nominal``
    No failure. Every quantity is controllable; the difficulty is the 354-hour
    lunar night, which the battery only covers if non-critical loads are shed.
``scrubber_failure``
    At a random hour in [48, 500) the CO₂ scrubber loses 40-70 % of its capacity
    for the rest of the episode (no spare). At full duty the remaining capacity
    holds ppCO₂ near or above the limit and costs full scrubber power through
    the night: violations are partly unavoidable and energy gets tight.
``slow_leak``
    From a random hour in [24, 360) the cabin leaks 0.3-1.5 % of its gas per
    day. There is no nitrogen make-up, so for most draws total pressure leaves
    its limits whatever the controller does (hundreds of hours per episode);
    O₂ generation (water, power) must rise to hold ppO₂.
``dust_storm``
    During the lunar day, a storm of 3-8 days cuts solar output to 10-35 %, and
    settled dust leaves 80-95 % afterwards. The battery enters the night
    partly charged: a controller that sheds loads only when the battery is low
    (the rule-based one) runs out of energy before sunrise in about a third of
    the episodes; doing better needs planning (earlier shedding, a cabin kept
    near its lower temperature limit, O₂ banked while the sun shines).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

from scaleforge._validation import check_choice
from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.habitat.physics import HabitatConfig

__all__ = ["NEVER", "SCENARIOS", "EpisodeDraw", "draw_episode", "resolve_scenarios"]

#: The scenario names accepted by ``reset(options={"scenario": ...})``.
SCENARIOS = ("nominal", "scrubber_failure", "slow_leak", "dust_storm")
#: An event hour that never comes.
NEVER = 1.0e12


@dataclasses.dataclass(frozen=True, slots=True)
class EpisodeDraw:
    """Initial state and event schedule of one episode (all plain floats).

    Attributes
    ----------
    scenario : str
        Scenario name.
    start_hour : int
        Hours since local sunrise at step 0.
    o2_kpa, co2_kpa, n2_kpa : float
        Initial partial pressures.
    temp_c : float
        Initial cabin temperature.
    soc : float
        Initial battery state of charge in [0, 1].
    water_kg : float
        Initial water reserve for electrolysis.
    storm_start, storm_end : float
        Episode hours of the dust storm ([start, end)), ``NEVER`` if none.
    storm_factor, post_storm_factor : float
        Solar output multiplier during and after the storm.
    scrub_fail_hour : float
        Episode hour of the scrubber failure, ``NEVER`` if none.
    scrub_capacity : float
        Remaining scrubber capacity after the failure.
    leak_start : float
        Episode hour the leak begins, ``NEVER`` if none.
    leak_rate_h : float
        Fraction of the cabin gas lost per hour once leaking.
    """

    scenario: str
    start_hour: int
    o2_kpa: float
    co2_kpa: float
    n2_kpa: float
    temp_c: float
    soc: float
    water_kg: float
    storm_start: float = NEVER
    storm_end: float = NEVER
    storm_factor: float = 1.0
    post_storm_factor: float = 1.0
    scrub_fail_hour: float = NEVER
    scrub_capacity: float = 1.0
    leak_start: float = NEVER
    leak_rate_h: float = 0.0


def draw_episode(rng: np.random.Generator, scenario: str, config: HabitatConfig) -> EpisodeDraw:
    """Draw one episode's initial state and events from ``rng``.

    Parameters
    ----------
    rng : numpy.random.Generator
        The environment's generator (``env.np_random``).
    scenario : str
        One of :data:`SCENARIOS`.
    config : HabitatConfig
        The habitat design (unused by the draws today; kept so that
        design-dependent initial states stay a local change).

    Returns
    -------
    EpisodeDraw
        The draw.

    Raises
    ------
    InvalidParameterError
        For an unknown scenario name.
    """
    check_choice(scenario, "scenario", "LunarHabitatEnv.reset(options=...)", SCENARIOS)
    u = rng.random(7)  # the initial state: the same numbers in every scenario
    base = {
        "scenario": scenario,
        "start_hour": int(u[0] * 48.0),
        "o2_kpa": 20.5 + 1.5 * float(u[1]),
        "co2_kpa": 0.10 + 0.15 * float(u[2]),
        "n2_kpa": 79.0,
        "temp_c": 20.0 + 3.0 * float(u[3]),
        "soc": 0.35 + 0.20 * float(u[4]),
        "water_kg": 140.0 + 30.0 * float(u[5]),
    }
    e = rng.random(4)
    if scenario == "scrubber_failure":
        base["scrub_fail_hour"] = float(48.0 + 452.0 * e[0])
        base["scrub_capacity"] = float(0.3 + 0.3 * e[1])
    elif scenario == "slow_leak":
        base["leak_start"] = float(24.0 + 336.0 * e[0])
        base["leak_rate_h"] = float((0.003 + 0.012 * e[1]) / 24.0)
    elif scenario == "dust_storm":
        start = float(24.0 + 216.0 * e[0])
        base["storm_start"] = start
        base["storm_end"] = start + float(72.0 + 120.0 * e[1])
        base["storm_factor"] = float(0.10 + 0.25 * e[2])
        base["post_storm_factor"] = float(0.80 + 0.15 * e[3])
    return EpisodeDraw(**base)  # type: ignore[arg-type]


def resolve_scenarios(scenarios: str | Iterable[str]) -> tuple[str, ...]:
    """Expand ``"all"`` or a comma-separated string into scenario names, checking each.

    Parameters
    ----------
    scenarios : str or iterable of str
        ``"all"``, ``"nominal,dust_storm"`` or a list of names.

    Returns
    -------
    tuple of str
        Known scenario names, in the given order, without duplicates.

    Raises
    ------
    InvalidParameterError
        For an empty selection or an unknown name.
    """
    if isinstance(scenarios, str):
        names = list(SCENARIOS) if scenarios.strip() == "all" else [s.strip() for s in scenarios.split(",")]
    else:
        names = list(scenarios)
    out: list[str] = []
    for name in names:
        check_choice(name, "scenarios", "habitat evaluation", (*SCENARIOS, "all"))
        if name == "all":
            out.extend(s for s in SCENARIOS if s not in out)
        elif name not in out:
            out.append(name)
    if not out:
        raise InvalidParameterError(
            f"The 'scenarios' parameter needs at least one of {SCENARIOS} or 'all'. Got {scenarios!r} instead."
        )
    return tuple(out)
