"""Air quality from road emissions: dispersion to concentrations, weather, stations, exposure.

:mod:`twin.air.dispersion` holds the Gaussian line-source model (numba kernels);
:mod:`twin.air.canyon` the OSPM-style street canyons;
:mod:`twin.air.model` turns a run's ``edge_emission`` into concentrations;
:mod:`twin.air.stations` reads air-quality stations and their observations and checks records;
:mod:`twin.air.component` joins a run as a component. See ``docs/air-quality.md``.
"""
