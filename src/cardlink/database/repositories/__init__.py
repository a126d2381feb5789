"""Repositories: the queries of each entity, run inside a unit of work."""

from .base import BaseRepository, Page
from .card import CardRepository
from .device import DeviceRepository
from .exchange import ExchangeRepository
from .log import LogRepository
from .session import SessionRepository
from .setting import DEFAULT_SETTINGS, SettingRepository
from .test_result import TestRepository
from .test_run import TestRunRepository

__all__ = [
    "DEFAULT_SETTINGS",
    "BaseRepository",
    "CardRepository",
    "DeviceRepository",
    "ExchangeRepository",
    "LogRepository",
    "Page",
    "SessionRepository",
    "SettingRepository",
    "TestRepository",
    "TestRunRepository",
]
