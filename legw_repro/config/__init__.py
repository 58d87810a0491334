"""The run's configuration: the one declaration of each key (keys.py: type, range, what null
means, meaning), the checks of a composed config (validate.py) and of the command line
(cli.py), the typed RunSpec read from it once (spec.py), its fingerprint (fingerprint.py), the
generated reference docs/config.md (reference.py), the scale presets (scales.py) and where the
Hydra configs are (config_dir.py)."""
