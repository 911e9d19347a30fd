"""Mutation testing of the pure core (kube_ha/): `python -m tools.mutation --help`."""
