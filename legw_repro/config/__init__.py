"""The run's configuration: which keys exist and what each may hold (keys.py), the checks of a
composed config (validate.py) and of the command line (cli.py), the typed RunSpec read from it
once (spec.py), its fingerprint (fingerprint.py), the scale presets (scales.py) and where the
Hydra configs are (config_dir.py)."""
