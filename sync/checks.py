"""What ``incident-sync check`` verifies.

Contract: :func:`offline_checks` validates the files a config points at and
contacts nothing; it returns one ``what: ok`` line per file and raises
ConfigError on the first broken one. :func:`online_check` reaches both tools,
prints a table of what passed and failed and returns the exit status.
"""

from __future__ import annotations

from rich.console import Console

from sync.errors import ConfigError
from sync.settings import Settings


def offline_checks(settings: Settings) -> list[str]:
    """Validate config (already loaded), mapping and rules without any I/O but file reads."""
    return [f"config {settings.source}: ok", _mapping_check(settings)]


def _mapping_check(settings: Settings) -> str:
    """Load the configured mapping profile; a broken one is a ConfigError naming its key."""
    from mappings.profile import MappingError, load_profile
    from sync.errors import ConfigError

    base_dir = settings.source.parent if settings.source is not None else None
    try:
        profile = load_profile(settings.sync.mapping, base_dir=base_dir)
    except MappingError as error:
        where = f"{error.key} (line {error.line})" if error.line else error.key
        raise ConfigError(error.source, [f"{where}: {error.reason}"]) from None
    return f"mapping {profile.name}: ok ({len(profile.neutral_fields())} fields)"


def online_check(settings: Settings, console: Console) -> int:
    """Reach both tools and verify access, scope, fields and statuses."""
    raise ConfigError(str(settings.source), ["online check arrives with the connectors"])
