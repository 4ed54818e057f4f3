"""Hardware profile data files (one YAML file per GPU SKU), shipped as package data of capbench.

Load them with :mod:`capbench.hardware`; this folder holds data only.
"""
