"""Build a city from its validated configuration."""
from __future__ import annotations

from twin.city.model import CityError, CityModel
from twin.city.synthetic import KMH, corridor_city, grid_city
from twin.config.loader import ConfigError
from twin.config.models import (
    CorridorCityConfig, FileCityConfig, GridCityConfig, MetroCityConfig, OsmCityConfig, SumoCityConfig,
)


def build_city(cfg: GridCityConfig | MetroCityConfig | CorridorCityConfig | FileCityConfig | SumoCityConfig
               | OsmCityConfig, workdir: str | None = None) -> CityModel:
    """The city a config describes; an OSM city's SUMO network is written to ``workdir`` (default: a temp dir)."""
    if isinstance(cfg, GridCityConfig):
        return grid_city(
            cfg.blocks_x, cfg.blocks_y, block_size=cfg.block_size_m, arterial_every=cfg.arterial_every,
            arterial_lanes=cfg.arterial_lanes, local_lanes=cfg.local_lanes,
            arterial_speed=cfg.arterial_speed_kmh * KMH, local_speed=cfg.local_speed_kmh * KMH,
            green=cfg.green_s, yellow=cfg.yellow_s, zone_blocks=cfg.zone_blocks,
            residents_per_block=cfg.residents_per_block, jobs_per_block=cfg.jobs_per_block, seed=cfg.seed)
    if isinstance(cfg, MetroCityConfig):
        from twin.city.metro import metro_city

        return metro_city(
            cfg.blocks_x, cfg.blocks_y, block_size=cfg.block_size_m, arterial_every=cfg.arterial_every,
            arterial_lanes=cfg.arterial_lanes, local_lanes=cfg.local_lanes,
            arterial_speed=cfg.arterial_speed_kmh * KMH, local_speed=cfg.local_speed_kmh * KMH, ring=cfg.ring,
            ring_lanes=cfg.ring_lanes, ring_speed=cfg.ring_speed_kmh * KMH, ramp_lanes=cfg.ramp_lanes,
            off_ramp_lanes=cfg.off_ramp_lanes, terminal_turn_lanes=cfg.terminal_turn_lanes,
            free_right_turns=cfg.free_right_turns, on_ramp_right_lanes=cfg.on_ramp_right_lanes,
            lane_balanced_ramps=cfg.lane_balanced_ramps, terminal_access_signals=cfg.terminal_access_signals,
            ramp_speed=cfg.ramp_speed_kmh * KMH, green=cfg.green_s, yellow=cfg.yellow_s,
            left_green=cfg.left_green_s, ramp_signals=cfg.ramp_signals, ramp_green=cfg.ramp_green_s,
            grade_separated_blocks=cfg.grade_separated_blocks,
            outer_arterial_lanes=cfg.outer_arterial_lanes, inner_arterial_lanes=cfg.inner_arterial_lanes,
            outer_ring=cfg.outer_ring, local_green=cfg.local_green_s, auxiliary_lanes=cfg.auxiliary_lanes,
            left_turn_lanes=cfg.left_turn_lanes, zone_blocks=cfg.zone_blocks, residents_per_block=cfg.residents_per_block,
            jobs_per_block=cfg.jobs_per_block, seed=cfg.seed)
    if isinstance(cfg, CorridorCityConfig):
        return corridor_city(cfg.edges, cfg.length_m, lanes=cfg.lanes, speed=cfg.speed_kmh * KMH,
                             signal_node=cfg.signal_node, green=cfg.green_s, yellow=cfg.yellow_s, red=cfg.red_s,
                             offset=cfg.offset_s)
    if isinstance(cfg, FileCityConfig):
        try:
            return CityModel.load(cfg.path)
        except (CityError, FileNotFoundError) as exc:
            raise ConfigError(f"city.path: {exc}") from None
    if isinstance(cfg, SumoCityConfig):
        from twin.city.sumo_net import read_sumo_net
        from twin.city.zones import with_grid_zones

        city, _ = read_sumo_net(cfg.net, additional=cfg.additional)
        return with_grid_zones(city)
    if isinstance(cfg, OsmCityConfig):
        import tempfile

        from twin.city.osm import read_osm_city

        return read_osm_city(cfg.path, workdir or tempfile.mkdtemp(prefix="twin-osm-"), zone_size=cfg.zone_size_m)
    raise TypeError(f"unknown city config {type(cfg).__name__}")
