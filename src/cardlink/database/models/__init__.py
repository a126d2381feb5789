"""The CardLink entities and their enumerations."""

from .base import NAMING_CONVENTION, Base, TimestampMixin
from .card import CardProfile
from .device import Device
from .enums import CardType, CommDirection, DeviceType, SessionStatus, TestStatus
from .exchange import HttpExchange
from .log import CommLog
from .session import OTASession
from .setting import Setting
from .test_result import TestResult
from .test_run import TestRun

__all__ = [
    "NAMING_CONVENTION",
    "Base",
    "CardProfile",
    "CardType",
    "CommDirection",
    "CommLog",
    "Device",
    "DeviceType",
    "HttpExchange",
    "OTASession",
    "SessionStatus",
    "Setting",
    "TestResult",
    "TestRun",
    "TestStatus",
    "TimestampMixin",
]
