"""Kept for importers of 0.7: the circuit watch is no longer a schedule (``starter.watch_control``)."""

from starter.watch_control import (
    DEFAULT_WATCH_INTERVAL,
    MAX_WATCH_INTERVAL,
    MIN_WATCH_INTERVAL,
    WATCH_INTERVAL_ENV,
    WatchNotRunning,
    WatchState,
    describe_watch,
    ensure_watch,
    ensure_watch_schedule,
    interval_from_env,
    latest_look,
    look_now,
    parse_interval,
    replace_watch_settings,
    set_watch_paused,
    watch_settings,
)

__all__ = [
    "DEFAULT_WATCH_INTERVAL",
    "MAX_WATCH_INTERVAL",
    "MIN_WATCH_INTERVAL",
    "WATCH_INTERVAL_ENV",
    "WatchNotRunning",
    "WatchState",
    "describe_watch",
    "ensure_watch",
    "ensure_watch_schedule",
    "interval_from_env",
    "latest_look",
    "look_now",
    "parse_interval",
    "replace_watch_settings",
    "set_watch_paused",
    "watch_settings",
]
