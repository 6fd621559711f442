"""Names of the built-in teacher specs (no heavy imports: the config check reads them)."""

PACKAGED = "packaged:smollm2"
TINY = "tiny-random"
