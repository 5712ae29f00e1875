"""Known answers of the habitat physics: mass balances, energy, heat, ideal gas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scaleforge.workloads.habitat.env import ELECTROLYSIS_HEAT_FRACTION, LunarHabitatEnv
from scaleforge.workloads.habitat.physics import (
    CO2_KG_PER_CREW_DAY,
    GAS_CONSTANT,
    MOLAR_MASS_CO2,
    MOLAR_MASS_O2,
    O2_KG_PER_CREW_DAY,
    WATER_KG_PER_KG_O2,
    HabitatConfig,
    activity_profile,
    coefficients,
    moles_from_kpa,
    partial_pressure_kpa,
)


def test_activity_profile_averages_to_one() -> None:
    prof = activity_profile()
    assert len(prof) == 24
    assert math.isclose(sum(prof), 24.0, rel_tol=1e-14)


@pytest.mark.parametrize("crew", [1, 4, 6])
def test_crew_o2_consumption_matches_nasa_rate_without_generation(crew: int) -> None:
    env = LunarHabitatEnv(crew=crew, volume_m3=1000.0)  # large cabin: the crew stays healthy for 48 h
    env.reset(seed=0)
    n0 = env._n_o2
    co2_0 = env._n_co2
    action = np.array([0.0, 0.0, 0.4, 0.0], dtype=np.float32)  # no electrolysis, no scrubber
    for _ in range(48):
        env.step(action)
    consumed_kg = (n0 - env._n_o2) * MOLAR_MASS_O2
    produced_kg = (env._n_co2 - co2_0) * MOLAR_MASS_CO2
    assert consumed_kg == pytest.approx(2 * crew * O2_KG_PER_CREW_DAY, rel=1e-12)
    assert produced_kg == pytest.approx(2 * crew * CO2_KG_PER_CREW_DAY, rel=1e-12)


def test_electrolysis_makes_o2_from_stoichiometric_water() -> None:
    env = LunarHabitatEnv()
    _, info = env.reset(seed=0)  # episodes start in sunlight with a half battery: no brownout
    n0, w0 = env._n_o2, info["water_kg"]
    hours = 10
    for _ in range(hours):
        _, _, _, _, info = env.step(np.array([1.0, 0.6, 0.3, 0.0], dtype=np.float32))
        assert not info["brownout"]
    co = coefficients(env.config)
    made_kg = env.config.electrolysis_max_o2_kg_h * hours
    used_mol = sum(co.o2_use_mol_h * activity_profile()[(env.draw.start_hour + t) % 24] for t in range(hours))  # type: ignore[union-attr]
    assert (env._n_o2 - n0) == pytest.approx(made_kg / MOLAR_MASS_O2 - used_mol, rel=1e-9)
    assert w0 - info["water_kg"] == pytest.approx(made_kg * WATER_KG_PER_KG_O2, rel=1e-12)
    assert pytest.approx(1.1259, abs=1e-4) == WATER_KG_PER_KG_O2


def test_battery_discharge_in_the_dark_follows_efficiency() -> None:
    cfg = HabitatConfig(solar_peak_kw=0.0)
    env = LunarHabitatEnv(cfg)
    _, info = env.reset(seed=0)
    e0 = info["soc"] * cfg.battery_kwh
    a = np.array([0.5, 0.5, 0.5, 0.25], dtype=np.float32)
    load = (
        cfg.base_load_kw
        + float(a[0]) * coefficients(cfg).el_kw_max
        + float(a[1]) * cfg.scrubber_max_kw
        + float(a[2]) * cfg.heater_max_kw
        + cfg.noncritical_load_kw * (1 - float(a[3]))
    )
    for _ in range(5):
        _, _reward, _, _, info = env.step(a)
        assert info["energy_kwh"] == pytest.approx(load, rel=1e-12)
    assert e0 - info["soc"] * cfg.battery_kwh == pytest.approx(5 * load / cfg.discharge_efficiency, rel=1e-9)


def test_empty_battery_browns_out_every_load() -> None:
    cfg = HabitatConfig(solar_peak_kw=0.0, battery_kwh=10.0)
    env = LunarHabitatEnv(cfg)
    env.reset(seed=0)
    for _ in range(3):
        _, _, _, _, info = env.step(np.ones(4, dtype=np.float32))
    assert info["brownout"] and info["soc"] == 0.0 and info["energy_kwh"] == 0.0


def test_temperature_relaxes_to_the_analytic_steady_state() -> None:
    # constant sink (polar-like tables with equal day/night sink) and constant loads: T -> T_env + Q/UA
    cfg = HabitatConfig(env_day_c=-10.0, env_night_c=-10.0, solar_peak_kw=0.0, battery_kwh=1e6, crew=1)
    env = LunarHabitatEnv(cfg)
    env.reset(seed=0)
    a = np.array([0.125, 0.5, 0.5, 1.0], dtype=np.float32)
    for _ in range(700):
        _, _, terminated, _, info = env.step(a)
    assert not terminated
    co = coefficients(cfg)
    q = (
        co.metabolic_heat_kw
        + cfg.base_load_kw
        + 0.5 * cfg.scrubber_max_kw
        + 0.5 * cfg.heater_max_kw
        + ELECTROLYSIS_HEAT_FRACTION * 0.125 * co.el_kw_max
    )
    assert info["temperature_c"] == pytest.approx(-10.0 + q / cfg.conductance_kw_k, abs=1e-6)


def test_ideal_gas_round_trip_and_sea_level_moles() -> None:
    n = moles_from_kpa(101.325, 0.0, 22.413969545014137e-3 * 1000)  # 1000 mol occupy 22.414 m3 at STP
    assert n == pytest.approx(1000.0, rel=1e-9)
    assert partial_pressure_kpa(n, 0.0, 22.413969545014137) == pytest.approx(101.325, rel=1e-12)
    assert GAS_CONSTANT == 8.314462618


def test_scrubber_equilibrium_matches_first_order_removal() -> None:
    # implicit update n' (1 + k) = n + g_t; averaged over one periodic day: mean(n) = mean(g) / k exactly
    cfg = HabitatConfig(crew=1)
    env = LunarHabitatEnv(cfg)
    env.reset(seed=0)
    a = np.array([0.1, 1.0, 0.3, 0.0], dtype=np.float32)
    for _ in range(24 * 4):
        env.step(a)
    window = []
    for _ in range(24):
        _, _, _, _, info = env.step(a)
        assert not info["brownout"]
        window.append(env._n_co2)
    co = coefficients(cfg)
    assert np.mean(window) == pytest.approx(co.co2_gen_mol_h / co.scrub_k_max, rel=1e-9)
